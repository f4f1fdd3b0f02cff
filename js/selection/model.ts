// The shared Selection model: a tiny anywidget model holding the selected rows. Views link to it in
// the browser; Python observes it and `Explorer.selection` maps rows to dataset ids.
import { asBytes, decodeSelection, encodeMask, encodeSelection, maskOf, type EncodedSelection } from "./encoding";

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
  private listeners: Array<(fromHere: boolean) => void> = [];
  private writing = false;

  constructor(private model: WidgetModel) {
    model.on("change:data", () => {
      for (const l of this.listeners) l(this.writing);
    });
  }

  get size(): number {
    return this.model.get("n") as number;
  }

  rows(): number[] {
    return decodeSelection(this.model.get("encoding"), asBytes(this.model.get("data")), this.size);
  }

  /** The selection as a bitmask over all rows. */
  mask(): Uint8Array {
    return maskOf(this.model.get("encoding"), asBytes(this.model.get("data")), this.size);
  }

  count(): number {
    return this.model.get("count") as number;
  }

  /** The selection as this browser holds it: encoding, count and bytes (sent with bulk actions). */
  encoded(): EncodedSelection {
    const bytes = asBytes(this.model.get("data")) ?? new Uint8Array(0);
    return { encoding: this.model.get("encoding"), count: this.count(), data: bytes };
  }

  /** Select `rows` (row numbers of an.samples) and tell the kernel. */
  set(rows: ArrayLike<number>): void {
    this.write(encodeSelection(rows, this.size));
  }

  /** Select the rows set in `mask` (`count` of them) and tell the kernel. */
  setMask(mask: Uint8Array, count: number): void {
    this.write(encodeMask(mask, count, this.size));
  }

  private write(enc: EncodedSelection): void {
    this.writing = true;
    try {
      this.model.set("encoding", enc.encoding);
      this.model.set("count", enc.count);
      // the comm sends a view's whole underlying buffer: give it one of exactly these bytes
      const own = enc.data.byteOffset === 0 && enc.data.byteLength === enc.data.buffer.byteLength;
      const data = own ? enc.data : enc.data.slice();
      this.model.set("data", new DataView(data.buffer, 0, data.byteLength));
      this.model.save_changes();
    } finally {
      this.writing = false;
    }
  }

  /** `cb(fromHere)` after every change; read `mask()` / `rows()` only when needed. */
  onChange(cb: (fromHere: boolean) => void): void {
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
