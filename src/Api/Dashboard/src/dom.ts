// Small DOM helpers: the pages build plain elements; text always goes through textContent (no HTML injection).

type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function canvasBox(id: string, height = 320): { box: HTMLDivElement; canvas: HTMLCanvasElement } {
  const canvas = h("canvas", { id });
  const box = h("div", { class: "chart", style: `height:${height}px` }, canvas);
  return { box, canvas };
}

export function fmt(n: number | null | undefined, digits = 1): string {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return n.toLocaleString("en-US", { maximumFractionDigits: digits });
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${fmt(v, 1)} ${units[i]}`;
}

export function when(iso: string | null | undefined): string {
  return iso ? iso.replace("T", " ").slice(0, 16) + " UTC" : "—";
}

/** A number with exactly <paramref name="digits"/> decimals, so a column of them lines up and compares by eye. */
export function fixed(n: number | null | undefined, digits: number): string {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return n.toFixed(digits);
}

/** Text with `code` spans (as the API's notes and help write them) rendered as code, not as literal backticks. */
export function withCode(text: string): (Node | string)[] {
  return text.split(/`([^`]+)`/).map((part, i) => (i % 2 === 1 ? h("code", {}, part) : part));
}

/** A wide table in a box that scrolls sideways by itself on a narrow screen, instead of the whole page. */
export function scroller(table: HTMLElement): HTMLDivElement {
  return h("div", { class: "table-scroll" }, table);
}
