// One histogram per score with the flag threshold as a handle (drag it, or use the slider);
// releasing it asks the kernel to re-flag, and the flagged count updates live.
import { el } from "../dom";
import type { KernelChannel } from "../protocol";
import { histogramBars, snapTo, valueToX, xToValue } from "./histogram";

const W = 240;
const H = 56;
const SVG = "http://www.w3.org/2000/svg";

export interface ScoreHistogram {
  column: string;
  flag: string;
  counts: number[];
  lo: number;
  hi: number;
  threshold: number;
  flagged: number;
}

export class ThresholdChart {
  readonly root = el("div", "dqx-chart");
  private title = el("div", "dqx-chart-title");
  private svg = document.createElementNS(SVG, "svg");
  private slider = el("input", "dqx-threshold");
  private h: ScoreHistogram;
  private readonly home: number; // the threshold when the Explorer opened

  constructor(h: ScoreHistogram, private channel: KernelChannel) {
    this.h = h;
    this.home = h.threshold;
    this.root.dataset.column = h.column;
    this.svg.setAttribute("width", String(W));
    this.svg.setAttribute("height", String(H));
    this.slider.type = "range";
    this.slider.min = String(h.lo);
    this.slider.max = String(h.hi);
    this.slider.step = String((h.hi - h.lo) / 1000 || 0.001);
    this.slider.value = String(h.threshold);
    this.slider.setAttribute("aria-label", `threshold for ${h.column}`);
    this.slider.addEventListener("input", () => this.preview(Number(this.slider.value)));
    this.slider.addEventListener("change", () => this.commit(Number(this.slider.value)));
    let dragging = false;
    this.svg.addEventListener("pointerdown", (e) => {
      dragging = true;
      this.svg.setPointerCapture(e.pointerId);
      this.preview(this.valueAt(e));
    });
    this.svg.addEventListener("pointermove", (e) => dragging && this.preview(this.valueAt(e)));
    this.svg.addEventListener("pointerup", (e) => {
      if (!dragging) return;
      dragging = false;
      this.commit(this.valueAt(e));
    });
    this.root.append(this.title, this.svg, this.slider);
    this.update(h);
  }

  private valueAt(e: PointerEvent): number {
    const r = this.svg.getBoundingClientRect();
    return xToValue(e.clientX - r.left, this.h.lo, this.h.hi, W);
  }

  private preview(v: number): void {
    this.draw(v);
  }

  private commit(v: number): void {
    v = snapTo(v, this.home, (this.h.hi - this.h.lo) / W); // back where it was: exactly the same flags
    this.root.dataset.ready = "false";
    this.slider.value = String(v);
    this.channel.tell("threshold", { column: this.h.column, value: v });
  }

  update(h: ScoreHistogram): void {
    this.h = h;
    this.slider.value = String(h.threshold);
    this.root.dataset.flagged = String(h.flagged);
    this.root.dataset.threshold = String(h.threshold);
    this.root.dataset.lo = String(h.lo);
    this.root.dataset.hi = String(h.hi);
    this.title.textContent = `${h.column} — ${h.flagged.toLocaleString()} flagged (≥ ${h.threshold.toFixed(3)})`;
    this.draw(h.threshold);
    this.root.dataset.ready = "true";
  }

  private draw(threshold: number): void {
    const bars = histogramBars(this.h.counts, this.h.lo, this.h.hi, threshold, W, H - 4);
    const nodes: Element[] = bars.map((b) => {
      const r = document.createElementNS(SVG, "rect");
      r.setAttribute("x", String(b.x));
      r.setAttribute("y", String(b.y + 4));
      r.setAttribute("width", String(b.w));
      r.setAttribute("height", String(b.h));
      r.setAttribute("class", b.flagged ? "dqx-bar dqx-bar-flagged" : "dqx-bar");
      return r;
    });
    const x = valueToX(threshold, this.h.lo, this.h.hi, W);
    const handle = document.createElementNS(SVG, "line");
    handle.setAttribute("x1", String(x));
    handle.setAttribute("x2", String(x));
    handle.setAttribute("y1", "0");
    handle.setAttribute("y2", String(H));
    handle.setAttribute("class", "dqx-handle");
    nodes.push(handle);
    this.svg.replaceChildren(...nodes);
  }
}
