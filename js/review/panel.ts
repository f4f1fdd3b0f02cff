// The review panel: relabel (dropdown or digit keys), drop (d), mark as fine (o), undo (z).
// Each action goes to the kernel at once (an.review); the kernel answers with what it did.
import type { Row } from "../arrow";
import { formatCell } from "../arrow";
import { el, labelled, option } from "../dom";
import type { KernelChannel } from "../protocol";
import { actionForKey, type ReviewAction } from "./keys";

export class ReviewPanel {
  readonly root = el("div", "dqx-review");
  private current = el("div", "dqx-review-current");
  private labelSelect = el("select", "dqx-relabel-select");
  private scope = el("select", "dqx-review-scope");
  private status = el("div", "dqx-review-status");
  private row: Row | null = null;

  constructor(private channel: KernelChannel, private classes: string[], private canRelabel: boolean,
              private afterAction: (a: NonNullable<ReviewAction>) => void) {
    this.root.dataset.actions = "0";
    classes.forEach((c, i) => this.labelSelect.append(option(c, i < 10 ? `${i}: ${c}` : c)));
    this.scope.append(option("sample", "this sample"), option("all", "all shown in the grid"));
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
    const bar = el("div", "dqx-review-bar");
    bar.append(labelled("label", this.labelSelect), relabel, drop, ok, undo, labelled("apply to", this.scope));
    this.root.append(this.current, bar, this.status);
    channel.on("review_done", (c) => {
      this.status.textContent = c.message;
      this.root.dataset.actions = String(c.count);
      this.root.dataset.ready = "true";
    });
  }

  show(row: Row | null): void {
    this.row = row;
    if (!row) {
      this.current.textContent = "nothing under the cursor";
      return;
    }
    const parts = [`id ${formatCell(row.id)}`, `label ${formatCell(row.label)}`];
    if (row.suggested_label !== undefined) parts.push(`suggested ${formatCell(row.suggested_label)}`);
    if (row.dropped) parts.push("dropped");
    this.current.textContent = parts.join(" · ");
    if (row.label !== undefined && row.label !== null) this.labelSelect.value = String(row.label);
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
    const scope = this.scope.value;
    if (a.action !== "undo" && scope === "sample" && !this.row) {
      this.status.textContent = "select a sample in the grid first";
      return;
    }
    this.root.dataset.ready = "false";
    this.channel.tell("review", {
      ...a, scope, rows: this.row && scope === "sample" ? [this.row.row] : [],
    });
    this.afterAction(a);
  }
}
