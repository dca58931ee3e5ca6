import {
  BarController, BarElement, CategoryScale, Chart, ChartDataset, Filler, Legend, LinearScale, LineController,
  LineElement, PointElement, Tooltip,
} from "chart.js";

Chart.register(LineController, LineElement, PointElement, BarController, BarElement, LinearScale, CategoryScale, Filler, Legend, Tooltip);
Chart.defaults.animation = false;
Chart.defaults.font.family = "system-ui, sans-serif";

/** UTC "MM-DD HH:mm": every timestamp in Forecaster is UTC, and so is every axis. */
export function utcLabel(ms: number): string {
  return new Date(ms).toISOString().slice(5, 16).replace("T", " ");
}

/**
 * Ticks on whole UTC hours (6 h, 12 h, a day, two or four days), not wherever the data happens to start: the finest step
 * whose labels (about 110 px each) fit the chart's width, so a narrow screen gets fewer ticks instead of overlapping ones.
 */
function alignedTicks(min: number, max: number, width: number): { value: number }[] {
  const hour = 3_600_000;
  const span = max - min;
  const room = Math.max(2, Math.floor(Math.max(width - 80, 100) / 110));
  const step = [6, 12, 24, 48, 96, 168].map(h => h * hour).find(s => span / s <= room) ?? 336 * hour;
  const ticks: { value: number }[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max; t += step) ticks.push({ value: t });
  return ticks;
}

const charts = new WeakMap<HTMLCanvasElement, Chart>();

/**
 * Marks the canvas with how many points it draws (nulls, the gaps, apart), the series and the legend's entries, so
 * people and tests can tell an empty chart from a drawn one and see what the legend says without reading pixels.
 */
function mark(canvas: HTMLCanvasElement, datasets: ChartDataset[], legend: string[]): void {
  const values = datasets.flatMap(d => d.data as unknown[]);
  canvas.dataset.points = String(values.filter(v => v !== null && (typeof v !== "object" || (v as { y: unknown }).y !== null)).length);
  canvas.dataset.gaps = String(values.filter(v => v === null || (typeof v === "object" && v !== null && (v as { y: unknown }).y === null)).length);
  canvas.dataset.series = datasets.map(d => d.label ?? "").join("|");
  canvas.dataset.legend = legend.join("|");
}

/**
 * Hourly points with a null wherever an hour (or more) is missing, so the line breaks at a gap in the observations
 * instead of drawing a straight line across it.
 */
export function withGaps(points: { x: number; y: number }[], step = 3_600_000): { x: number; y: number | null }[] {
  const out: { x: number; y: number | null }[] = [];
  for (const p of points) {
    const prev = out.at(-1);
    if (prev && p.x - prev.x > step) out.push({ x: prev.x + step, y: null });
    out.push(p);
  }
  return out;
}

/** Options of a time chart: datasets that draw (e.g. the lower edge of a band) but have no entry in the legend. */
export interface TimeChartOptions { unlisted?: string[] }

/** A chart over UTC time (x in epoch milliseconds). */
export function timeChart(canvas: HTMLCanvasElement, datasets: ChartDataset<"line", { x: number; y: number | null }[]>[], yTitle: string, y2Title?: string, options: TimeChartOptions = {}): Chart {
  charts.get(canvas)?.destroy();
  const unlisted = new Set(options.unlisted ?? []);
  const chart = new Chart(canvas, {
    type: "line",
    data: { datasets },
    options: {
      parsing: false,
      normalized: true,
      maintainAspectRatio: false,
      interaction: { mode: "nearest", axis: "x", intersect: false },
      plugins: {
        legend: { position: "bottom", labels: { filter: item => !unlisted.has(item.text) } },
        tooltip: { callbacks: { title: items => utcLabel(items[0].parsed.x ?? 0) + " UTC" } },
      },
      scales: {
        x: { type: "linear", ticks: { callback: v => utcLabel(Number(v)) }, afterBuildTicks: axis => { axis.ticks = alignedTicks(axis.min, axis.max, axis.chart.width); } },
        y: { title: { display: true, text: yTitle }, beginAtZero: true },
        ...(y2Title ? { y2: { position: "right" as const, title: { display: true, text: y2Title }, beginAtZero: true, grid: { drawOnChartArea: false } } } : {}),
      },
    },
  });
  charts.set(canvas, chart);
  mark(canvas, datasets, datasets.map(d => d.label ?? "").filter(l => !unlisted.has(l)));
  return chart;
}

/** Grouped bars, one group per label. */
export function barChart(canvas: HTMLCanvasElement, labels: string[], datasets: ChartDataset<"bar", number[]>[], yTitle: string): Chart {
  charts.get(canvas)?.destroy();
  const chart = new Chart(canvas, {
    type: "bar",
    data: { labels, datasets },
    options: { maintainAspectRatio: false, plugins: { legend: { position: "bottom" } }, scales: { y: { beginAtZero: true, title: { display: true, text: yTitle } } } },
  });
  charts.set(canvas, chart);
  mark(canvas, datasets, datasets.map(d => d.label ?? ""));
  return chart;
}

export const colors = {
  observed: "#334155",
  forecast: "#2563eb",
  band: "rgba(37, 99, 235, 0.15)",
  capacity: "#16a34a",
  cpu: "#ea580c",
  memory: "#9333ea",
  quota: "#dc2626",
  grey: "#94a3b8",
};
