// The map: every sample as a point (regl-scatterplot, one shared WebGL renderer per page).
// Positions arrive once as float32 bytes; a colour change resends one uint8 column; flagged
// samples are drawn bigger (the w channel).
import createScatterplot, { createRenderer } from "regl-scatterplot";
import { el } from "../dom";
import { bytesOf, float32Of, type KernelChannel } from "../protocol";
import type { SelectionLink } from "../selection/model";
import { categoricalColors, colourValues, scoreRamp } from "./palette";

let sharedRenderer: ReturnType<typeof createRenderer> | null = null;
function renderer() {
  if (!sharedRenderer) sharedRenderer = createRenderer();
  return sharedRenderer;
}

export interface ColourInfo {
  column: string;
  continuous: boolean;
  categories: string[];
}

export class MapView {
  readonly root = el("div", "dqx-map");
  private canvas = el("canvas", "dqx-map-canvas");
  private tooltip = el("div", "dqx-tooltip");
  private legend = el("div", "dqx-legend");
  private notice = el("div", "dqx-notice");
  private plot: any = null;
  private x: Float32Array<ArrayBufferLike> = new Float32Array(0);
  private y: Float32Array<ArrayBufferLike> = new Float32Array(0);
  private z: Float32Array<ArrayBufferLike> = new Float32Array(0);
  private w: Float32Array<ArrayBufferLike> = new Float32Array(0);
  private zType: "categorical" | "continuous" = "categorical";
  private drawing: Promise<void> = Promise.resolve();
  private hoverReq = 0;
  n = 0;

  constructor(private channel: KernelChannel, private selection: SelectionLink,
              private onHover: (row: number | null, at: { x: number; y: number }) => void = () => {}) {
    this.root.dataset.ready = "false";
    this.tooltip.hidden = true;
    this.root.append(this.canvas, this.legend, this.tooltip, this.notice);
  }

  get tooltipElement(): HTMLElement {
    return this.tooltip;
  }

  /** Create the scatterplot once the element is in the page (it needs a size). */
  private ensurePlot(): any {
    if (this.plot) return this.plot;
    const rect = this.root.getBoundingClientRect();
    this.plot = createScatterplot({
      renderer: renderer(),
      canvas: this.canvas,
      width: Math.max(100, Math.floor(rect.width)) as any,
      height: Math.max(100, Math.floor(rect.height)) as any,
      // software GL pays per covered pixel: big maps get small points and regl-scatterplot's
      // performance mode (no anti-aliasing or blending)
      pointSize: this.n > 200_000 ? [1, 3] : [3, 7],
      sizeBy: "valueW",
      pointSizeSelected: 2,
      opacity: 0.8,
      lassoOnLongPress: true,
      lassoMinDelay: 5,
      lassoMinDist: 2,
      aspectRatio: 1,
      performanceMode: this.n > 500_000,
    } as any);
    this.plot.subscribe("select", ({ points }: { points: number[] }) => {
      this.root.dataset.selected = String(points.length);
      this.selection.set(points);
    });
    this.plot.subscribe("deselect", () => {
      this.root.dataset.selected = "0";
      this.selection.set([]);
    });
    this.plot.subscribe("pointover", (row: number) => {
      const [sx, sy] = this.plot.getScreenPosition(row) ?? [0, 0];
      this.onHover(row, { x: sx, y: sy });
    });
    this.plot.subscribe("pointout", () => this.onHover(null, { x: 0, y: 0 }));
    this.selection.onChange((rows, fromHere) => {
      if (fromHere || !this.plot) return;
      this.drawing = this.drawing.then(() => {
        if (rows.length) this.plot.select(rows, { preventEvent: true });
        else this.plot.deselect({ preventEvent: true });
        this.root.dataset.selected = String(rows.length);
      });
    });
    new ResizeObserver(() => {
      const r = this.root.getBoundingClientRect();
      if (r.width > 0 && r.height > 0) this.plot.set({ width: Math.floor(r.width), height: Math.floor(r.height) });
    }).observe(this.root);
    return this.plot;
  }

  /** First draw: positions, colour and flags in one message from the kernel. */
  async load(colorBy: string): Promise<void> {
    const t0 = performance.now();
    const { content, buffers } = await this.channel.request("map", { color_by: colorBy, positions: true });
    this.n = content.n;
    this.setNotice(content.notice ?? "");
    this.takePositions(buffers[0]);
    this.takeColour(content.colour, buffers[1]);
    this.w = colourValues(bytesOf(buffers[2]), false);
    this.root.dataset.bytes = String(buffers.reduce((s, b) => s + b.byteLength, 0));
    await this.draw(false);
    this.root.dataset.firstDrawMs = String(Math.round(performance.now() - t0));
    this.root.dataset.ready = "true";
  }

  async recolour(colorBy: string): Promise<void> {
    this.root.dataset.ready = "false";
    const { content, buffers } = await this.channel.request("map", { color_by: colorBy, positions: false });
    this.takeColour(content.colour, buffers[0]);
    await this.draw(false, true);
    this.root.dataset.ready = "true";
  }

  /** New layout from the kernel (UMAP finished): points move to where they belong. */
  async move(content: any, buffers: DataView[]): Promise<void> {
    this.setNotice(content.notice ?? "");
    this.takePositions(buffers[0]);
    await this.draw(true, true);
    this.root.dataset.layout = content.layout_status ?? "";
  }

  async setFlags(flags: DataView): Promise<void> {
    this.w = colourValues(bytesOf(flags), false);
    await this.draw(false, true);
  }

  /** Show only `rows` (null = all). */
  setVisible(rows: number[] | null): void {
    this.drawing = this.drawing.then(() => {
      if (!this.plot) return;
      if (rows === null) this.plot.unfilter({ preventEvent: true });
      else this.plot.filter(rows, { preventEvent: true });
      this.root.dataset.visible = String(rows === null ? this.n : rows.length);
    });
  }

  private takePositions(view: DataView): void {
    const xy = float32Of(view);
    const n = xy.length >> 1;
    this.x = new Float32Array(n);
    this.y = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      this.x[i] = xy[2 * i];
      this.y[i] = xy[2 * i + 1];
    }
  }

  private takeColour(info: ColourInfo, codes: DataView): void {
    this.z = colourValues(bytesOf(codes), info.continuous);
    this.zType = info.continuous ? "continuous" : "categorical";
    const colours = info.continuous ? scoreRamp(32) : categoricalColors(info.categories.length);
    this.ensurePlot().set({ colorBy: "valueZ", pointColor: colours });
    this.renderLegend(info, colours);
  }

  private renderLegend(info: ColourInfo, colours: string[]): void {
    this.legend.replaceChildren(el("div", "dqx-legend-title", info.column));
    if (info.continuous) {
      const ramp = el("div", "dqx-ramp");
      ramp.style.background = `linear-gradient(to right, ${colours.join(",")})`;
      this.legend.append(el("span", "", "0"), ramp, el("span", "", "1"));
      return;
    }
    info.categories.slice(0, 24).forEach((c, i) => {
      const item = el("div", "dqx-legend-item");
      const dot = el("span", "dqx-dot");
      dot.style.background = colours[i];
      item.append(dot, el("span", "", c));
      this.legend.append(item);
    });
    if (info.categories.length > 24) this.legend.append(el("div", "", `… ${info.categories.length - 24} more`));
  }

  private setNotice(text: string): void {
    this.notice.textContent = text;
    this.notice.hidden = !text;
  }

  private draw(transition: boolean, keepView = false): Promise<void> {
    const plot = this.ensurePlot();
    this.drawing = this.drawing.then(async () => {
      const selected = plot.get("selectedPoints") as number[];
      await plot.draw({ x: this.x, y: this.y, z: this.z, w: this.w },
        { transition, transitionDuration: 700, preventFilterReset: keepView, zDataType: this.zType, wDataType: "categorical" });
      if (keepView && selected?.length) plot.select(selected, { preventEvent: true });
    });
    return this.drawing;
  }

  destroy(): void {
    this.plot?.destroy();
    this.plot = null;
  }
}
