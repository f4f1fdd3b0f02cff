import { expect, it } from "vitest";
import { histogramBars, snapTo, valueToX, xToValue } from "./histogram";

it("bars at or above the threshold are the flagged ones", () => {
  const bars = histogramBars([5, 0, 3, 1], 0, 1, 0.5, 100, 50, false);
  expect(bars.map((b) => b.flagged)).toEqual([false, false, true, true]);
  expect(bars[0].h).toBe(50);
  expect(bars[1].h).toBe(0);
});

it("handle position and value invert each other and clamp", () => {
  expect(xToValue(valueToX(0.3, 0, 1, 240), 0, 1, 240)).toBeCloseTo(0.3);
  expect(xToValue(-20, 0, 1, 240)).toBe(0);
  expect(xToValue(999, 0, 1, 240)).toBe(1);
});

it("a handle put back within a pixel of where it started lands exactly there", () => {
  const home = 0.7112363576889038, pixel = 1 / 240;
  expect(snapTo(xToValue(valueToX(home, 0, 1, 240) + 0.6, 0, 1, 240), home, pixel)).toBe(home);
  expect(snapTo(0.95, home, pixel)).toBe(0.95);
});
