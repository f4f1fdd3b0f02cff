// Mouse and touch on the map. What a drag does depends on the tool (tools.ts): with "pan" a plain
// drag pans, with "lasso" or "box" it selects; shift-drag selects in every mode, and press and
// hold (then drag) starts a lasso when panning. The wheel zooms about the cursor; a click picks
// the point under it; a double click resets the view. Ctrl/cmd adds to the selection, alt removes.
import { dragAction, type Tool } from "./tools";

export type SelectMode = "replace" | "merge" | "remove";
export type SelectShape = "lasso" | "box";

export interface GestureHandlers {
  lasso(polygon: number[], mode: SelectMode): void;
  click(x: number, y: number, mode: SelectMode): void;
  pan(dx: number, dy: number): void;
  zoom(x: number, y: number, factor: number): void;
  hover(x: number, y: number): void;
  leave(): void;
  reset(): void;
  /** The tool in use (default: pan). */
  tool?(): Tool;
}

const LONG_PRESS_MS = 450;
const DRAG_PX = 4;
const LASSO_STEP_PX = 2;

function modeOf(e: MouseEvent): SelectMode {
  if (e.altKey) return "remove";
  return e.ctrlKey || e.metaKey ? "merge" : "replace";
}

/** Listen on `target`; the lasso path is drawn as `overlay` (an SVG polygon over the map). */
export function attachGestures(target: HTMLElement, overlay: SVGPolygonElement, h: GestureHandlers): () => void {
  type State = "idle" | "pending" | "pan" | "lasso";
  let state: State = "idle";
  let start = { x: 0, y: 0 };
  let last = { x: 0, y: 0 };
  let path: number[] = [];
  let anchor = { x: 0, y: 0 };
  let mode: SelectMode = "replace";
  let shape: SelectShape = "lasso";
  let travelled = false; // the pointer went further than DRAG_PX from the press at some point
  let timer = -1;
  let hoverQueued = false;
  let hoverAt = { x: 0, y: 0 };

  const at = (e: MouseEvent) => {
    const r = target.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  };
  const drawPath = () => {
    const pts: string[] = [];
    for (let i = 0; i < path.length; i += 2) pts.push(`${path[i]},${path[i + 1]}`);
    overlay.setAttribute("points", pts.join(" "));
  };
  const startLasso = (p: { x: number; y: number }, as: SelectShape = "lasso") => {
    state = "lasso";
    shape = as;
    anchor = p;
    path = [p.x, p.y];
    target.classList.add("dqx-lassoing");
  };
  const stop = () => {
    clearTimeout(timer);
    state = "idle";
    path = [];
    target.classList.remove("dqx-lassoing");
    drawPath();
  };

  const down = (e: PointerEvent) => {
    if (e.button !== 0) return;
    const p = at(e);
    start = last = p;
    travelled = false;
    mode = modeOf(e);
    try {
      target.setPointerCapture(e.pointerId); // keep getting moves when the lasso leaves the map
    } catch {
      // synthetic or already released pointers cannot be captured; the gesture still works inside
    }
    const action = dragAction(h.tool?.() ?? "pan", e.shiftKey);
    if (action !== "pan") {
      startLasso(p, action);
      return;
    }
    state = "pending";
    timer = window.setTimeout(() => state === "pending" && startLasso(last), LONG_PRESS_MS);
  };
  const move = (e: PointerEvent) => {
    const p = at(e);
    if (state === "idle") {
      hoverAt = p;
      if (!hoverQueued) {
        hoverQueued = true;
        requestAnimationFrame(() => {
          hoverQueued = false;
          if (state === "idle") h.hover(hoverAt.x, hoverAt.y);
        });
      }
      return;
    }
    if (Math.hypot(p.x - start.x, p.y - start.y) > DRAG_PX) travelled = true;
    if (state === "pending" && travelled) {
      clearTimeout(timer);
      state = "pan";
    }
    if (state === "pan") {
      h.pan(p.x - last.x, p.y - last.y);
    } else if (state === "lasso" && shape === "box") {
      path = [anchor.x, anchor.y, p.x, anchor.y, p.x, p.y, anchor.x, p.y];
      drawPath();
    } else if (state === "lasso") {
      const n = path.length;
      if (Math.hypot(p.x - path[n - 2], p.y - path[n - 1]) >= LASSO_STEP_PX) {
        path.push(p.x, p.y);
        drawPath();
      }
    }
    last = p;
  };
  const up = (e: PointerEvent) => {
    const p = at(e);
    const was = state;
    const polygon = path;
    const moved = travelled || Math.hypot(p.x - start.x, p.y - start.y) > DRAG_PX;
    stop();
    if ((was === "pending" || was === "lasso") && !moved) h.click(p.x, p.y, mode);
    else if (was === "lasso" && polygon.length >= 6) h.lasso(polygon, mode);
  };
  const wheel = (e: WheelEvent) => {
    e.preventDefault();
    const p = at(e);
    h.zoom(p.x, p.y, Math.exp(-e.deltaY * 0.002));
  };
  const dbl = () => h.reset();
  const leave = () => {
    if (state === "idle") h.leave();
  };
  target.addEventListener("pointerdown", down);
  target.addEventListener("pointermove", move);
  target.addEventListener("pointerup", up);
  target.addEventListener("pointercancel", stop);
  target.addEventListener("pointerleave", leave);
  target.addEventListener("wheel", wheel, { passive: false });
  target.addEventListener("dblclick", dbl);
  return () => {
    target.removeEventListener("pointerdown", down);
    target.removeEventListener("pointermove", move);
    target.removeEventListener("pointerup", up);
    target.removeEventListener("pointercancel", stop);
    target.removeEventListener("pointerleave", leave);
    target.removeEventListener("wheel", wheel);
    target.removeEventListener("dblclick", dbl);
  };
}
