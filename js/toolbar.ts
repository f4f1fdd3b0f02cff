// Colour-by and the filters (only label issues / only OOD / only duplicates / one split / one class).
import { el, labelled, option } from "./dom";

export interface Filters { issue: string; split: string; label: string }

export class Toolbar {
  readonly root = el("div", "dqx-toolbar");
  readonly colour = el("select", "dqx-color-by");
  private issue = el("select", "dqx-filter-issue");
  private split = el("select", "dqx-filter-split");
  private label = el("select", "dqx-filter-label");
  readonly counts = el("div", "dqx-counts");

  constructor(cfg: { color_options: string[]; color_by: string; issues: [string, string][]; splits: string[]; classes: string[] },
              onColour: (c: string) => void, onFilter: (f: Filters) => void) {
    cfg.color_options.forEach((c) => this.colour.append(option(c, c, c === cfg.color_by)));
    this.issue.append(option("", "all samples"));
    cfg.issues.forEach(([v, t]) => this.issue.append(option(v, t)));
    this.split.append(option("", "all splits"));
    cfg.splits.forEach((s) => this.split.append(option(s, s)));
    this.label.append(option("", "all classes"));
    cfg.classes.forEach((c) => this.label.append(option(c, c)));
    this.colour.addEventListener("change", () => onColour(this.colour.value));
    const changed = () => onFilter({ issue: this.issue.value, split: this.split.value, label: this.label.value });
    [this.issue, this.split, this.label].forEach((s) => s.addEventListener("change", changed));
    this.split.hidden = cfg.splits.length === 0;
    this.label.hidden = cfg.classes.length === 0;
    this.root.append(labelled("colour", this.colour), labelled("show", this.issue), this.split, this.label, this.counts);
  }
}
