// The review panel: relabel (dropdown or digit keys), drop (d), mark as fine (o), undo (z).
// Each action goes to the kernel at once (an.review); the kernel answers with what it did.
// "apply to: all" acts on what the grid shows (the selection, narrowed by the filters): the
// action carries this browser's selection bytes and the grid's version, and the kernel refuses
// it, changing nothing, when they are not what it holds.
import type { Row } from "../arrow";
import { formatCell } from "../arrow";
import { el, labelled, option } from "../dom";
import type { KernelChannel } from "../protocol";
import type { EncodedSelection } from "../selection/encoding";
import { actionForKey, type ReviewAction } from "./keys";

export interface Shown {
  grid: { version: number; total: number };
  selection: EncodedSelection;
}

export class ReviewPanel {
  readonly root = el("div", "dqx-review");
  private current = el("div", "dqx-review-current");
  private labelSelect = el("select", "dqx-relabel-select");
  private scope = el("select", "dqx-review-scope");
  private status = el("div", "dqx-review-status");
  private withDuplicates = el("input", "dqx-with-duplicates");
  private row: Row | null = null;

  constructor(private channel: KernelChannel, private classes: string[], private canRelabel: boolean,
              private afterAction: (a: NonNullable<ReviewAction>) => void,
              private shown: () => Shown) {
    this.root.dataset.actions = "0";
    classes.forEach((c, i) => this.labelSelect.append(option(c, i < 10 ? `${i}: ${c}` : c)));
    this.scope.append(option("sample", "this sample"), option("all", "all in the grid"));
    const relabel = el("button", "dqx-btn", "relabel");
    relabel.addEventListener("click", () => this.act({ action: "relabel", label: this.labelSelect.value }));
    const drop = el("button", "dqx-btn", "drop (d)");
    drop.addEventListener("click", () => this.act({ action: "drop" }));
    const ok = el("button", "dqx-btn", "fine (o)");
    ok.addEventListener("click", () => this.act({ action: "mark_ok" }));
    const undo = el("button", "dqx-btn", "undo (z)");
    undo.addEventListener("click", () => this.act({ action: "undo" }));
    if (!canRelabel) {
      this.labelSelect.disabled = true;
      relabel.disabled = true;
      relabel.title = "no classes: the data is unlabelled";
    }
    const accept = el("button", "dqx-btn", "accept suggested (a)");
    accept.title = "relabel every selected sample (or this one) to its suggested label, and with 'with duplicates' " +
      "ticked their duplicates too: one action, one undo";
    accept.addEventListener("click", () => this.act({ action: "accept" }));
    this.withDuplicates.type = "checkbox";
    this.withDuplicates.title = "relabel, drop, fine and accept (a) also reach every duplicate of the samples";
    const bar = el("div", "dqx-review-bar");
    bar.append(labelled("label", this.labelSelect), relabel, drop, ok, undo, accept, labelled("apply to", this.scope),
               labelled("with duplicates", this.withDuplicates));
    this.root.append(this.current, bar, this.status);
  }

  /** The "all" option says how many samples it stands for, and whether they are a selection. */
  scopeShows(gridTotal: number, selected: number): void {
    const all = this.scope.querySelector("option[value=all]") as HTMLOptionElement;
    all.textContent = selected ? `all ${gridTotal.toLocaleString()} selected in the grid`
      : `all ${gridTotal.toLocaleString()} in the grid (needs a selection or a filter)`;
  }

  show(row: Row | null): void {
    // every render of the grid shows the card under the cursor again: only another card (or a new
    // label on it) resets the dropdown, so a label chosen there survives a scroll before "relabel"
    const changed = !row || !this.row || row.row !== this.row.row || row.label !== this.row.label;
    this.row = row;
    if (!row) {
      this.current.textContent = "nothing under the cursor";
      return;
    }
    const parts = [`id ${formatCell(row.id)}`, `label ${formatCell(row.label)}`];
    if (row.suggested_label !== undefined) parts.push(`suggested ${formatCell(row.suggested_label)}`);
    if (row.dropped) parts.push("dropped");
    this.current.textContent = parts.join(" · ");
    if (changed && row.label !== undefined && row.label !== null) this.labelSelect.value = String(row.label);
  }

  /** A key pressed in the Explorer; true when it was a review key. */
  key(e: KeyboardEvent): boolean {
    const a = actionForKey(e.key, this.canRelabel ? this.classes : [], e.ctrlKey || e.metaKey || e.altKey);
    if (!a) return false;
    e.preventDefault();
    this.act(a);
    return true;
  }

  act(a: NonNullable<ReviewAction>): void {
    // accept (a): every selected sample when there is a selection, else what "apply to" says (the
    // focused card, or every card of the filtered grid)
    const scope = a.action === "accept" && this.shown().selection.count ? "all" : this.scope.value;
    if (a.action !== "undo" && scope === "sample" && !this.row) {
      this.status.textContent = "select a sample in the grid first";
      return;
    }
    this.root.dataset.ready = "false";
    const body: Record<string, unknown> = { ...a, scope, rows: this.row && scope === "sample" ? [this.row.row] : [],
                                            with_duplicates: this.withDuplicates.checked };
    const buffers: ArrayBuffer[] = [];
    if (scope === "all" && a.action !== "undo") {
      const { grid, selection } = this.shown();
      body.shown = { encoding: selection.encoding, selection_count: selection.count,
                     grid_version: grid.version, grid_total: grid.total };
      buffers.push(selection.data.slice().buffer);
    }
    this.channel.request("review", body, buffers).then(({ content }) => {
      this.status.classList.remove("dqx-refused");
      this.status.textContent = content.message;
      this.root.dataset.actions = String(content.count);
      this.root.dataset.ready = "true";
    }, (e: Error) => {
      // a refusal (browser and kernel disagree) or a review error: said here (the banner has it too)
      this.status.classList.add("dqx-refused");
      this.status.textContent = e.message;
      this.root.dataset.refused = String(Number(this.root.dataset.refused ?? 0) + 1);
      this.root.dataset.ready = "true";
    });
    this.afterAction(a);
  }
}
