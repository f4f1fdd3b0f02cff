// Messages between the Explorer's views and the kernel. Requests carry a `req` number and the
// kernel answers with the same number; pushes from the kernel (new flags, new layout, grid reset)
// carry no `req`. Columns always travel as binary buffers, never as JSON lists.
import type { WidgetModel } from "./selection/model";

export type Buffers = DataView[];
type Push = (content: any, buffers: Buffers) => void;

export class KernelChannel {
  private next = 1;
  private pending = new Map<number, (msg: { content: any; buffers: Buffers }) => void>();
  private handlers = new Map<string, Push[]>();
  private errorListeners: Array<(message: string, detail: string) => void> = [];
  private onMsg = (content: any, buffers: Buffers) => {
    if (content && typeof content.req === "number" && this.pending.has(content.req)) {
      const resolve = this.pending.get(content.req)!;
      this.pending.delete(content.req);
      // every failed request is shown in the banner (the view that asked may say more)
      if (content.error) this.reportError(content.error, "");
      resolve({ content, buffers: buffers ?? [] });
      return;
    }
    if (content?.kind === "error") this.reportError(String(content.message), String(content.detail ?? ""));
    for (const h of this.handlers.get(content?.kind) ?? []) h(content, buffers ?? []);
  };

  constructor(private model: WidgetModel) {
    model.on("msg:custom", this.onMsg);
  }

  request(kind: string, body: Record<string, unknown> = {}, buffers: ArrayBuffer[] = []):
      Promise<{ content: any; buffers: Buffers }> {
    const req = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(req, (msg) => (msg.content.error ? reject(new Error(msg.content.error)) : resolve(msg)));
      this.model.send({ kind, req, ...body }, undefined, buffers);
    });
  }

  tell(kind: string, body: Record<string, unknown> = {}): void {
    this.model.send({ kind, ...body });
  }

  on(kind: string, handler: Push): void {
    const list = this.handlers.get(kind) ?? [];
    list.push(handler);
    this.handlers.set(kind, list);
  }

  /** `cb(message, detail)` for every error the kernel reports (the Explorer's banner). */
  onError(cb: (message: string, detail: string) => void): void {
    this.errorListeners.push(cb);
  }

  reportError(message: string, detail = ""): void {
    console.error(`dqwidgets Explorer (kernel): ${message}`, detail);
    for (const l of this.errorListeners) l(message, detail);
  }

  close(): void {
    this.model.off("msg:custom", this.onMsg);
    this.pending.clear();
    this.handlers.clear();
  }
}

export function bytesOf(view: DataView | ArrayBuffer | undefined): Uint8Array {
  if (!view) return new Uint8Array(0);
  if (view instanceof ArrayBuffer) return new Uint8Array(view);
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** float32 values from a buffer, copying only when the buffer is not 4-byte aligned. */
export function float32Of(view: DataView): Float32Array {
  const b = bytesOf(view);
  const aligned = b.byteOffset % 4 === 0 ? b : b.slice();
  return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >> 2);
}
