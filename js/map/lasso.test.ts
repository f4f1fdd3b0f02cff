import { describe, expect, it } from "vitest";
import { Camera } from "./camera";
import { insidePolygon, nearestPoint, pointsInPolygon } from "./lasso";
import { maskOf, encodeMask } from "../selection/encoding";

function rowsOf(mask: Uint8Array, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) if ((mask[i >> 3] >> (i & 7)) & 1) out.push(i);
  return out;
}

describe("map lasso", () => {
  const camera = new Camera();
  camera.resize(200, 100); // data [-1, 1] spans 100 px vertically, centred at (100, 50)
  const t = camera.toScreen();

  it("maps data to screen and back, keeping the aspect ratio", () => {
    expect([t.ax, t.bx, t.ay, t.by]).toEqual([50, 100, -50, 50]);
    const [x, y] = camera.toData(125, 25);
    expect(x).toBeCloseTo(0.5);
    expect(y).toBeCloseTo(0.5);
    camera.zoomAt(125, 25, 2);
    const [x2, y2] = camera.toData(125, 25);
    expect(x2).toBeCloseTo(0.5);
    expect(y2).toBeCloseTo(0.5);
    camera.reset();
  });

  // An L-shaped lasso (screen px): the square 50..150 x 12.5..87.5 without its lower-left quarter.
  // Its edges are axis-aligned so that points can lie exactly on them. The rule is the
  // rasteriser's: a point on a left or top edge is inside, on a right or bottom edge outside.
  const L = [50, 12.5, 150, 12.5, 150, 87.5, 100, 87.5, 100, 50, 50, 50];
  const placed: Array<[number, number, boolean, string]> = [
    [75, 25, true, "inside, upper arm"],
    [125, 75, true, "inside, lower arm"],
    [75, 75, false, "in the notch"],
    [25, 25, false, "left of the lasso"],
    [150, 50, false, "on the right edge"],
    [50, 37.5, true, "on the left edge"],
    [112.5, 12.5, true, "on the top edge"],
    [125, 87.5, false, "on the bottom edge"],
    [50, 12.5, true, "on the top-left vertex"],
    [150, 87.5, false, "on the bottom-right vertex"],
    [100, 50, true, "on the inner corner"],
    [75, 50, false, "on the notch's top edge"],
    [100, 62.5, true, "on the inner left edge"],
    [137.5, 37.5, false, "inside but hidden by a filter"],
  ];
  // data coordinates of those screen positions (exact in float32): x = (sx - 100) / 50, y = (50 - sy) / 50
  const xy = new Float32Array(placed.flatMap(([sx, sy]) => [(sx - 100) / 50, (50 - sy) / 50]));

  it("the crossing-number test puts hand-placed points inside, outside and on edges and vertices", () => {
    expect(placed.slice(0, 13).map(([x, y]) => insidePolygon(x, y, L))).toEqual(
      [true, true, false, false, false, true, true, false, true, false, true, false, true]);
  });

  it("a lasso selects exactly the points inside it, edges by the same rule, hidden ones left out", () => {
    const hidden = new Uint8Array(placed.length);
    hidden[13] = 1;
    const hit = pointsInPolygon(xy, L, t, hidden);
    expect(rowsOf(hit.mask, placed.length)).toEqual([0, 1, 5, 6, 8, 10, 12]);
    expect(hit.count).toBe(7);
    expect(pointsInPolygon(xy, L, t).count).toBe(8); // the hidden one counts when nothing is hidden
  });

  it("a slanted lasso over 10,000 points agrees with a half-plane test written independently", () => {
    const n = 10_000;
    const grid = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) {
      grid[2 * i] = -0.99 + (1.98 * (i % 100)) / 99;
      grid[2 * i + 1] = -0.99 + (1.98 * Math.floor(i / 100)) / 99;
    }
    const tri = [60.3, 90.1, 140.7, 88.9, 101.2, 10.4];
    const side = (ax: number, ay: number, bx: number, by: number, px: number, py: number) =>
      (bx - ax) * (py - ay) - (by - ay) * (px - ax);
    const hit = pointsInPolygon(grid, tri, t);
    let inside = 0, checked = 0;
    for (let i = 0; i < n; i++) {
      const px = grid[2 * i] * t.ax + t.bx, py = grid[2 * i + 1] * t.ay + t.by;
      const s = [side(tri[0], tri[1], tri[2], tri[3], px, py), side(tri[2], tri[3], tri[4], tri[5], px, py),
                 side(tri[4], tri[5], tri[0], tri[1], px, py)];
      if (s.some((v) => Math.abs(v) < 1e-6)) continue; // exactly on an edge: covered above
      const expected = s.every((v) => v > 0) || s.every((v) => v < 0);
      expect([i, ((hit.mask[i >> 3] >> (i & 7)) & 1) === 1]).toEqual([i, expected]);
      inside += expected ? 1 : 0;
      checked++;
    }
    expect(checked).toBe(n);
    expect(inside).toBe(hit.count);
    expect(inside).toBeGreaterThan(1000);
  });

  it("a degenerate lasso selects nothing; a click finds the nearest visible point", () => {
    const xy = new Float32Array([0, 0, 0.02, 0, 0.5, 0.5]);
    expect(pointsInPolygon(xy, [10, 10, 20, 20], t).count).toBe(0);
    expect(nearestPoint(xy, 101.5, 50, 6, t)).toBe(1);
    expect(nearestPoint(xy, 101.5, 50, 6, t, new Uint8Array([0, 1, 0]))).toBe(0);
    expect(nearestPoint(xy, 10, 10, 6, t)).toBe(-1);
  });

  it("a selection bitmask travels as indices when that is smaller, and back", () => {
    const n = 1000;
    const mask = new Uint8Array(125);
    mask[0] = 0b101;
    mask[124] = 0b10000000;
    const small = encodeMask(mask, 3, n);
    expect(small.encoding).toBe("indices");
    expect(Array.from(new Uint32Array(small.data.slice().buffer))).toEqual([0, 2, 999]);
    expect(Array.from(maskOf("indices", small.data, n))).toEqual(Array.from(mask));
    const full = new Uint8Array(125).fill(255);
    const big = encodeMask(full, 1000, n);
    expect(big.encoding).toBe("bitmask");
    expect(big.data.byteLength).toBe(125);
  });
});
