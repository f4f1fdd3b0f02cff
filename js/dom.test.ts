import { expect, it } from "vitest";
import { formatCell } from "./arrow";
import { el, option } from "./dom";
import { categoricalColors, colourValues, scoreRamp } from "./map/palette";

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

it("colours: categories index a palette, scores become [0, 1]", () => {
  expect(categoricalColors(30)).toHaveLength(30);
  expect(scoreRamp(32)).toHaveLength(32);
  expect(Array.from(colourValues(new Uint8Array([0, 255]), true))).toEqual([0, 1]);
  expect(Array.from(colourValues(new Uint8Array([3, 7]), false))).toEqual([3, 7]);
});
