// The sample grid: the current selection (or the worst samples by the chosen score) as
// thumbnails, snippets or rows. Only the cells on screen exist; their rows come from the kernel
// in pages (Arrow IPC) and thumbnails through requests answered with image bytes.
import { formatCell, rowsFromIPC, type Row } from "../arrow";
import { el } from "../dom";
import { bytesOf, type KernelChannel } from "../protocol";
import { LRU } from "./lru";
import { visibleWindow } from "./window";

const PAGE = 120;
const CELL_W = 132;
const CELL_H = 176;

export class GridView {
  readonly root = el("div", "dqx-grid");
  private header = el("div", "dqx-grid-header");
  private scroller = el("div", "dqx-grid-scroller");
  private spacer = el("div", "dqx-grid-spacer");
  private pages = new Map<number, Row[]>();
  // after an in-place refresh (review, flags) the old pages stay on screen, and under the cursor,
  // until the new ones arrive, so a key pressed right after an action still has its sample
  private stale = new Map<number, Row[]>();
  private loading = new Set<number>();
  private thumbs = new LRU<number, string>(600, (url) => url.startsWith("blob:") && URL.revokeObjectURL(url));
  private thumbErrors = new Map<number, string>();
  private thumbWanted = new Set<number>();
  private version = 0;
  private total = 0;
  private scores: string[] = [];
  private modality = "image";
  private renderQueued = false;
  cursor = 0;

  constructor(private channel: KernelChannel, private onCursor: (row: Row | null) => void) {
    this.root.dataset.ready = "false";
    this.root.tabIndex = 0;
    this.scroller.append(this.spacer);
    this.root.append(this.header, this.scroller);
    this.scroller.addEventListener("scroll", () => this.queueRender());
    new ResizeObserver(() => this.queueRender()).observe(this.scroller);
    this.root.addEventListener("keydown", (e) => this.navigate(e));
  }

  configure(modality: string, scores: string[]): void {
    this.modality = modality;
    this.scores = scores;
  }

  /** The kernel says the content changed (new selection, filter, review or flags). */
  reset(content: { version: number; total: number; title: string; keep_scroll?: boolean; first_page?: number },
        buffers: DataView[] = []): void {
    this.version = content.version;
    this.total = content.total;
    this.stale = content.keep_scroll ? new Map([...this.stale, ...this.pages]) : new Map();
    this.pages.clear();
    this.loading.clear();
    // the kernel sends the first page with the reset: no round trip before the grid draws
    if (content.first_page === PAGE && buffers.length) {
      this.pages.set(0, rowsFromIPC(buffers[0]).rows);
      this.stale.delete(0);
    }
    this.header.textContent = content.title;
    this.root.dataset.ready = "false";
    this.root.dataset.count = String(this.total);
    if (!content.keep_scroll) {
      this.scroller.scrollTop = 0;
      this.cursor = 0;
    }
    this.cursor = Math.min(this.cursor, Math.max(this.total - 1, 0));
    this.queueRender();
  }

  /** Which content the grid shows (the kernel refuses a bulk action made on an outdated grid). */
  shown(): { version: number; total: number } {
    return { version: this.version, total: this.total };
  }

  currentRow(): Row | null {
    const p = Math.floor(this.cursor / PAGE);
    const page = this.pages.get(p) ?? this.stale.get(p);
    return page ? page[this.cursor % PAGE] ?? null : null;
  }

  private queueRender(): void {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.render();
    });
  }

  private async loadPage(p: number): Promise<void> {
    if (this.pages.has(p) || this.loading.has(p)) return;
    this.loading.add(p);
    const version = this.version;
    try {
      const { content, buffers } = await this.channel.request("grid", { offset: p * PAGE, limit: PAGE, version });
      if (content.version !== this.version) return;
      this.pages.set(p, rowsFromIPC(buffers[0]).rows);
      this.stale.delete(p);
    } finally {
      this.loading.delete(p);
    }
    this.queueRender();
  }

  private render(): void {
    const width = this.scroller.clientWidth || 600;
    const win = visibleWindow(this.total, width, this.scroller.scrollTop, this.scroller.clientHeight || 400, CELL_W, CELL_H);
    this.spacer.style.height = `${win.totalHeight}px`;
    const cells: HTMLElement[] = [];
    let missing = false;
    const needThumbs: number[] = [];
    for (let i = win.first; i < win.last; i++) {
      const p = Math.floor(i / PAGE);
      const page = this.pages.get(p) ?? this.stale.get(p);
      if (!this.pages.has(p)) {
        missing = true;
        void this.loadPage(p);
      }
      if (!page) continue;
      const row = page[i % PAGE];
      if (!row) continue;
      const cell = this.cell(row, i);
      cell.style.transform = `translate(${(i % win.columns) * CELL_W}px, ${Math.floor(i / win.columns) * CELL_H}px)`;
      cells.push(cell);
      const r = row.row as number;
      if (this.modality === "image" && !this.thumbs.has(r) && !this.thumbErrors.has(r)) needThumbs.push(r);
    }
    this.spacer.replaceChildren(...cells);
    if (needThumbs.length) void this.fetchThumbs(needThumbs);
    const ready = !missing && (this.modality !== "image" || needThumbs.length === 0);
    this.root.dataset.ready = String(ready);
    this.root.dataset.rendered = String(cells.length);
    this.onCursor(this.currentRow());
  }

  private cell(row: Row, i: number): HTMLElement {
    const cell = el("div", "dqx-cell");
    cell.dataset.row = String(row.row);
    cell.dataset.id = String(row.id);
    if (i === this.cursor) cell.classList.add("dqx-cursor");
    if (row.dropped) cell.classList.add("dqx-dropped");
    if (row.flagged) cell.classList.add("dqx-flagged");
    cell.addEventListener("click", () => {
      this.cursor = i;
      this.root.focus();
      this.queueRender();
    });
    const r = row.row as number;
    if (this.modality === "image") {
      const url = this.thumbs.get(r);
      const err = this.thumbErrors.get(r);
      if (url) {
        const img = el("img", "dqx-thumb");
        img.src = url;
        img.alt = String(row.id);
        cell.append(img);
      } else {
        cell.append(el("div", "dqx-thumb dqx-placeholder", err ? `no image: ${err}` : "…"));
      }
    } else {
      cell.append(el("div", "dqx-snippet", formatCell(row.snippet)));
    }
    const label = el("div", "dqx-cell-label", formatCell(row.label));
    label.title = `id ${formatCell(row.id)}`;
    cell.append(label);
    if (row.suggested_label !== undefined && row.suggested_label !== null && row.suggested_label !== row.label) {
      cell.append(el("div", "dqx-cell-suggested", `→ ${formatCell(row.suggested_label)}`));
    }
    const scores = this.scores.filter((s) => row[s] !== undefined)
      .map((s) => `${s.replace(/_score$/, "")} ${formatCell(row[s])}`).join(" · ");
    if (scores) cell.append(el("div", "dqx-cell-scores", scores));
    return cell;
  }

  private async fetchThumbs(rows: number[]): Promise<void> {
    const wanted = rows.filter((r) => !this.thumbWanted.has(r));
    if (!wanted.length) return;
    wanted.forEach((r) => this.thumbWanted.add(r));
    try {
      const { content, buffers } = await this.channel.request("thumbs", { rows: wanted, size: 112 });
      (content.rows as number[]).forEach((r, k) => {
        const blob = new Blob([bytesOf(buffers[k]).slice()], { type: content.mime });
        this.thumbs.set(r, URL.createObjectURL(blob));
      });
      for (const [r, reason] of Object.entries(content.errors as Record<string, string>)) this.thumbErrors.set(Number(r), reason);
    } finally {
      wanted.forEach((r) => this.thumbWanted.delete(r));
    }
    this.queueRender();
  }

  private navigate(e: KeyboardEvent): void {
    const width = this.scroller.clientWidth || 600;
    const cols = Math.max(1, Math.floor(width / CELL_W));
    const moves: Record<string, number> = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols };
    if (!(e.key in moves)) return;
    e.preventDefault();
    this.moveCursor(moves[e.key]);
  }

  moveCursor(delta: number): void {
    this.cursor = Math.max(0, Math.min(this.total - 1, this.cursor + delta));
    const top = Math.floor(this.cursor / Math.max(1, Math.floor((this.scroller.clientWidth || 600) / CELL_W))) * CELL_H;
    if (top < this.scroller.scrollTop || top + CELL_H > this.scroller.scrollTop + this.scroller.clientHeight) {
      this.scroller.scrollTop = top;
    }
    this.queueRender();
  }
}
