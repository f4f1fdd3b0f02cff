// Geometry of the threshold histogram (pure; the SVG is drawn in charts/view.ts).

export interface Bar { x: number; y: number; w: number; h: number; flagged: boolean }

export function histogramBars(counts: readonly number[], lo: number, hi: number, threshold: number,
                              width: number, height: number, log = true): Bar[] {
  const n = counts.length;
  const f = (c: number) => (log ? Math.log1p(c) : c);
  const top = Math.max(1e-9, ...counts.map(f));
  const w = width / Math.max(n, 1);
  return counts.map((c, i) => {
    const h = (f(c) / top) * height;
    const binLo = lo + ((hi - lo) * i) / n;
    return { x: i * w, y: height - h, w: Math.max(w - 1, 1), h, flagged: binLo >= threshold };
  });
}

export function valueToX(v: number, lo: number, hi: number, width: number): number {
  return hi > lo ? ((v - lo) / (hi - lo)) * width : 0;
}

/** `v`, or `home` when `v` is within `tolerance` of it: a handle put back where it started (to the
 * pixel) lands exactly on the threshold it had, so the same samples are flagged again. */
export function snapTo(v: number, home: number, tolerance: number): number {
  return Math.abs(v - home) <= tolerance ? home : v;
}

export function xToValue(x: number, lo: number, hi: number, width: number): number {
  const t = Math.max(0, Math.min(1, x / Math.max(width, 1)));
  return lo + t * (hi - lo);
}
