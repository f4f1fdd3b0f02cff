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
  const cats = categoricalColors(30);
  expect(cats).toHaveLength(30);
  for (let i = 0; i + 1 < cats.length; i++) expect([i, cats[i]]).not.toEqual([i, cats[i + 1]]); // neighbours differ
  expect(new Set(cats.slice(0, 24)).size).toBe(24); // the first 24 categories all differ
  const ramp32 = scoreRamp(32).map((c) => [1, 3, 5].map((k) => parseInt(c.slice(k, k + 2), 16)));
  expect(ramp32).toHaveLength(32);
  expect(ramp32[0]).toEqual([198, 210, 225]); // score 0: pale grey-blue
  expect(ramp32[31]).toEqual([165, 0, 38]); // score 1: dark red
  // higher scores are darker and redder: luminance falls and red's share of the colour rises at every step
  const lum = ramp32.map(([r, g, b]) => 0.2126 * r + 0.7152 * g + 0.0722 * b);
  const redShare = ramp32.map(([r, g, b]) => r / (r + g + b));
  for (let i = 0; i + 1 < 32; i++) {
    expect(lum[i + 1]).toBeLessThan(lum[i]);
    expect(redShare[i + 1]).toBeGreaterThan(redShare[i]);
  }
  const cat = paletteBytes(["#ff0000", "#00ff80"], false);
  expect(Array.from(cat.subarray(0, 8))).toEqual([255, 0, 0, 255, 0, 255, 128, 255]);
  expect(Array.from(cat.subarray(8, 12))).toEqual([255, 0, 0, 255]); // wraps around
  const ramp = paletteBytes([], true);
  expect(ramp).toHaveLength(1024);
  expect(ramp[255 * 4]).toBeGreaterThan(ramp[255 * 4 + 2]); // score 1 is red
});
