// The slice table: slices and spurious-correlation findings, sorted in the kernel; a click on a
// row selects its samples on the map.
import { formatCell, rowsFromIPC } from "../arrow";
import { el, option } from "../dom";
import type { KernelChannel } from "../protocol";

export class SliceTableView {
  readonly root = el("div", "dqx-slices");
  private which = el("select", "dqx-slices-which");
  private table = el("table", "dqx-table");
  private sort = "";
  private desc = true;

  constructor(private channel: KernelChannel) {
    this.root.dataset.ready = "false";
    this.which.append(option("slices", "slices"), option("spurious", "spurious correlations"));
    this.which.addEventListener("change", () => {
      this.sort = "";
      void this.load();
    });
    this.root.append(this.which, this.table);
  }

  async load(): Promise<void> {
    this.root.dataset.ready = "false";
    const { content, buffers } = await this.channel.request("table", {
      table: this.which.value, sort: this.sort, descending: this.desc, offset: 0, limit: 500,
    });
    const { columns, rows } = rowsFromIPC(buffers[0]);
    this.sort = content.sort ?? "";
    const head = el("tr");
    for (const c of columns.filter((c) => c !== "_key")) {
      const th = el("th", "", c + (c === this.sort ? (this.desc ? " ▼" : " ▲") : ""));
      th.addEventListener("click", () => {
        this.desc = c === this.sort ? !this.desc : true;
        this.sort = c;
        void this.load();
      });
      head.append(th);
    }
    const body = rows.map((r) => {
      const tr = el("tr", "dqx-row");
      tr.dataset.key = String(r._key);
      if (r.slice_id !== undefined && r.size !== undefined) {  // for the slice actions (slice_actions.ts)
        tr.dataset.sliceId = String(r.slice_id);
        tr.dataset.size = String(r.size);
        if (r.dominant_label !== null && r.dominant_label !== undefined) tr.dataset.dominant = String(r.dominant_label);
      }
      for (const c of columns.filter((c) => c !== "_key")) tr.append(el("td", "", formatCell(r[c])));
      tr.addEventListener("click", () => {
        this.table.querySelectorAll("tr.dqx-active").forEach((x) => x.classList.remove("dqx-active"));
        tr.classList.add("dqx-active");
        this.channel.tell("select_table_row", { table: this.which.value, key: r._key });
      });
      return tr;
    });
    const thead = el("thead");
    thead.append(head);
    const tbody = el("tbody");
    tbody.append(...body);
    this.table.replaceChildren(thead, tbody);
    if (!rows.length) this.table.append(el("caption", "", content.empty ?? "nothing found"));
    this.root.dataset.rows = String(rows.length);
    this.root.dataset.ready = "true";
  }
}
