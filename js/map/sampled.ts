// A sampled map (Explorer(map_max_points=) below the number of samples): the kernel sends the
// positions, colours and flags of the drawn points only, and which rows of an.samples they are
// (uint32, ascending). The Selection model stays over every row; a lasso goes to the kernel as a
// polygon in map coordinates and is resolved there over all samples, drawn or not.
import type { ScreenTransform } from "./camera";

/** uint32 values from a buffer, copying only when it is not 4-byte aligned. */
export function uint32Of(view: DataView | Uint8Array): Uint32Array {
  const b = view instanceof Uint8Array ? view : new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  const aligned = b.byteOffset % 4 === 0 ? b : b.slice();
  return new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >> 2);
}

/** The drawn points' bits of `full` (a bitmask over every row), as a bitmask over the drawn points. */
export function drawnMask(full: Uint8Array, rows: Uint32Array): Uint8Array {
  const out = new Uint8Array((rows.length + 7) >> 3);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    if ((full[r >> 3] >> (r & 7)) & 1) out[i >> 3] |= 1 << (i & 7);
  }
  return out;
}

/** One byte per drawn point from one byte (or, with `bits`, one bit) per row. */
export function gatherRows(perRow: Uint8Array, rows: Uint32Array, bits = false): Uint8Array {
  const out = new Uint8Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    out[i] = bits ? (perRow[r >> 3] >> (r & 7)) & 1 : perRow[r];
  }
  return out;
}

/** A screen polygon (flat px) in map coordinates (what the kernel's positions are in). */
export function polygonToData(polygon: ArrayLike<number>, t: ScreenTransform): number[] {
  const out: number[] = new Array(polygon.length);
  for (let i = 0; i + 1 < polygon.length; i += 2) {
    out[i] = (polygon[i] - t.bx) / t.ax;
    out[i + 1] = (polygon[i + 1] - t.by) / t.ay;
  }
  return out;
}

/** A bitmask over `n` rows with `row` flipped on (merge / replace) or off (remove) in `current`. */
export function withRow(current: Uint8Array | null, n: number, row: number, on: boolean): Uint8Array {
  const mask = current ? current.slice() : new Uint8Array((n + 7) >> 3);
  if (on) mask[row >> 3] |= 1 << (row & 7);
  else mask[row >> 3] &= ~(1 << (row & 7));
  return mask;
}
