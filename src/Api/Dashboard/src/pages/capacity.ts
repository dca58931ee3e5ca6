import { CapacityView, enc, get, Resource, ResourcePage } from "../api";
import { colors, timeChart } from "../charts";
import { bytes, canvasBox, fmt, h } from "../dom";

/** Planned cpu and memory per hour for a group against its quota: free room for co-located offline work, or the shortfall. */
export async function capacityPage(root: HTMLElement, group: string | null): Promise<void> {
  const resources = await get<ResourcePage>("/api/v1/resources?limit=1000");
  const groups = [...new Set(resources.items.map((r: Resource) => r.group))].sort();
  const chosen = group ?? groups[0] ?? "";
  const view = await get<CapacityView>(`/api/v1/capacity?group=${enc(chosen)}`);
  const hours = view.hours ?? view.fleet;
  const select = h("select", { id: "capacity-group" }, ...groups.map(g => {
    const o = h("option", { value: g }, g || "(none)");
    if (g === chosen) o.selected = true;
    return o;
  }));
  select.addEventListener("change", () => { location.hash = `#/capacity?group=${enc(select.value)}`; });
  const cpu = canvasBox("cpu-chart");
  const memory = canvasBox("memory-chart");
  const peakCpu = Math.max(0, ...hours.map(x => x.cpu));
  const minFree = hours.some(x => x.freeCpu !== undefined && x.freeCpu !== null) ? Math.min(...hours.map(x => x.freeCpu ?? Infinity)) : undefined;
  root.replaceChildren(
    h("h1", {}, "Fleet capacity"),
    h("div", { class: "toolbar" }, h("label", {}, "Group ", select)),
    h("p", { id: "capacity-summary" },
      `Peak planned cpu ${fmt(peakCpu, 2)} cores`,
      view.quota?.cpu !== undefined && view.quota?.cpu !== null ? ` against a quota of ${fmt(view.quota.cpu, 2)} cores; least free ${fmt(minFree, 2)} cores` : " (no cpu quota set: PUT /api/v1/groups/{group}/quota)",
      hours.some(x => x.cpuShortfall > 0) ? h("span", { class: "flag bad" }, "quota short at some hours") : ""),
    h("h2", {}, "CPU (cores)"), cpu.box,
    h("h2", {}, "Memory (GiB)"), memory.box);
  const x = (t: string) => Date.parse(t);
  timeChart(cpu.canvas, [
    { label: `planned cpu, group ${chosen || "(none)"}`, data: hours.map(p => ({ x: x(p.hour), y: p.cpu })), borderColor: colors.cpu, backgroundColor: "rgba(234,88,12,0.15)", fill: "origin", pointRadius: 0, stepped: "before" },
    { label: "quota", data: hours.map(p => ({ x: x(p.hour), y: p.cpuQuota ?? null })), borderColor: colors.quota, borderDash: [6, 4], pointRadius: 0 },
    { label: "planned cpu, whole fleet", data: view.fleet.map(p => ({ x: x(p.hour), y: p.cpu })), borderColor: colors.grey, pointRadius: 0, stepped: "before" },
  ], "cores");
  timeChart(memory.canvas, [
    { label: `planned memory, group ${chosen || "(none)"}`, data: hours.map(p => ({ x: x(p.hour), y: p.memory / 2 ** 30 })), borderColor: colors.memory, backgroundColor: "rgba(147,51,234,0.15)", fill: "origin", pointRadius: 0, stepped: "before" },
    { label: "quota", data: hours.map(p => ({ x: x(p.hour), y: p.memoryQuota ? p.memoryQuota / 2 ** 30 : null })), borderColor: colors.quota, borderDash: [6, 4], pointRadius: 0 },
  ], "GiB");
  memory.canvas.title = `peak ${bytes(Math.max(0, ...hours.map(p => p.memory)))}`;
}
