// The map: every sample as a point. Positions arrive once as float32 bytes and go to the GPU as
// they are (points.ts, one draw call); a colour change resends one uint8 column; flagged samples
// are drawn bigger. Frames are drawn on demand only (software GL pays for every frame).
// Lasso, click, pan, zoom and hover: gestures.ts; which points a lasso holds: lasso.ts.
// Above Explorer(map_max_points=) the kernel sends only the drawn points and their rows; a lasso is
// then resolved in the kernel over every sample (sampled.ts).
import { el } from "../dom";
import { bytesOf, float32Of, type KernelChannel } from "../protocol";
import type { SelectionLink } from "../selection/model";
import { Camera, type ScreenTransform } from "./camera";
import { attachGestures, type SelectMode } from "./gestures";
import { countBits, nearestPoint, pointsInPolygon } from "./lasso";
import { drawnMask, gatherRows, polygonToData, uint32Of, withRow } from "./sampled";
import { categoricalColors, paletteBytes, scoreRamp } from "./palette";
import { createLayer, type Layer, type RendererChoice } from "./layer";
import { TOOLS, toolAfterClick, toolTitle, type Tool } from "./tools";

const TRANSITION_MS = 700;
// above this many points, pan and zoom move the last frame at once and redraw when the hand rests
const PREVIEW_MIN_POINTS = 200_000;
const SETTLE_MS = 120;
const HOVER_RADIUS_PX = 6;

export interface ColourInfo {
  column: string;
  continuous: boolean;
  categories: string[];
}

export class MapView {
  readonly root = el("div", "dqx-map");
  // the plot area: the legend sits above it, outside, so it never covers points
  private plot = el("div", "dqx-map-plot");
  private canvas = el("canvas", "dqx-map-canvas");
  private overlay = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  private lassoPath = document.createElementNS("http://www.w3.org/2000/svg", "polygon");
  private tooltip = el("div", "dqx-tooltip");
  private legend = el("div", "dqx-legend");
  private notice = el("div", "dqx-notice");
  private tools = el("div", "dqx-map-tools");
  private tool: Tool = "pan";
  private layer: Layer | null = null;
  private camera = new Camera();
  private xy: Float32Array<ArrayBufferLike> = new Float32Array(0);
  private hidden: Uint8Array | null = null; // one byte per point, 1 = filtered out
  private selected: Uint8Array | null = null; // bitmask, null = nothing selected
  private state = new Uint8Array(0);
  private transitionStart = -1;
  private frameQueued = false;
  private hoverRow = -1;
  private lastFrame = document.createElement("canvas");
  private lastFrameAt: ScreenTransform | null = null;
  private settle = -1;
  private detach: () => void = () => {};
  // a sampled map: the row of an.samples of each drawn point (null = every row is drawn, point i = row i)
  private rows: Uint32Array | null = null;
  private visibleRows: Uint8Array | null = null; // the filter's bitmask over every row (null = all)
  private lassoSeq = 0;
  /** drawn points */
  n = 0;
  /** samples (rows of an.samples): n unless the map is sampled */
  total = 0;

  constructor(private channel: KernelChannel, private selection: SelectionLink,
              private onHover: (row: number | null, at: { x: number; y: number }) => void = () => {},
              private renderer: RendererChoice = "auto") {
    this.root.dataset.ready = "false";
    this.tooltip.hidden = true;
    this.overlay.classList.add("dqx-map-overlay");
    this.lassoPath.classList.add("dqx-lasso");
    this.overlay.append(this.lassoPath);
    for (const tool of TOOLS) {
      const b = el("button", "dqx-tool", tool) as HTMLButtonElement;
      b.dataset.tool = tool;
      b.title = toolTitle(tool);
      b.addEventListener("click", () => this.setTool(toolAfterClick(this.tool, tool)));
      this.tools.append(b);
    }
    this.setTool("pan");
    this.showView();
    this.plot.append(this.canvas, this.overlay, this.tools, this.tooltip, this.notice);
    this.root.append(this.legend, this.plot);
    this.selection.onChange((fromHere) => {
      if (!fromHere) this.showSelection(this.selection.count() ? this.selection.mask() : null);
    });
    this.detach = attachGestures(this.canvas, this.lassoPath, {
      lasso: (polygon, mode) => this.lasso(polygon, mode),
      click: (x, y, mode) => this.click(x, y, mode),
      pan: (dx, dy) => {
        this.camera.pan(dx, dy);
        this.viewMoved();
      },
      zoom: (x, y, f) => {
        this.camera.zoomAt(x, y, f);
        this.viewMoved();
      },
      hover: (x, y) => this.hover(x, y),
      leave: () => this.hover(-1e9, -1e9),
      tool: () => this.tool,
      reset: () => {
        this.camera.reset();
        this.showView();
        this.requestFrame();
      },
    });
    new ResizeObserver(() => {
      if (this.resize()) this.requestFrame();
    }).observe(this.plot);
  }

  /** Choose the map tool (pan, lasso or box); the buttons show which is active. */
  setTool(tool: Tool): void {
    this.tool = tool;
    this.root.dataset.tool = tool;
    for (const b of Array.from(this.tools.children) as HTMLElement[]) {
      b.setAttribute("aria-pressed", String(b.dataset.tool === tool));
    }
  }

  get tooltipElement(): HTMLElement {
    return this.tooltip;
  }

  /** Ask the kernel for positions, colour and flags (one message); start it early, it is the big one. */
  static request(channel: KernelChannel, colorBy: string): { sent: number; reply: Promise<{ content: any; buffers: DataView[] }> } {
    return { sent: performance.now(), reply: channel.request("map", { color_by: colorBy, positions: true }) };
  }

  /** First draw from the reply to `MapView.request`. */
  async load(pending: ReturnType<typeof MapView.request>): Promise<void> {
    const t0 = pending.sent;
    const { content, buffers } = await pending.reply;
    this.root.dataset.bytes = String(buffers.reduce((s, b) => s + b.byteLength, 0));
    const t1 = performance.now();
    this.setNotice(content.notice ?? "");
    try {
      const { layer, kind } = createLayer(this.renderer);
      this.layer = layer;
      this.root.dataset.renderer = kind;
    } catch (e) {
      this.setNotice(`the map cannot be drawn here: ${(e as Error).message}`);
      this.root.dataset.ready = "true";
      return;
    }
    this.takeMap(content, buffers, false);
    this.resize();
    this.drawFrame();
    // request -> drawn, and of that the upload and first frame alone (read by bench/bench_explorer.py)
    this.root.dataset.firstDrawMs = String(Math.round(performance.now() - t0));
    this.root.dataset.drawMs = String(Math.round(performance.now() - t1));
    this.root.dataset.ready = "true";
  }

  /** Positions, colours and flags of a "map" reply (of the drawn points only when it is sampled). */
  private takeMap(content: any, buffers: DataView[], animate: boolean): void {
    const rows = content.sampled ? uint32Of(buffers[3]) : null;
    this.total = Number(content.n ?? (rows ? 0 : buffers[0].byteLength >> 3));
    this.takePositions(buffers[0], animate && !rows && !this.rows, rows);
    this.takeColour(content.colour, buffers[1]);
    this.layer?.setFlags(bytesOf(buffers[2]));
    this.root.dataset.drawn = String(this.n);
    this.root.dataset.total = String(this.total);
    this.root.dataset.sampled = String(rows !== null);
  }

  /** The whole map again (a sampled map after new flags or a new layout: the drawn rows change). */
  async reload(colorBy: string): Promise<void> {
    this.root.dataset.ready = "false";
    const { content, buffers } = await this.channel.request("map", { color_by: colorBy, positions: true });
    this.setNotice(content.notice ?? "");
    this.takeMap(content, buffers, false);
    this.drawFrame();
    this.root.dataset.ready = "true";
  }

  async recolour(colorBy: string): Promise<void> {
    this.root.dataset.ready = "false";
    const { content, buffers } = await this.channel.request("map", { color_by: colorBy, positions: false });
    this.takeColour(content.colour, buffers[0]);
    this.drawFrame();
    this.root.dataset.ready = "true";
  }

  /** New layout from the kernel (UMAP finished): points move to where they belong. */
  async move(content: any, buffers: DataView[], colorBy = ""): Promise<void> {
    if (content.reload) return this.reload(colorBy); // sampled: the new layout draws other rows
    this.setNotice(content.notice ?? "");
    this.takePositions(buffers[0], true);
    this.root.dataset.layout = content.layout_status ?? "";
  }

  /** One byte per row (a sampled map takes its drawn rows' bytes). */
  async setFlags(flags: DataView): Promise<void> {
    const perRow = bytesOf(flags);
    this.layer?.setFlags(this.rows && perRow.length === this.total ? gatherRows(perRow, this.rows) : perRow);
    this.requestFrame();
  }

  /** Show only the points set in `visible` (a bitmask over every row; null = all). */
  setVisible(visible: Uint8Array | null): void {
    this.visibleRows = visible;
    if (visible === null) {
      this.hidden = null;
      this.root.dataset.visible = String(this.n);
    } else {
      const hidden = new Uint8Array(this.n);
      const rows = this.rows;
      let shown = 0;
      for (let i = 0; i < this.n; i++) {
        const r = rows ? rows[i] : i;
        const on = (visible[r >> 3] >> (r & 7)) & 1;
        hidden[i] = on ^ 1;
        shown += on;
      }
      this.hidden = hidden;
      this.root.dataset.visible = String(shown);
    }
    this.updateState();
  }

  private takePositions(view: DataView, animate: boolean, rows: Uint32Array | null = this.rows): void {
    const xy = float32Of(view);
    const from = animate && this.xy.length === xy.length ? this.xy : null;
    this.xy = xy;
    const sameRows = rows === this.rows || (rows !== null && this.rows !== null && rows.length === this.rows.length
      && rows.every((r, i) => r === this.rows![i]));
    this.rows = rows;
    if (this.n !== xy.length >> 1 || !sameRows) {
      this.n = xy.length >> 1;
      this.state = new Uint8Array(this.n);
      this.hidden = null;
      this.selected = null;
      if (rows) { // other points drawn: the filter and the selection (both over every row) map onto them
        if (this.visibleRows) this.setVisible(this.visibleRows);
        if (this.selection.count()) this.showSelection(this.selection.mask(), this.selection.count());
      }
    }
    if (!this.total) this.total = this.n;
    this.layer?.setPositions(xy, from);
    if (from) {
      this.transitionStart = performance.now();
      this.requestFrame();
    }
  }

  private takeColour(info: ColourInfo, codes: DataView): void {
    const colours = info.continuous ? scoreRamp(32) : categoricalColors(info.categories.length);
    this.layer?.setColours(bytesOf(codes));
    this.layer?.setPalette(paletteBytes(colours, info.continuous));
    this.renderLegend(info, colours);
  }

  // ------------------------------------------------------------------ selection
  private lasso(polygon: number[], mode: SelectMode): void {
    if (this.rows) {
      void this.lassoInKernel(polygon, mode);
      return;
    }
    const t0 = performance.now();
    const hit = pointsInPolygon(this.xy, polygon, this.camera.toScreen(), this.hidden);
    const t1 = performance.now();
    this.select(hit.mask, hit.count, mode);
    this.root.dataset.lassoMs = `${Math.round(t1 - t0)}/${Math.round(performance.now() - t0)}`;
  }

  /** A sampled map: the kernel selects every sample inside the polygon (map coordinates), drawn or
   *  not, and its Selection model comes back here; data-lasso says "pending" until it did. */
  private async lassoInKernel(polygon: number[], mode: SelectMode): Promise<void> {
    const t0 = performance.now();
    const seq = ++this.lassoSeq;
    this.root.dataset.lasso = "pending";
    try {
      const { content } = await this.channel.request("lasso", { polygon: polygonToData(polygon, this.camera.toScreen()), mode });
      if (seq !== this.lassoSeq) return;
      const count = Number(content.count);
      // the model's change may come before or after this reply: draw what the model holds if it is this one
      if (this.selection.count() === count) this.showSelection(count ? this.selection.mask() : null, count);
      this.root.dataset.selected = String(count);
    } catch {
      // the kernel's banner shows the error; the selection is unchanged
    } finally {
      if (seq === this.lassoSeq) {
        this.root.dataset.lassoMs = String(Math.round(performance.now() - t0));
        this.root.dataset.lasso = "done";
      }
    }
  }

  private click(x: number, y: number, mode: SelectMode): void {
    const hit = nearestPoint(this.xy, x, y, HOVER_RADIUS_PX, this.camera.toScreen(), this.hidden);
    if (this.rows) { // a sampled map: the selection is over every row
      const row = hit >= 0 ? this.rows[hit] : -1;
      const current = mode !== "replace" && this.selection.count() ? this.selection.mask() : null;
      let mask: Uint8Array = new Uint8Array((this.total + 7) >> 3);
      if (row >= 0 && mode !== "remove") mask = withRow(current, this.total, row, true);
      else if (row >= 0 && current) mask = withRow(current, this.total, row, false);
      else if (current && mode !== "replace") mask = current;
      const count = countBits(mask);
      this.selection.setMask(mask, count);
      this.showSelection(count ? mask : null, count);
      return;
    }
    const row = hit;
    const mask = new Uint8Array((this.n + 7) >> 3);
    if (row >= 0) mask[row >> 3] |= 1 << (row & 7);
    this.select(mask, row >= 0 ? 1 : 0, row >= 0 ? mode : "replace");
  }

  /** Combine `mask` with the current selection, tell the kernel first, then redraw. */
  private select(mask: Uint8Array, count: number, mode: SelectMode): void {
    if (mode !== "replace" && this.selected) {
      const cur = this.selected;
      for (let b = 0; b < mask.length; b++) mask[b] = mode === "merge" ? cur[b] | mask[b] : cur[b] & ~mask[b];
      count = countBits(mask);
    } else if (mode === "remove") {
      mask.fill(0);
      count = 0;
    }
    this.selection.setMask(mask, count);
    this.showSelection(count ? mask : null, count);
  }

  /** `mask`: a bitmask over every row (null = nothing selected); `count`: how many rows it holds. */
  private showSelection(mask: Uint8Array | null, count = mask ? countBits(mask) : 0): void {
    this.selected = mask && this.rows ? drawnMask(mask, this.rows) : mask;
    this.root.dataset.selected = String(count);
    this.updateState();
  }

  private updateState(): void {
    const { state, selected, hidden } = this;
    for (let i = 0; i < this.n; i++) {
      state[i] = (selected ? (selected[i >> 3] >> (i & 7)) & 1 : 0) | (hidden && hidden[i] ? 2 : 0);
    }
    this.layer?.setState(state);
    this.requestFrame();
  }

  // ------------------------------------------------------------------ hover
  private hover(x: number, y: number): void {
    const row = this.n ? nearestPoint(this.xy, x, y, HOVER_RADIUS_PX, this.camera.toScreen(), this.hidden) : -1;
    if (row === this.hoverRow) return;
    this.hoverRow = row;
    if (row < 0) {
      this.onHover(null, { x: 0, y: 0 });
      return;
    }
    const t = this.camera.toScreen();
    this.onHover(this.rows ? this.rows[row] : row, { x: this.xy[2 * row] * t.ax + t.bx, y: this.xy[2 * row + 1] * t.ay + t.by });
  }

  // ------------------------------------------------------------------ drawing
  /** Match the canvases to the element's size; true when it changed. */
  private resize(): boolean {
    const r = this.plot.getBoundingClientRect();
    const w = Math.max(100, Math.floor(r.width));
    const h = Math.max(100, Math.floor(r.height));
    const dpr = window.devicePixelRatio || 1;
    if (this.camera.width === w && this.camera.height === h && this.canvas.width === Math.round(w * dpr)) return false;
    this.camera.resize(w, h);
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
    return true;
  }

  /** Pan or zoom: big maps first show the last frame moved (instant), then redraw once it rests. */
  /** The view as data-view="zoom cx cy" (zoom 1 at 0 0 is the whole map), for tests and tools. */
  private showView(): void {
    const c = this.camera;
    this.root.dataset.view = `${+c.zoom.toFixed(4)} ${+c.cx.toFixed(4)} ${+c.cy.toFixed(4)}`;
  }

  private viewMoved(): void {
    this.showView();
    const shot = this.lastFrameAt;
    if (this.n < PREVIEW_MIN_POINTS || !shot || this.transitionStart >= 0) {
      this.requestFrame();
      return;
    }
    const t = this.camera.toScreen();
    const k = t.ax / shot.ax;
    const dpr = window.devicePixelRatio || 1;
    const ctx = this.canvas.getContext("2d")!;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.setTransform(k, 0, 0, k, (t.bx - shot.bx * k) * dpr, (t.by - shot.by * k) * dpr);
    ctx.drawImage(this.lastFrame, 0, 0);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    clearTimeout(this.settle);
    this.settle = window.setTimeout(() => this.requestFrame(), SETTLE_MS);
  }

  private requestFrame(): void {
    if (this.frameQueued || !this.layer) return;
    this.frameQueued = true;
    requestAnimationFrame(() => {
      this.frameQueued = false;
      this.drawFrame();
    });
  }

  private drawFrame(): void {
    if (!this.layer) return;
    let t = 1;
    if (this.transitionStart >= 0) {
      const u = Math.min(1, (performance.now() - this.transitionStart) / TRANSITION_MS);
      t = u < 0.5 ? 2 * u * u : 1 - 2 * (1 - u) * (1 - u);
      if (u < 1) this.requestFrame();
      else this.transitionStart = -1;
    }
    const dpr = window.devicePixelRatio || 1;
    const big = this.n > 200_000;
    const grow = Math.min(Math.max(Math.sqrt(this.camera.zoom), 1), 6);
    const size = (big ? 2 : this.n > 20_000 ? 3 : 5) * grow * dpr;
    this.layer.render(this.canvas.getContext("2d")!, this.canvas.width, this.canvas.height, {
      ...this.camera.clip(), t, size, flagSize: size * (big ? 2 : 1.6), round: size >= 4,
      anySelected: this.selected !== null,
    });
    if (this.n >= PREVIEW_MIN_POINTS) {
      if (this.lastFrame.width !== this.canvas.width || this.lastFrame.height !== this.canvas.height) {
        this.lastFrame.width = this.canvas.width;
        this.lastFrame.height = this.canvas.height;
      }
      this.lastFrame.getContext("2d")!.drawImage(this.canvas, 0, 0);
      this.lastFrameAt = this.camera.toScreen();
    }
  }

  // ------------------------------------------------------------------ legend and notices
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

  destroy(): void {
    this.detach();
    this.layer?.destroy();
    this.layer = null;
  }
}
