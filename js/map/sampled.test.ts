import { describe, expect, it } from "vitest";
import { Camera } from "./camera";
import { drawnMask, gatherRows, polygonToData, uint32Of, withRow } from "./sampled";

describe("sampled map", () => {
  const rows = new Uint32Array([1, 4, 9, 10]); // the rows of the 4 drawn points, out of 12

  it("maps a selection over every row onto the drawn points", () => {
    const full = new Uint8Array(2);
    for (const r of [0, 4, 10, 11]) full[r >> 3] |= 1 << (r & 7);
    expect(Array.from(drawnMask(full, rows))).toEqual([0b1010]);
  });

  it("takes the drawn rows' bytes and bits", () => {
    const perRow = Uint8Array.from({ length: 12 }, (_, i) => i * 2);
    expect(Array.from(gatherRows(perRow, rows))).toEqual([2, 8, 18, 20]);
    const bits = new Uint8Array([0b00010010, 0b00000100]); // rows 1, 4, 10
    expect(Array.from(gatherRows(bits, rows, true))).toEqual([1, 1, 0, 1]);
  });

  it("sends the lasso in map coordinates (the inverse of the camera)", () => {
    const camera = new Camera();
    camera.resize(200, 100);
    camera.zoomAt(130, 40, 3);
    const t = camera.toScreen();
    const data = [0.2, -0.4, 0.5, 0.1, -0.3, 0.6];
    const screen = data.map((v, i) => (i % 2 ? v * t.ay + t.by : v * t.ax + t.bx));
    polygonToData(screen, t).forEach((v, i) => expect(v).toBeCloseTo(data[i], 9));
  });

  it("adds and removes one row of a selection over every row", () => {
    const on = withRow(null, 12, 9, true);
    expect(Array.from(on)).toEqual([0, 0b10]);
    expect(Array.from(withRow(on, 12, 9, false))).toEqual([0, 0]);
    expect(Array.from(uint32Of(new DataView(new Uint32Array([7, 70000]).buffer)))).toEqual([7, 70000]);
  });
});
