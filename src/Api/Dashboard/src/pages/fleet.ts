import { enc, get, getOptional, Resource, ResourcePage, TrainingRun } from "../api";
import { fixed, fmt, h, scroller, when } from "../dom";
import { CurrentState, currentStates } from "../current";

interface ActiveModel { resource: string; metric: string; algorithm?: string; mase?: number; seasonalNaiveMase?: number; beatsSeasonalNaive?: boolean; trainedAt: string }

async function allResources(): Promise<Resource[]> {
  const all: Resource[] = [];
  let after: string | undefined;
  do {
    const page = await get<ResourcePage>(`/api/v1/resources?limit=1000${after ? `&after=${enc(after)}` : ""}`);
    all.push(...page.items);
    after = page.next;
  } while (after);
  return all;
}

/** Fleet: every resource with its desired count now, where it came from, its model's backtest and the flags that need a look. */
export async function fleetPage(root: HTMLElement): Promise<void> {
  const [resources, current, models, runs] = await Promise.all([
    allResources(),
    currentStates(),
    getOptional<{ items: ActiveModel[] }>("/api/v1/models/active"),
    getOptional<{ items: TrainingRun[] }>("/api/v1/training-runs?limit=1"),
  ]);
  const model = new Map((models?.items ?? []).map(m => [m.resource, m]));
  const last = runs?.items[0];

  const search = h("input", { type: "search", placeholder: "Search resources", id: "search" });
  const groups = [...new Set(resources.map(r => r.group))].sort();
  const groupSelect = h("select", { id: "group-filter" }, h("option", { value: "" }, "All groups"), ...groups.map(g => h("option", { value: g }, g || "(none)")));
  const kindSelect = h("select", { id: "kind-filter" }, h("option", { value: "" }, "All kinds"), h("option", { value: "service" }, "services"), h("option", { value: "job" }, "jobs"));
  const body = h("tbody");
  const count = h("span", { class: "muted", id: "fleet-count" });

  const render = () => {
    const q = search.value.trim().toLowerCase();
    const shown = resources.filter(r =>
      (!q || r.name.toLowerCase().includes(q)) && (!groupSelect.value || r.group === groupSelect.value) && (!kindSelect.value || r.kind === kindSelect.value));
    body.replaceChildren(...shown.map(r => row(r, current.get(r.name), model.get(r.name))));
    count.textContent = `${shown.length} of ${resources.length} resources`;
  };
  for (const el of [search, groupSelect, kindSelect]) el.addEventListener("input", render);

  root.replaceChildren(
    h("h1", {}, "Fleet"),
    h("p", { class: "muted" }, last
      ? `Last training run #${last.id}: ${last.status}, ${last.progress.done}/${last.progress.total} series, finished ${when(last.finishedAt)}`
      : "No training run yet."),
    h("div", { class: "toolbar" }, search, groupSelect, kindSelect, count),
    scroller(h("table", { id: "fleet" },
      h("thead", {}, h("tr", {}, ...["Resource", "Group", "Kind", "Desired now", "Source", "Model", "MASE (model / seasonal naive)", "Flags"].map(t => h("th", {}, t)))),
      body)));
  render();
}

function row(r: Resource, c: CurrentState | undefined, m: ActiveModel | undefined): HTMLTableRowElement {
  const flags: HTMLElement[] = [];
  if (c?.stale) flags.push(h("span", { class: "flag warn" }, "stale plan"));
  if (c?.capacityShortfall) flags.push(h("span", { class: "flag bad" }, "capacity shortfall"));
  if (c?.forecastOnly || r.policy["mode"] === "forecastOnly") flags.push(h("span", { class: "flag info" }, "forecast only"));
  // Flag only what the numbers beside it show: worse at the three decimals displayed, not equal (the model may be
  // seasonal naive itself, or tie with it).
  if (m && m.beatsSeasonalNaive === false && m.mase !== undefined && m.seasonalNaiveMase !== undefined
      && Number(fixed(m.mase, 3)) > Number(fixed(m.seasonalNaiveMase, 3))) {
    flags.push(h("span", { class: "flag warn" }, "worse than seasonal naive"));
  }
  const ratio = m?.mase !== undefined && m?.seasonalNaiveMase ? m.mase / m.seasonalNaiveMase : undefined;
  return h("tr", { "data-resource": r.name },
    h("td", {}, h("a", { href: `#/resources/${enc(r.name)}` }, r.name)),
    h("td", {}, r.group),
    h("td", {}, r.kind),
    h("td", { class: "num desired" }, c && !c.missing ? `${c.count} ${r.kind === "job" ? "parallelism" : "replicas"}` : "—"),
    h("td", {}, c?.missing ? `cannot plan: ${c.missing.join("; ")}` : c?.source ?? "—"),
    h("td", {}, m?.algorithm ?? "—"),
    h("td", { class: "num" }, m ? `${fixed(m.mase, 3)} / ${fixed(m.seasonalNaiveMase, 3)}${ratio !== undefined ? ` (${fixed(ratio, 2)}×)` : ""}` : "—"),
    h("td", {}, ...flags));
}
