// The evidence panel: a click on a grid card shows why that sample is flagged (an.explain in the
// kernel): its scores, the probe's top classes, the suggestion, its slice, and its nearest
// neighbours in the analysis' kNN graph as thumbnails (images) or snippets (texts, tables), each
// with its label and distance. Every string from the data goes in through textContent.
import { el } from "../dom";
import { bytesOf, type KernelChannel } from "../protocol";

interface NeighbourInfo { id: string; label: string | null; distance: number | null; flagged: boolean }

export class EvidencePanel {
  readonly root = el("div", "dqx-evidence");
  private title = el("div", "dqx-evidence-title", "click a card in the grid to see why it is flagged");
  private lines = el("table", "dqx-evidence-lines");
  private neighbours = el("div", "dqx-evidence-neighbours");
  private req = 0;
  private urls: string[] = [];

  constructor(private channel: KernelChannel) {
    this.root.dataset.ready = "true";
    this.root.dataset.row = "";
    this.root.append(this.title, this.lines, this.neighbours);
    // a review action or a threshold move changes labels and flags: show the sample's evidence anew
    channel.on("flags", () => {
      if (this.root.dataset.row) void this.show(Number(this.root.dataset.row));
    });
  }

  /** Ask the kernel for the evidence of grid row `row` (a row of an.samples) and show it. */
  async show(row: number): Promise<void> {
    const req = ++this.req;
    this.root.dataset.ready = "false";
    this.root.dataset.row = String(row);
    let content: any;
    try {
      ({ content } = await this.channel.request("explain", { row }));
    } catch (e) {
      if (req !== this.req) return;
      this.title.textContent = `no evidence: ${(e as Error).message}`;
      this.lines.replaceChildren();
      this.neighbours.replaceChildren();
      this.root.dataset.ready = "true";
      return;
    }
    if (req !== this.req) return;
    this.title.textContent = `why sample ${content.id}${content.flags.length ? ` is flagged (${content.flags.join(", ")})` : " (not flagged)"}`;
    const body = el("tbody");
    for (const [heading, text] of content.lines as [string, string][]) {
      if (heading.startsWith("neighbours")) continue; // shown below, as cards
      const tr = el("tr");
      tr.append(el("th", "", heading), el("td", "", text));
      body.append(tr);
    }
    this.lines.replaceChildren(body);
    await this.showNeighbours(req, content);
    if (req === this.req) this.root.dataset.ready = "true";
  }

  private async showNeighbours(req: number, content: any): Promise<void> {
    const list = content.neighbours as NeighbourInfo[];
    const rows = content.neighbour_rows as number[];
    this.urls.forEach((u) => URL.revokeObjectURL(u));
    this.urls = [];
    const thumbs = new Map<number, string>();
    const errors: Record<string, string> = {};
    if (content.modality === "image" && rows.length) {
      try {
        const { content: t, buffers } = await this.channel.request("thumbs", { rows, size: 72 });
        if (req !== this.req) return;
        (t.rows as number[]).forEach((r, k) => {
          const url = URL.createObjectURL(new Blob([bytesOf(buffers[k]).slice()], { type: t.mime }));
          this.urls.push(url);
          thumbs.set(r, url);
        });
        Object.assign(errors, t.errors);
      } catch (e) {
        errors[""] = (e as Error).message;
      }
    }
    const heading = el("div", "dqx-evidence-heading",
      list.length ? `${list.length} nearest neighbours (${content.metric} distance)` : "no neighbours: left out of the analysis");
    const cards = list.map((n, k) => {
      const card = el("div", "dqx-evidence-nb");
      card.dataset.id = n.id;
      card.dataset.row = String(rows[k]);
      if (n.flagged) card.classList.add("dqx-flagged");
      if (content.modality === "image") {
        const url = thumbs.get(rows[k]);
        if (url) {
          const img = el("img", "dqx-evidence-thumb");
          img.src = url;
          img.alt = n.id;
          card.append(img);
        } else {
          card.append(el("div", "dqx-evidence-thumb dqx-placeholder", `no image: ${errors[String(rows[k])] ?? errors[""] ?? "?"}`));
        }
      } else {
        card.append(el("div", "dqx-evidence-snippet", (content.neighbour_snippets as string[])[k] ?? ""));
      }
      card.append(el("div", "dqx-evidence-nb-label", n.label ?? "(unlabelled)"),
                  el("div", "dqx-evidence-nb-dist", n.distance === null ? "" : `d ${n.distance.toFixed(3)}`));
      card.title = `id ${n.id}`;
      return card;
    });
    const grid = el("div", "dqx-evidence-cards");
    grid.append(...cards);
    this.neighbours.replaceChildren(heading, grid);
    this.root.dataset.neighbours = String(cards.length);
  }
}
