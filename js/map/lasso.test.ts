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

  it("selects exactly the points inside a polygon, edges included, hidden ones left out", () => {
    // a 100 x 100 grid of points over [-0.99, 0.99]^2, and a triangle with slanted edges
    const n = 10_000;
    const xy = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) {
      xy[2 * i] = -0.99 + (1.98 * (i % 100)) / 99;
      xy[2 * i + 1] = -0.99 + (1.98 * Math.floor(i / 100)) / 99;
    }
    const polygon = [60.3, 90.1, 140.7, 88.9, 101.2, 10.4];
    const hidden = new Uint8Array(n);
    hidden[5050] = 1;
    const hit = pointsInPolygon(xy, polygon, t, hidden);
    const expected: number[] = [];
    for (let i = 0; i < n; i++) {
      if (!hidden[i] && insidePolygon(xy[2 * i] * t.ax + t.bx, xy[2 * i + 1] * t.ay + t.by, polygon)) expected.push(i);
    }
    expect(expected.length).toBeGreaterThan(1000);
    expect(hit.count).toBe(expected.length);
    expect(rowsOf(hit.mask, n)).toEqual(expected);
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
