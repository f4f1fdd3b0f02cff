import { describe, expect, it } from "vitest";
import { asBytes, decodeSelection, encodeSelection } from "./encoding";

describe("selection encoding", () => {
  it("sends few rows as sorted uint32 indices", () => {
    const e = encodeSelection([9, 2, 5], 1000);
    expect(e.encoding).toBe("indices");
    expect(e.data.byteLength).toBe(12);
    expect(decodeSelection(e.encoding, e.data, 1000)).toEqual([2, 5, 9]);
  });

  it("sends a big selection as a bitmask a thirty-second the size", () => {
    const n = 1_000_000;
    const rows = Array.from({ length: n / 2 }, (_, i) => i * 2);
    const e = encodeSelection(rows, n);
    expect(e.encoding).toBe("bitmask");
    expect(e.data.byteLength).toBe(125_000);
    expect(decodeSelection("bitmask", e.data, n)).toEqual(rows);
  });

  it("refuses rows outside the table", () => {
    expect(() => encodeSelection([10], 10)).toThrow(/outside 0..9/);
  });

  it("reads DataViews as anywidget hands them over", () => {
    const buf = new Uint32Array([4, 8]).buffer;
    expect(decodeSelection("indices", asBytes(new DataView(buf)), 10)).toEqual([4, 8]);
    expect(decodeSelection("indices", asBytes(null), 10)).toEqual([]);
  });
});
