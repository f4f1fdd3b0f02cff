// The Explorer: one anywidget view holding the map, slice table, charts, sample grid and review
// panel, linked in the browser through the shared Selection model.
import { EvidencePanel } from "./grid/evidence";
import { GridView } from "./grid/view";
import { MapView } from "./map/view";
import { KernelChannel, bytesOf } from "./protocol";
import { ReviewPanel } from "./review/panel";
import { linkSelection, type WidgetModel } from "./selection/model";
import { SliceActions } from "./table/slice_actions";
import { SliceTableView } from "./table/view";
import { ThresholdChart, type ScoreHistogram } from "./charts/view";
import { Toolbar } from "./toolbar";
import { el } from "./dom";
import css from "./style.css";

function ensureStyle(): void {
  if (document.getElementById("dqx-style")) return;
  const style = document.createElement("style");
  style.id = "dqx-style";
  style.textContent = css;
  document.head.append(style);
}

async function render({ model, el: host }: { model: WidgetModel; el: HTMLElement }) {
  ensureStyle();
  const root = el("div", "dqx");
  root.dataset.ready = "false";
  root.tabIndex = 0;
  host.append(root);
  const channel = new KernelChannel(model);
  // the map's columns are the biggest message: ask for them first, while the rest is set up
  const mapData = MapView.request(channel, model.get("color_by") ?? "issue");
  const selection = await linkSelection(model);
  const { content: cfg } = await channel.request("init");

  // kernel-side errors: a dismissible banner per error (and console.error, in protocol.ts)
  const banners = el("div", "dqx-banners");
  banners.setAttribute("role", "alert");
  channel.onError((message) => {
    const banner = el("div", "dqx-banner");
    const close = el("button", "dqx-banner-close", "×") as HTMLButtonElement;
    close.title = "dismiss";
    close.setAttribute("aria-label", "dismiss this error");
    close.addEventListener("click", () => {
      banner.remove();
      root.dataset.errors = String(banners.children.length);
    });
    banner.append(el("span", "dqx-banner-text", `Error in the kernel: ${message}`), close);
    banners.append(banner);
    while (banners.children.length > 5) banners.firstElementChild!.remove();
    root.dataset.errors = String(banners.children.length);
  });
  const notices = el("div", "dqx-notices");
  for (const n of cfg.notices as string[]) notices.append(el("div", "dqx-notice-line", n));
  const tooltip = { req: 0 };
  const map = new MapView(channel, selection, (row, at) => void hover(row, at), model.get("map_renderer") ?? "auto");
  const grid = new GridView(channel, (row) => review.show(row));
  grid.configure(cfg.modality, cfg.scores);
  const review = new ReviewPanel(channel, cfg.classes, cfg.can_relabel, (a) => {
    if (a.action !== "undo") grid.moveCursor(1);
  }, () => ({ grid: grid.shown(), selection: selection.encoded() }));
  const table = new SliceTableView(channel);
  // #11: a click on a card shows its evidence; a slice row offers drop / relabel of the whole slice
  const evidence = new EvidencePanel(channel);
  grid.root.addEventListener("click", (e) => {
    const cell = (e.target as HTMLElement).closest<HTMLElement>(".dqx-cell");
    if (cell?.dataset.row) void evidence.show(Number(cell.dataset.row));
  });
  const sliceActions = new SliceActions(channel, cfg.classes, cfg.can_relabel, () => undefined);
  table.root.addEventListener("click", (e) => {
    const tr = (e.target as HTMLElement).closest<HTMLElement>("tr.dqx-row");
    if (tr) sliceActions.choose(tr);
  });
  const charts = new Map<string, ThresholdChart>();
  const chartBox = el("div", "dqx-charts");
  for (const h of cfg.histograms as ScoreHistogram[]) {
    const c = new ThresholdChart(h, channel);
    charts.set(h.column, c);
    chartBox.append(c.root);
  }
  const toolbar = new Toolbar(cfg, (c) => {
    channel.tell("color_by", { value: c });
    void map.recolour(c);
  }, (f) => channel.tell("filters", { ...f }));
  const setCounts = (text: string) => {
    toolbar.counts.textContent = text;
  };
  setCounts(cfg.counts_text);

  const side = el("div", "dqx-side");
  side.append(chartBox, table.root, sliceActions.root);
  const top = el("div", "dqx-top");
  top.append(map.root, side);
  const bottom = el("div", "dqx-bottom");
  bottom.append(grid.root, review.root, evidence.root);
  root.append(toolbar.root, banners, notices, top, bottom);

  async function hover(row: number | null, at: { x: number; y: number }) {
    const tip = map.tooltipElement;
    const req = ++tooltip.req;
    if (row === null) {
      tip.hidden = true;
      return;
    }
    const { content, buffers } = await channel.request("hover", { row });
    if (req !== tooltip.req) return;
    tip.replaceChildren();
    if (buffers.length) {
      const img = el("img", "dqx-tip-img");
      img.src = URL.createObjectURL(new Blob([bytesOf(buffers[0]).slice()], { type: content.mime }));
      img.onload = () => URL.revokeObjectURL(img.src);
      tip.append(img);
    }
    for (const line of content.lines as string[]) tip.append(el("div", "", line));
    tip.style.left = `${at.x + 12}px`;
    tip.style.top = `${at.y + 12}px`;
    tip.hidden = false;
  }

  channel.on("grid_reset", (c, b) => {
    grid.reset(c, b);
    review.scopeShows(c.total, selection.count());
  });
  channel.on("positions", (c, b) => void map.move(c, b, toolbar.colour.value));
  channel.on("flags", (c, b) => {
    // a sampled map draws every flagged sample: new flags change which rows it draws
    void (c.map_reload ? map.reload(toolbar.colour.value) : map.setFlags(b[0]));
    for (const h of c.histograms as ScoreHistogram[]) charts.get(h.column)?.update(h);
    setCounts(c.counts_text);
  });
  channel.on("visible", (c, b) => map.setVisible(c.all ? null : bytesOf(b[0])));
  channel.on("counts", (c) => setCounts(c.counts_text));
  channel.on("recolour", () => void map.recolour(toolbar.colour.value));
  root.addEventListener("keydown", (e) => {
    if ((e.target as HTMLElement)?.tagName === "SELECT" || (e.target as HTMLElement)?.tagName === "INPUT") return;
    review.key(e);
  });

  await map.load(mapData);
  grid.reset(cfg.grid);
  review.scopeShows(cfg.grid.total, selection.count());
  await table.load();
  root.dataset.ready = "true";
  return () => {
    map.destroy();
    channel.close();
  };
}

export default { render };
