// Drop or relabel a whole slice from its row of the slice table: a click on a row (which also
// selects the slice on the map) offers both for that slice. The request says how many samples the
// row shows; the kernel refuses, changing nothing, when that is not the slice it holds. One action
// is one journal entry, undone by `z` like any other.
import { el, labelled, option } from "../dom";
import type { KernelChannel } from "../protocol";

export class SliceActions {
  readonly root = el("div", "dqx-slice-actions");
  private what = el("span", "dqx-slice-what", "click a slice row to drop or relabel the whole slice");
  private labelSelect = el("select", "dqx-slice-label");
  private drop = el("button", "dqx-btn dqx-slice-drop", "drop slice") as HTMLButtonElement;
  private relabel = el("button", "dqx-btn dqx-slice-relabel", "relabel slice") as HTMLButtonElement;
  private status = el("span", "dqx-slice-status");
  private slice: { id: number; size: number } | null = null;

  constructor(private channel: KernelChannel, classes: string[], private canRelabel: boolean,
              private afterAction: () => void) {
    this.root.dataset.actions = "0";
    this.root.dataset.ready = "true";
    classes.forEach((c) => this.labelSelect.append(option(c, c)));
    this.drop.addEventListener("click", () => this.act("drop"));
    this.relabel.addEventListener("click", () => this.act("relabel"));
    this.drop.disabled = this.relabel.disabled = true;
    this.labelSelect.disabled = !canRelabel;
    this.root.append(this.what, this.drop, labelled("to", this.labelSelect), this.relabel, this.status);
  }

  /** The slice table's row was clicked (its data attributes carry slice_id, size, dominant label). */
  choose(tr: HTMLElement): void {
    const id = tr.dataset.sliceId;
    const size = tr.dataset.size;
    if (id === undefined || size === undefined) {
      this.slice = null;
      this.what.textContent = "this table's rows are not slices";
      this.drop.disabled = this.relabel.disabled = true;
      return;
    }
    this.slice = { id: Number(id), size: Number(size) };
    this.what.textContent = `slice ${id} (${Number(size).toLocaleString()} samples):`;
    if (tr.dataset.dominant) this.labelSelect.value = tr.dataset.dominant;
    this.drop.disabled = false;
    this.relabel.disabled = !this.canRelabel;
  }

  private act(action: "drop" | "relabel"): void {
    if (!this.slice) return;
    this.root.dataset.ready = "false";
    const body: Record<string, unknown> = { action, slice_id: this.slice.id, size: this.slice.size };
    if (action === "relabel") body.label = this.labelSelect.value;
    this.channel.request("slice_review", body).then(({ content }) => {
      this.status.classList.remove("dqx-refused");
      this.status.textContent = content.message;
      this.root.dataset.actions = String(content.count);
      this.root.dataset.ready = "true";
      this.afterAction();
    }, (e: Error) => {
      this.status.classList.add("dqx-refused");
      this.status.textContent = e.message;
      this.root.dataset.ready = "true";
    });
  }
}
