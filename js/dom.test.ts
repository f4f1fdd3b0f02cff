import { expect, it } from "vitest";
import { formatCell } from "./arrow";
import { el, option } from "./dom";
import { categoricalColors, paletteBytes, scoreRamp } from "./map/palette";

const EVIL = "<img src=x onerror=alert(1)>";

it("data text is written as text, never parsed as HTML", () => {
  const d = el("div", "x", EVIL);
  const o = option(EVIL, EVIL);
  document.body.append(d);
  expect(d.textContent).toBe(EVIL);
  expect(d.querySelector("img")).toBeNull();
  expect(o.textContent).toBe(EVIL);
  d.remove();
});

it("cells format numbers, missing values and text", () => {
  expect(formatCell(0.123456)).toBe("0.123");
  expect(formatCell(3)).toBe("3");
  expect(formatCell(null)).toBe("—");
  expect(formatCell(NaN)).toBe("—");
  expect(formatCell(EVIL)).toBe(EVIL);
});

it("colours: categories index a palette, scores a 256-step ramp", () => {
  expect(categoricalColors(30)).toHaveLength(30);
  expect(scoreRamp(32)).toHaveLength(32);
  const cat = paletteBytes(["#ff0000", "#00ff80"], false);
  expect(Array.from(cat.subarray(0, 8))).toEqual([255, 0, 0, 255, 0, 255, 128, 255]);
  expect(Array.from(cat.subarray(8, 12))).toEqual([255, 0, 0, 255]); // wraps around
  const ramp = paletteBytes([], true);
  expect(ramp).toHaveLength(1024);
  expect(ramp[255 * 4]).toBeGreaterThan(ramp[255 * 4 + 2]); // score 1 is red
});
