import { ApiError, enc, get, getOptional, ModelVersion, PlanStep, PlanVersionPage, PlanVersionView, Resource, SourceState, StoredForecast, Bucket } from "../api";
import { colors, timeChart, withGaps } from "../charts";
import { bytes, canvasBox, fixed, fmt, h, scroller, when } from "../dom";
import { currentState, CurrentState } from "../current";

const hour = 3_600_000;

/** One resource: observed load, forecast band and planned capacity; planned replicas and requests; why now; model history. */
export async function resourcePage(root: HTMLElement, name: string): Promise<void> {
  const resource = await get<Resource>(`/api/v1/resources/${enc(name)}`);
  const now = Date.now();
  const from = new Date(now - 7 * 24 * hour).toISOString().slice(0, 19) + "Z";
  const [samples, forecast, models, plan, current] = await Promise.all([
    get<{ buckets: Bucket[] }>(`/api/v1/resources/${enc(name)}/samples?metric=${enc(resource.loadMetric)}&step=1h&from=${from}`),
    getOptional<StoredForecast>(`/api/v1/resources/${enc(name)}/forecast?metric=${enc(resource.loadMetric)}`),
    getOptional<{ items: ModelVersion[] }>(`/api/v1/resources/${enc(name)}/models?limit=20`),
    activePlan(name),
    currentState(name).catch((e: unknown) => (e instanceof ApiError ? e : Promise.reject(e))),
  ]);
  const steps = plan?.steps ?? [];
  const unit = resource.kind === "job" ? "parallelism" : "replicas";

  const observed = withGaps(samples.buckets.map(b => ({ x: Date.parse(b.timestamp), y: b.mean })));
  const points = forecast?.points ?? [];
  const capacity = stepLine(steps, s => (s.explanation?.capacity ? s.count * s.explanation.capacity : null));
  const noCapacity = steps.length > 0 && steps.every(s => !s.explanation?.capacity);
  const capacityField = resource.kind === "job" ? "policy.capacityPerSubtask" : "policy.capacityPerReplica";

  // A chart only where there is something to draw: an empty one shows an axis at 1970-01-01 and says nothing.
  const load = observed.length > 0 || points.length > 0 ? canvasBox("load-chart", 340) : null;
  const replicas = steps.length > 0 ? canvasBox("plan-chart", 280) : null;
  root.replaceChildren(
    h("p", {}, h("a", { href: "#/" }, "← Fleet")),
    h("h1", {}, resource.name, " ", h("span", { class: "muted" }, `${resource.kind} · ${resource.group || "no group"} · load metric ${resource.loadMetric}`)),
    h("h2", {}, "Load, forecast and planned capacity"),
    load?.box ?? h("p", { class: "muted", id: "no-load" }, `No ${resource.loadMetric} observed in the last 7 days and no forecast yet.`),
    noCapacity ? h("p", { class: "hint", id: "capacity-hint" },
      `No planned capacity line: the capacity per ${resource.kind === "job" ? "subtask" : "replica"} is unknown, so the plan holds max(minReplicas, current). `,
      `Set ${capacityField} (PUT /api/v1/resources/${resource.name}), or report cpu_cores (and replicas) with policy.replicaCpu so that training fits a capacity model.`) : "",
    h("h2", {}, `Planned ${unit} and requests per replica`),
    replicas?.box ?? h("p", { class: "muted", id: "no-plan" }, "No plan yet: nothing to chart. The service answers from yesterday's same hour until one is published."),
    h("h2", {}, "Now"),
    explanation(current, unit),
    h("h2", {}, "Plan"),
    planSummary(plan, steps),
    h("h2", {}, "Model versions"),
    modelTable(models?.items ?? []),
    h("h2", {}, "Prometheus sources"),
    sourceTable(resource.sources ?? {}));

  if (load) {
    timeChart(load.canvas, [
      { label: `observed ${resource.loadMetric} (hourly mean)`, data: observed, borderColor: colors.observed, pointRadius: 0, borderWidth: 1.5 },
      ...(points.length > 0 ? [
        { label: "forecast lower bound", data: points.map(p => ({ x: Date.parse(p.timestamp), y: p.lower })), borderColor: "transparent", pointRadius: 0 },
        { label: `forecast band (${fmt((forecast?.level ?? 0.95) * 100, 0)}%)`, data: points.map(p => ({ x: Date.parse(p.timestamp), y: p.upper })), borderColor: "transparent", backgroundColor: colors.band, fill: "-1", pointRadius: 0 },
        { label: `forecast (${forecast?.algorithm ?? "no model"})`, data: points.map(p => ({ x: Date.parse(p.timestamp), y: p.forecast })), borderColor: colors.forecast, pointRadius: 0, borderWidth: 2 },
      ] : []),
      ...(noCapacity || steps.length === 0 ? [] : [
        { label: `planned capacity (${unit} × capacity per replica)`, data: capacity, borderColor: colors.capacity, pointRadius: 0, borderWidth: 2, stepped: "before" as const },
      ]),
    ], resource.loadMetric, undefined, { unlisted: ["forecast lower bound"] });
  }
  if (replicas) {
    timeChart(replicas.canvas, [
      { label: `planned ${unit}`, data: stepLine(steps, s => s.count), borderColor: colors.capacity, pointRadius: 0, borderWidth: 2, stepped: "before", yAxisID: "y" },
      { label: "cpu request per replica (cores)", data: stepLine(steps, s => s.cpu ?? null), borderColor: colors.cpu, pointRadius: 0, stepped: "before", yAxisID: "y2" },
      { label: "memory request per replica (GiB)", data: stepLine(steps, s => (s.memory ? s.memory / 2 ** 30 : null)), borderColor: colors.memory, pointRadius: 0, stepped: "before", yAxisID: "y2" },
    ], unit, "cores / GiB");
  }
}

async function activePlan(name: string): Promise<PlanVersionView | null> {
  const versions = await getOptional<PlanVersionPage>(`/api/v1/resources/${enc(name)}/plans`);
  const active = versions?.items.find(v => v.status === "active");
  return active ? get<PlanVersionView>(`/api/v1/resources/${enc(name)}/plans/${active.id}`) : null;
}

/** A step line: each step holds from its start (hour minus lead) to its end. */
function stepLine(steps: PlanStep[], value: (s: PlanStep) => number | null): { x: number; y: number | null }[] {
  const line = steps.map(s => ({ x: Date.parse(s.start), y: value(s) }));
  const last = steps.at(-1);
  if (last) line.push({ x: Date.parse(last.end), y: value(last) });
  return line;
}

function explanation(current: CurrentState | ApiError, unit: string): HTMLElement {
  if (current instanceof ApiError) {
    return h("div", { class: "error", role: "alert" }, `${current.title}: ${current.detail}`);
  }
  return h("div", { class: "card", id: "current" },
    h("p", {}, h("strong", { class: "big" }, `${current.count} ${unit}`), ` from ${current.source}`,
      current.stale ? h("span", { class: "flag warn" }, "stale") : "",
      current.forecastOnly ? h("span", { class: "flag info" }, "forecast only: not to be executed") : ""),
    h("p", { class: "muted" }, `valid ${when(current.validFrom)} to ${when(current.validUntil)}`,
      current.next ? `; next: ${current.next.replicas ?? current.next.parallelism} ${unit} from ${when(current.next.validFrom)}` : ""),
    h("p", { id: "explanation" }, current.explanation?.sentence ?? "No explanation."));
}

function planSummary(plan: PlanVersionView | null, steps: PlanStep[]): HTMLElement {
  if (!plan) return h("p", { class: "muted" }, "No plan yet: the service answers from yesterday's same hour until one is published.");
  const sources = new Map<string, number>();
  for (const s of steps) sources.set(s.source, (sources.get(s.source) ?? 0) + 1);
  const shortfalls = steps.filter(s => s.capacityShortfall).length;
  return h("div", {},
    h("p", {}, `Version ${plan.version.id}, generated ${when(plan.version.generatedAt)}, ${steps.length} hourly steps (${[...sources].map(([s, n]) => `${n} ${s}`).join(", ")})`,
      shortfalls ? h("span", { class: "flag bad" }, `${shortfalls} hours short of capacity`) : ""),
    ...(plan.version.notes ?? []).map(n => h("p", { class: "muted" }, n)));
}

function modelTable(models: ModelVersion[]): HTMLElement {
  if (models.length === 0) return h("p", { class: "muted" }, "Not trained yet.");
  return scroller(h("table", { id: "models" },
    h("thead", {}, h("tr", {}, ...["Version", "Metric", "Status", "Algorithm", "Trained", "MASE", "Seasonal naive MASE", "sMAPE", "Coverage"].map(t => h("th", {}, t)))),
    h("tbody", {}, ...models.map(m => h("tr", {},
      h("td", { class: "num" }, m.version), h("td", {}, m.metric), h("td", {}, m.status), h("td", {}, m.algorithm ?? m.error ?? "—"),
      h("td", {}, when(m.trainedAt)), h("td", { class: "num" }, fixed(m.mase, 3)), h("td", { class: "num" }, fixed(m.seasonalNaiveMase, 3)),
      h("td", { class: "num" }, fixed(m.smape, 2)), h("td", { class: "num" }, fixed(m.coverage, 2)))))));
}

/** Each source's query and pull state; a failing one shows its error (the others and serving go on). */
function sourceTable(sources: Record<string, SourceState>): HTMLElement {
  const rows = Object.entries(sources);
  if (rows.length === 0) return h("p", { class: "muted" }, "No Prometheus sources: samples are pushed.");
  return h("table", { id: "sources" },
    h("thead", {}, h("tr", {}, ...["Metric", "Query", "Server", "From", "Stored up to", "Last success", "Last error"].map(t => h("th", {}, t)))),
    h("tbody", {}, ...rows.map(([metric, s]) => h("tr", {},
      h("td", {}, metric), h("td", {}, h("code", {}, s.query)), h("td", {}, s.server), h("td", {}, s.origin),
      h("td", {}, s.watermark ? when(s.watermark) : "backfill pending"), h("td", {}, when(s.lastSuccessAt)),
      h("td", {}, s.lastError ? h("span", { class: "flag bad" }, `${s.lastError} (${when(s.lastErrorAt)}, ${s.failures} in a row)`) : "—")))));
}

export { bytes };
