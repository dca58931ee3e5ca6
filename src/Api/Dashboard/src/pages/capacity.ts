import { CapacityView, enc, get, Resource, ResourcePage } from "../api";
import { colors, timeChart } from "../charts";
import { bytes, canvasBox, fmt, h } from "../dom";

/** Planned cpu and memory per hour for a group against its quota: free room for co-located offline work, or the shortfall. */
export async function capacityPage(root: HTMLElement, group: string | null): Promise<void> {
  const resources = await get<ResourcePage>("/api/v1/resources?limit=1000");
  const counts = new Map<string, number>();
  for (const r of resources.items as Resource[]) counts.set(r.group, (counts.get(r.group) ?? 0) + 1);
  // Named groups, largest first; resources without one (e.g. created by a CSV import) last. Without a choice in the
  // URL the page opens on the whole fleet, not on whichever group happens to sort first.
  const groups = [...counts.keys()].sort((a, b) => (a === "" ? 1 : 0) - (b === "" ? 1 : 0) || (counts.get(b)! - counts.get(a)!) || a.localeCompare(b));
  const chosen = group !== null && counts.has(group) ? group : null;
  const view = await get<CapacityView>(chosen === null ? "/api/v1/capacity" : `/api/v1/capacity?group=${enc(chosen)}`);
  const hours = chosen === null ? view.fleet : view.hours ?? view.fleet;
  const name = chosen === null ? "whole fleet" : chosen || "(no group)";
  const select = h("select", { id: "capacity-group" },
    h("option", { value: "*" }, `Whole fleet (${resources.items.length} resources)`),
    ...groups.map(g => h("option", { value: g }, `${g || "(no group)"} (${counts.get(g)} resources)`)));
  select.value = chosen === null ? "*" : chosen;
  select.addEventListener("change", () => { location.hash = select.value === "*" ? "#/capacity" : `#/capacity?group=${enc(select.value)}`; });
  const cpu = canvasBox("cpu-chart");
  const memory = canvasBox("memory-chart");
  const peakCpu = Math.max(0, ...hours.map(x => x.cpu));
  const hasCpuQuota = hours.some(x => x.cpuQuota !== undefined && x.cpuQuota !== null);
  const hasMemoryQuota = hours.some(x => x.memoryQuota !== undefined && x.memoryQuota !== null);
  const minFree = hours.some(x => x.freeCpu !== undefined && x.freeCpu !== null) ? Math.min(...hours.map(x => x.freeCpu ?? Infinity)) : undefined;
  root.replaceChildren(
    h("h1", {}, "Fleet capacity"),
    h("div", { class: "toolbar" }, h("label", {}, "Show ", select)),
    h("p", { id: "capacity-summary" },
      `Peak planned cpu ${fmt(peakCpu, 2)} cores (${name})`,
      chosen === null ? "; pick a group to compare it with its quota"
        : hasCpuQuota ? `; against a quota of ${fmt(view.quota?.cpu, 2)} cores; least free ${fmt(minFree, 2)} cores`
        : `; no cpu quota set (PUT /api/v1/groups/${chosen || "{group}"}/quota)`,
      hours.some(x => x.cpuShortfall > 0) ? h("span", { class: "flag bad" }, "quota short at some hours") : ""),
    h("h2", {}, "CPU (cores)"), cpu.box,
    h("h2", {}, "Memory (GiB)"), memory.box);
  const x = (t: string) => Date.parse(t);
  const gib = 2 ** 30;
  // A quota line (and its legend entry) only where a quota is set; the whole fleet beside a group, for scale.
  timeChart(cpu.canvas, [
    { label: `planned cpu, ${name}`, data: hours.map(p => ({ x: x(p.hour), y: p.cpu })), borderColor: colors.cpu, backgroundColor: "rgba(234,88,12,0.15)", fill: "origin", pointRadius: 0, stepped: "before" },
    ...(hasCpuQuota ? [{ label: "cpu quota", data: hours.map(p => ({ x: x(p.hour), y: p.cpuQuota ?? null })), borderColor: colors.quota, borderDash: [6, 4], pointRadius: 0 }] : []),
    ...(chosen !== null ? [{ label: "planned cpu, whole fleet", data: view.fleet.map(p => ({ x: x(p.hour), y: p.cpu })), borderColor: colors.grey, pointRadius: 0, stepped: "before" as const }] : []),
  ], "cores");
  timeChart(memory.canvas, [
    { label: `planned memory, ${name}`, data: hours.map(p => ({ x: x(p.hour), y: p.memory / gib })), borderColor: colors.memory, backgroundColor: "rgba(147,51,234,0.15)", fill: "origin", pointRadius: 0, stepped: "before" },
    ...(hasMemoryQuota ? [{ label: "memory quota", data: hours.map(p => ({ x: x(p.hour), y: p.memoryQuota ? p.memoryQuota / gib : null })), borderColor: colors.quota, borderDash: [6, 4], pointRadius: 0 }] : []),
    ...(chosen !== null ? [{ label: "planned memory, whole fleet", data: view.fleet.map(p => ({ x: x(p.hour), y: p.memory / gib })), borderColor: colors.grey, pointRadius: 0, stepped: "before" as const }] : []),
  ], "GiB");
  memory.canvas.title = `peak ${bytes(Math.max(0, ...hours.map(p => p.memory)))}`;
}
