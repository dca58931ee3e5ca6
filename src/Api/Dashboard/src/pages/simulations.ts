import { enc, get } from "../api";
import { barChart, colors, timeChart } from "../charts";
import { canvasBox, fmt, h, scroller, when, withCode } from "../dom";

export interface StrategyTotals { replicaHours: number; underProvisionedHours: number; hours: number; unservedLoad: number; meanUtilization: number; scalingActions: number }

export interface SimulationReport {
  trainDays: number;
  replayedSeries: number;
  seriesDays: number;
  totals: Record<string, StrategyTotals>;
  days: { day: string; neededReplicaHours: number; strategies: Record<string, StrategyTotals> }[];
  forecast: { level: number; mase?: number; coverage?: number; days: number; untrustedDays: number };
  goal: { replicaHoursSavedVsStaticPeak: number; underProvisionedVsReactive?: number; underProvisionedShare: number; met: boolean };
  notes: string[];
}

export interface Simulation { id: number; status: string; createdAt?: string; finishedAt?: string; progress?: { done: number; total: number; percent: number }; error?: string; report?: SimulationReport }

const palette = [colors.forecast, colors.capacity, colors.cpu, colors.memory, colors.grey, colors.quota];

export async function simulationsPage(root: HTMLElement): Promise<void> {
  const list = await get<{ items: Simulation[] }>("/api/v1/simulations");
  root.replaceChildren(
    h("h1", {}, "Simulations"),
    h("p", { class: "muted" }, ...withCode("Replays of history against predictive, reactive and static strategies (`POST /api/v1/simulations`, or `forecaster simulate`).")),
    list.items.length === 0 ? h("p", { class: "muted" }, "No simulation yet.") :
      h("table", { id: "simulations" },
        h("thead", {}, h("tr", {}, ...["Simulation", "Status", "Created", "Finished"].map(t => h("th", {}, t)))),
        h("tbody", {}, ...list.items.map(s => h("tr", {},
          h("td", {}, h("a", { href: `#/simulations/${enc(String(s.id))}` }, `#${s.id}`)), h("td", {}, s.status), h("td", {}, when(s.createdAt)), h("td", {}, when(s.finishedAt)))))));
}

/** Cost and risk per strategy as bars, and the replayed days as a chart. */
export async function simulationPage(root: HTMLElement, id: string): Promise<void> {
  const sim = await get<Simulation>(`/api/v1/simulations/${enc(id)}`);
  if (!sim.report) {
    root.replaceChildren(h("h1", {}, `Simulation #${sim.id}`), h("p", {}, `Status: ${sim.status}`, sim.progress ? ` (${sim.progress.done}/${sim.progress.total})` : ""), sim.error ? h("div", { class: "error", role: "alert" }, sim.error) : "");
    return;
  }
  const report = sim.report;
  const strategies = Object.keys(report.totals);
  const cost = canvasBox("cost-chart", 300);
  const risk = canvasBox("risk-chart", 300);
  const days = canvasBox("days-chart", 320);
  const goal = report.goal;
  root.replaceChildren(
    h("p", {}, h("a", { href: "#/simulations" }, "← Simulations")),
    h("h1", {}, `Simulation #${sim.id}`),
    h("p", { id: "simulation-summary" },
      `${report.replayedSeries} series, ${report.seriesDays} series-days replayed after ${report.trainDays} training days. `,
      `Forecast MASE ${fmt(report.forecast.mase, 3)}, ${fmt(report.forecast.level * 100, 0)}% interval coverage ${fmt((report.forecast.coverage ?? 0) * 100, 1)}%. `,
      `predictive+reactive saves ${fmt(goal.replicaHoursSavedVsStaticPeak * 100, 1)}% replica-hours against static-peak.`,
      h("span", { class: `flag ${goal.met ? "info" : "warn"}` }, goal.met ? "goal met" : "goal not met")),
    goalTable(report),
    scroller(h("table", { id: "totals" },
      h("thead", {}, h("tr", {}, ...["Strategy", "Replica-hours", "Under-provisioned hours", "Hours", "Unserved load", "Mean utilisation", "Scaling actions"].map(t => h("th", {}, t)))),
      h("tbody", {}, ...strategies.map(s => {
        const t = report.totals[s];
        return h("tr", { "data-strategy": s }, h("td", {}, s), h("td", { class: "num" }, fmt(t.replicaHours, 0)), h("td", { class: "num" }, fmt(t.underProvisionedHours, 0)),
          h("td", { class: "num" }, fmt(t.hours, 0)), h("td", { class: "num" }, fmt(t.unservedLoad, 0)), h("td", { class: "num" }, `${fmt(t.meanUtilization * 100, 1)}%`), h("td", { class: "num" }, fmt(t.scalingActions, 0)));
      })))),
    ...report.notes.map(n => h("p", { class: "muted" }, ...withCode(n))),
    h("h2", {}, "Cost: replica-hours"), cost.box,
    h("h2", {}, "Risk: under-provisioned hours"), risk.box,
    h("h2", {}, "Replayed days: replica-hours per day"), days.box);
  barChart(cost.canvas, strategies, [{ label: "replica-hours", data: strategies.map(s => report.totals[s].replicaHours), backgroundColor: colors.forecast }], "replica-hours");
  barChart(risk.canvas, strategies, [{ label: "under-provisioned hours", data: strategies.map(s => report.totals[s].underProvisionedHours), backgroundColor: colors.quota }], "hours");
  const day = (d: string) => Date.parse(`${d}T00:00:00Z`);
  timeChart(days.canvas, [
    { label: "needed at 100% utilisation", data: report.days.map(d => ({ x: day(d.day), y: d.neededReplicaHours })), borderColor: colors.observed, borderDash: [4, 3], pointRadius: 2 },
    ...strategies.map((s, i) => ({
      label: s, data: report.days.map(d => ({ x: day(d.day), y: d.strategies[s]?.replicaHours ?? null })), borderColor: palette[i % palette.length], pointRadius: 2,
    })),
  ], "replica-hours per day");
}

/**
 * What "goal" means, each part with this replay's number and whether it holds (the server's GoalCheck: predictive+reactive
 * uses at least 30% fewer replica-hours than static-peak, with under-provisioned hours at most a third of reactive's and
 * below 1% of hours).
 */
function goalTable(report: SimulationReport): HTMLElement {
  const goal = report.goal;
  const combined = report.totals["predictive+reactive"];
  const reactive = report.totals["reactive"];
  const thirdOfReactive = combined && reactive ? 3 * combined.underProvisionedHours <= reactive.underProvisionedHours : undefined;
  const parts: [string, string, boolean | undefined][] = [
    ["replica-hours saved against static-peak", `${fmt(goal.replicaHoursSavedVsStaticPeak * 100, 1)}% (at least 30%)`, goal.replicaHoursSavedVsStaticPeak >= 0.3],
    ["under-provisioned hours against reactive's", goal.underProvisionedVsReactive !== undefined && goal.underProvisionedVsReactive !== null
      ? `${fmt(goal.underProvisionedVsReactive, 2)}× (at most 0.33×)` : `${combined?.underProvisionedHours ?? 0} h, reactive had none (at most a third of reactive's)`, thirdOfReactive],
    ["share of hours under-provisioned", `${fmt(goal.underProvisionedShare * 100, 2)}% (below 1%)`, goal.underProvisionedShare < 0.01],
  ];
  return h("table", { id: "goal" },
    h("thead", {}, h("tr", {}, ...["Goal (predictive+reactive)", "This replay", ""].map(t => h("th", {}, t)))),
    h("tbody", {}, ...parts.map(([what, value, ok]) => h("tr", { "data-met": String(ok) },
      h("td", {}, what), h("td", { class: "num" }, value), h("td", {}, ok === undefined ? "—" : ok ? "met" : "not met")))));
}
