// Which points a lasso or a click hits, over the interleaved float32 positions, without a spatial
// index: one pass over the typed array. The lasso polygon is filled once on a 2-D canvas (even-odd
// rule); a point in a fully covered pixel is inside, in an empty one outside, and only the few
// points in partly covered (edge) pixels get the exact crossing-number test.
import type { ScreenTransform } from "./camera";

export interface Hit {
  /** one bit per point (bit i & 7 of byte i >> 3), as the Selection model sends it */
  mask: Uint8Array;
  count: number;
}

/** Crossing-number (even-odd) test of (x, y) against the flat polygon [x0, y0, x1, y1, ...]. */
export function insidePolygon(x: number, y: number, polygon: ArrayLike<number>): boolean {
  let inside = false;
  const m = polygon.length >> 1;
  for (let i = 0, j = m - 1; i < m; j = i++) {
    const xi = polygon[2 * i], yi = polygon[2 * i + 1];
    const xj = polygon[2 * j], yj = polygon[2 * j + 1];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Points (not hidden) whose screen position lies inside `polygon` (flat screen px). */
export function pointsInPolygon(xy: Float32Array, polygon: ArrayLike<number>, t: ScreenTransform,
                                hidden: Uint8Array | null = null): Hit {
  const n = xy.length >> 1;
  const mask = new Uint8Array((n + 7) >> 3);
  const m = polygon.length >> 1;
  if (m < 3) return { mask, count: 0 };
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let i = 0; i < m; i++) {
    x0 = Math.min(x0, polygon[2 * i]);
    x1 = Math.max(x1, polygon[2 * i]);
    y0 = Math.min(y0, polygon[2 * i + 1]);
    y1 = Math.max(y1, polygon[2 * i + 1]);
  }
  x0 = Math.floor(x0);
  y0 = Math.floor(y0);
  const w = Math.max(1, Math.ceil(x1) - x0 + 1);
  const h = Math.max(1, Math.ceil(y1) - y0 + 1);
  const coverage = fillPolygon(polygon, x0, y0, w, h);
  let count = 0;
  for (let i = 0; i < n; i++) {
    if (hidden && hidden[i]) continue;
    const sx = xy[2 * i] * t.ax + t.bx - x0;
    const sy = xy[2 * i + 1] * t.ay + t.by - y0;
    if (!(sx >= 0 && sy >= 0 && sx < w && sy < h)) continue;
    const a = coverage[(sy | 0) * w + (sx | 0)];
    if (a === 0) continue;
    if (a === 255 || insidePolygon(sx + x0, sy + y0, polygon)) {
      mask[i >> 3] |= 1 << (i & 7);
      count++;
    }
  }
  return { mask, count };
}

/** Coverage (0..255) of each pixel of the w x h box at (x0, y0) by the polygon. */
function fillPolygon(polygon: ArrayLike<number>, x0: number, y0: number, w: number, h: number): Uint8Array {
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
  ctx.beginPath();
  ctx.moveTo(polygon[0] - x0, polygon[1] - y0);
  for (let i = 1; i < polygon.length >> 1; i++) ctx.lineTo(polygon[2 * i] - x0, polygon[2 * i + 1] - y0);
  ctx.closePath();
  ctx.fillStyle = "#000";
  ctx.fill("evenodd");
  const rgba = ctx.getImageData(0, 0, w, h).data;
  const out = new Uint8Array(w * h);
  for (let i = 0; i < out.length; i++) out[i] = rgba[4 * i + 3];
  return out;
}

/** The visible point nearest to screen position (px, py) within `radius` px, or -1. */
export function nearestPoint(xy: Float32Array, px: number, py: number, radius: number, t: ScreenTransform,
                             hidden: Uint8Array | null = null): number {
  const n = xy.length >> 1;
  let best = -1;
  let bestD = radius * radius;
  for (let i = 0; i < n; i++) {
    const dx = xy[2 * i] * t.ax + t.bx - px;
    if (dx > radius || dx < -radius) continue;
    const dy = xy[2 * i + 1] * t.ay + t.by - py;
    const d = dx * dx + dy * dy;
    if (d <= bestD && !(hidden && hidden[i])) {
      bestD = d;
      best = i;
    }
  }
  return best;
}

/** Number of set bits in a bitmask. */
export function countBits(mask: Uint8Array): number {
  let c = 0;
  for (let i = 0; i < mask.length; i++) {
    let v = mask[i];
    while (v) {
      v &= v - 1;
      c++;
    }
  }
  return c;
}
