import { afterEach, describe, expect, it, vi } from "vitest";
import { attachGestures, type GestureHandlers } from "./gestures";
import type { Tool } from "./tools";

function setup(tool: Tool = "pan") {
  const target = document.createElement("div");
  target.style.cssText = "position:fixed;left:0;top:0;width:200px;height:200px";
  document.body.append(target);
  const overlay = document.createElementNS("http://www.w3.org/2000/svg", "polygon");
  const calls: Array<[string, ...unknown[]]> = [];
  const h: GestureHandlers = {
    lasso: (p, m) => calls.push(["lasso", p.length / 2, m]),
    click: (x, y, m) => calls.push(["click", x, y, m]),
    pan: (dx, dy) => calls.push(["pan", dx, dy]),
    zoom: (x, y, f) => calls.push(["zoom", x, y, f]),
    hover: () => {},
    leave: () => {},
    reset: () => calls.push(["reset"]),
    tool: () => tool,
  };
  const detach = attachGestures(target, overlay, h);
  const fire = (type: string, x: number, y: number, init: PointerEventInit = {}) =>
    target.dispatchEvent(new PointerEvent(type, { clientX: x, clientY: y, button: 0, bubbles: true, pointerId: 1, ...init }));
  return { target, calls, fire, detach };
}

describe("map gestures", () => {
  afterEach(() => {
    vi.useRealTimers();
    document.body.replaceChildren();
  });

  it("shift-drag draws a lasso; ctrl adds to the selection", () => {
    const { calls, fire } = setup();
    fire("pointerdown", 20, 20, { shiftKey: true, ctrlKey: true });
    for (const [x, y] of [[100, 20], [100, 100], [20, 100]]) fire("pointermove", x, y, { shiftKey: true });
    fire("pointerup", 20, 100, { shiftKey: true });
    expect(calls).toEqual([["lasso", 4, "merge"]]);
  });

  it("with the box tool a shift-drag selects the rectangle between press and release", () => {
    const polygons: number[][] = [];
    const { target, fire } = setup("box");
    const overlay = document.createElementNS("http://www.w3.org/2000/svg", "polygon");
    attachGestures(target, overlay, {
      lasso: (p) => polygons.push(p), click: () => {}, pan: () => {}, zoom: () => {}, hover: () => {},
      leave: () => {}, reset: () => {}, tool: () => "box",
    });
    fire("pointerdown", 20, 30, { shiftKey: true });
    for (const [x, y] of [[60, 90], [40, 50], [120, 110]]) fire("pointermove", x, y, { shiftKey: true });
    fire("pointerup", 120, 110, { shiftKey: true });
    expect(polygons).toEqual([[20, 30, 120, 30, 120, 110, 20, 110]]);
  });

  it("with the lasso tool a plain drag draws a lasso, even one that ends where it started", () => {
    const { calls, fire } = setup("lasso");
    fire("pointerdown", 20, 20);
    for (const [x, y] of [[100, 20], [100, 100], [20, 100], [21, 21]]) fire("pointermove", x, y);
    fire("pointerup", 21, 21);
    expect(calls).toEqual([["lasso", 5, "replace"]]);
  });

  it("with the box tool a plain drag selects a rectangle; alt removes", () => {
    const polygons: Array<[number[], string]> = [];
    const { target, fire } = setup("box");
    const overlay = document.createElementNS("http://www.w3.org/2000/svg", "polygon");
    attachGestures(target, overlay, {
      lasso: (p, m) => polygons.push([p, m]), click: () => {}, pan: () => {}, zoom: () => {}, hover: () => {},
      leave: () => {}, reset: () => {}, tool: () => "box",
    });
    fire("pointerdown", 10, 20, { altKey: true });
    fire("pointermove", 50, 60);
    fire("pointerup", 50, 60);
    expect(polygons).toEqual([[[10, 20, 50, 20, 50, 60, 10, 60], "remove"]]);
  });

  it("with a selection tool a click without moving still picks the point", () => {
    const { calls, fire } = setup("lasso");
    fire("pointerdown", 30, 40);
    fire("pointermove", 32, 41);
    fire("pointerup", 32, 41);
    expect(calls).toEqual([["click", 32, 41, "replace"]]);
  });

  it("a plain drag pans, a click without moving picks", () => {
    const { calls, fire } = setup();
    fire("pointerdown", 50, 50);
    fire("pointermove", 60, 55);
    fire("pointermove", 70, 60);
    fire("pointerup", 70, 60);
    fire("pointerdown", 30, 40);
    fire("pointerup", 31, 40);
    expect(calls).toEqual([["pan", 10, 5], ["pan", 10, 5], ["click", 31, 40, "replace"]]);
  });

  it("press and hold, then drag, draws a lasso too", () => {
    vi.useFakeTimers();
    const { calls, fire } = setup();
    fire("pointerdown", 20, 20);
    vi.advanceTimersByTime(500);
    for (const [x, y] of [[100, 20], [100, 100], [20, 100]]) fire("pointermove", x, y);
    fire("pointerup", 20, 100);
    expect(calls).toEqual([["lasso", 4, "replace"]]);
  });
});
