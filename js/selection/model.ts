// The shared Selection model: a tiny anywidget model holding the selected rows. Views link to it in
// the browser; Python observes it and `Explorer.selection` maps rows to dataset ids.
import { asBytes, decodeSelection, encodeSelection } from "./encoding";

export interface WidgetModel {
  get(name: string): any;
  set(name: string, value: any): void;
  save_changes(): void;
  on(event: string, cb: (...args: any[]) => void): void;
  off(event?: string, cb?: (...args: any[]) => void): void;
  send(content: any, callbacks?: any, buffers?: ArrayBuffer[] | ArrayBufferView[]): void;
  widget_manager: { get_model(id: string): Promise<WidgetModel> };
}

export class SelectionLink {
  private listeners: Array<(rows: number[], fromHere: boolean) => void> = [];
  private writing = false;

  constructor(private model: WidgetModel) {
    model.on("change:data", () => {
      const rows = this.rows();
      for (const l of this.listeners) l(rows, this.writing);
    });
  }

  get size(): number {
    return this.model.get("n") as number;
  }

  rows(): number[] {
    return decodeSelection(this.model.get("encoding"), asBytes(this.model.get("data")), this.size);
  }

  count(): number {
    return this.model.get("count") as number;
  }

  /** Select `rows` (row numbers of an.samples) and tell the kernel. */
  set(rows: ArrayLike<number>): void {
    const enc = encodeSelection(rows, this.size);
    this.writing = true;
    try {
      this.model.set("encoding", enc.encoding);
      this.model.set("count", enc.count);
      this.model.set("data", new DataView(enc.data.buffer, enc.data.byteOffset, enc.data.byteLength));
      this.model.save_changes();
    } finally {
      this.writing = false;
    }
  }

  onChange(cb: (rows: number[], fromHere: boolean) => void): void {
    this.listeners.push(cb);
  }
}

/** Resolve the "IPY_MODEL_<id>" reference the Explorer holds to the Selection model. */
export async function linkSelection(model: WidgetModel, trait = "selection_model"): Promise<SelectionLink> {
  const ref = model.get(trait);
  if (typeof ref !== "string" || !ref.startsWith("IPY_MODEL_")) {
    throw new Error(`the Explorer's ${trait} is not a widget reference (${String(ref)})`);
  }
  const sel = await model.widget_manager.get_model(ref.slice("IPY_MODEL_".length));
  return new SelectionLink(sel);
}
