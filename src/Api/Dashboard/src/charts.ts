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

/** Ticks on whole UTC hours (every 6 h, day or two days by range), not wherever the data happens to start. */
function alignedTicks(min: number, max: number): { value: number }[] {
  const hour = 3_600_000;
  const span = max - min;
  const step = span <= 2.5 * 24 * hour ? 6 * hour : span <= 9 * 24 * hour ? 24 * hour : 48 * hour;
  const ticks: { value: number }[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max; t += step) ticks.push({ value: t });
  return ticks;
}

const charts = new WeakMap<HTMLCanvasElement, Chart>();

/** Marks the canvas with how many points it draws, so people and tests can tell an empty chart from a drawn one. */
function mark(canvas: HTMLCanvasElement, datasets: ChartDataset[]): void {
  canvas.dataset.points = String(datasets.reduce((n, d) => n + d.data.length, 0));
}

/** A chart over UTC time (x in epoch milliseconds). */
export function timeChart(canvas: HTMLCanvasElement, datasets: ChartDataset<"line", { x: number; y: number | null }[]>[], yTitle: string, y2Title?: string): Chart {
  charts.get(canvas)?.destroy();
  const chart = new Chart(canvas, {
    type: "line",
    data: { datasets },
    options: {
      parsing: false,
      normalized: true,
      maintainAspectRatio: false,
      interaction: { mode: "nearest", axis: "x", intersect: false },
      plugins: { legend: { position: "bottom" }, tooltip: { callbacks: { title: items => utcLabel(items[0].parsed.x ?? 0) + " UTC" } } },
      scales: {
        x: { type: "linear", ticks: { callback: v => utcLabel(Number(v)) }, afterBuildTicks: axis => { axis.ticks = alignedTicks(axis.min, axis.max); } },
        y: { title: { display: true, text: yTitle }, beginAtZero: true },
        ...(y2Title ? { y2: { position: "right" as const, title: { display: true, text: y2Title }, beginAtZero: true, grid: { drawOnChartArea: false } } } : {}),
      },
    },
  });
  charts.set(canvas, chart);
  mark(canvas, datasets);
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
  mark(canvas, datasets);
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
