// The selected rows travel as bytes: sorted uint32 row numbers, or a bitmask (one bit per row)
// when that is smaller. Browser-to-kernel messages are capped near 10 MB, so 1M selected rows
// (4 MB of indices) go as a 125 kB bitmask instead.

export type SelectionEncoding = "indices" | "bitmask";

export interface EncodedSelection {
  encoding: SelectionEncoding;
  data: Uint8Array;
  count: number;
}

/** Pick the smaller of the two encodings for `rows` out of `n` points. */
export function encodeSelection(rows: ArrayLike<number>, n: number): EncodedSelection {
  const count = rows.length;
  if (count * 4 > Math.ceil(n / 8)) {
    const mask = new Uint8Array(Math.ceil(n / 8));
    for (let i = 0; i < count; i++) {
      const r = rows[i];
      if (r < 0 || r >= n) throw new RangeError(`selected row ${r} is outside 0..${n - 1}`);
      mask[r >> 3] |= 1 << (r & 7);
    }
    return { encoding: "bitmask", data: mask, count };
  }
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = rows[i];
  out.sort();
  return { encoding: "indices", data: new Uint8Array(out.buffer), count };
}

/** Encode a bitmask over `n` rows holding `count` rows: sent as it is, or as indices when smaller. */
export function encodeMask(mask: Uint8Array, count: number, n: number): EncodedSelection {
  if (count * 4 > Math.ceil(n / 8)) return { encoding: "bitmask", data: mask.subarray(0, Math.ceil(n / 8)), count };
  const out = new Uint32Array(count);
  let k = 0;
  for (let b = 0; b < mask.length && k < count; b++) {
    let v = mask[b];
    while (v) {
      const r = (b << 3) + 31 - Math.clz32(v & -v);
      if (r < n) out[k++] = r;
      v &= v - 1;
    }
  }
  return { encoding: "indices", data: new Uint8Array(out.buffer, 0, k * 4), count: k };
}

/** A bitmask over `n` rows from either encoding (no per-row arrays). */
export function maskOf(encoding: SelectionEncoding, bytes: Uint8Array | null, n: number): Uint8Array {
  const mask = new Uint8Array(Math.ceil(n / 8));
  if (!bytes || bytes.byteLength === 0) return mask;
  if (encoding === "bitmask") {
    mask.set(bytes.subarray(0, mask.length));
    if (n & 7) mask[mask.length - 1] &= (1 << (n & 7)) - 1;
    return mask;
  }
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const rows = new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >> 2);
  for (let i = 0; i < rows.length; i++) if (rows[i] < n) mask[rows[i] >> 3] |= 1 << (rows[i] & 7);
  return mask;
}

/** Row numbers (ascending) from either encoding. */
export function decodeSelection(encoding: SelectionEncoding, bytes: Uint8Array | null, n: number): number[] {
  if (!bytes || bytes.byteLength === 0) return [];
  if (encoding === "indices") {
    const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
    return Array.from(new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >> 2));
  }
  const rows: number[] = [];
  const limit = Math.min(bytes.length, Math.ceil(n / 8));
  for (let b = 0; b < limit; b++) {
    let v = bytes[b];
    while (v) {
      const bit = 31 - Math.clz32(v & -v);
      const r = (b << 3) + bit;
      if (r < n) rows.push(r);
      v &= v - 1;
    }
  }
  return rows;
}

/** Bytes of a trait value as anywidget hands them over (DataView, ArrayBuffer or typed array). */
export function asBytes(value: unknown): Uint8Array | null {
  if (value == null) return null;
  if (value instanceof Uint8Array) return value;
  if (value instanceof DataView) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return null;
}
