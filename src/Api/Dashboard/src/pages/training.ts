import { get, TrainingRun } from "../api";
import { fmt, h, scroller, when } from "../dom";

/** Training runs, newest first; refreshes itself while one is queued or running. */
export async function trainingPage(root: HTMLElement, isCurrent: () => boolean): Promise<void> {
  const runs = (await get<{ items: TrainingRun[] }>("/api/v1/training-runs?limit=50")).items;
  root.replaceChildren(
    h("h1", {}, "Training runs"),
    runs.length === 0 ? h("p", { class: "muted" }, "No training run yet: the nightly run starts at 02:00 UTC, or POST /api/v1/training-runs.") :
      scroller(h("table", { id: "runs" },
        h("thead", {}, h("tr", {}, ...["Run", "Trigger", "Status", "Progress", "Failed", "Started", "Seconds", "Planning"].map(t => h("th", {}, t)))),
        h("tbody", {}, ...runs.map(r => h("tr", { "data-status": r.status },
          h("td", { class: "num" }, `#${r.id}`), h("td", {}, r.trigger), h("td", {}, h("span", { class: `status ${r.status}` }, r.status)),
          h("td", {}, h("progress", { max: "100", value: String(r.progress.percent) }), ` ${r.progress.done}/${r.progress.total}`),
          h("td", { class: "num" }, r.progress.failed), h("td", {}, when(r.startedAt ?? r.createdAt)), h("td", { class: "num" }, fmt(r.seconds, 1)),
          // The planning outcome is a sentence: it wraps in its cell instead of widening the table past the screen.
          h("td", { class: "muted wrap" }, r.error ?? r.planning ?? "")))))));
  if (runs.some(r => r.status === "queued" || r.status === "running")) {
    setTimeout(() => { if (isCurrent()) void trainingPage(root, isCurrent).catch(() => undefined); }, 2000);
  }
}
