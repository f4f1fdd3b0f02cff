// Colours for the map. Categorical values get a qualitative palette; scores in [0, 1] get a
// sequential ramp from pale (fine) to dark red (suspicious).

export const CATEGORICAL = [
  "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
  "#9c755f", "#bab0ac", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
];

/** `n` colours for categories; wraps around beyond the palette (the legend says which is which). */
export function categoricalColors(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < Math.max(n, 1); i++) out.push(CATEGORICAL[i % CATEGORICAL.length]);
  return out;
}

function hex(c: number): string {
  return Math.round(Math.max(0, Math.min(255, c))).toString(16).padStart(2, "0");
}

/** A `steps`-colour ramp from light grey-blue (score 0) to dark red (score 1). */
export function scoreRamp(steps = 32): string[] {
  const a = [198, 210, 225];
  const m = [253, 174, 97];
  const b = [165, 0, 38];
  const out: string[] = [];
  for (let i = 0; i < steps; i++) {
    const t = i / (steps - 1);
    const [p, q, u] = t < 0.5 ? [a, m, t * 2] : [m, b, (t - 0.5) * 2];
    out.push("#" + [0, 1, 2].map((k) => hex(p[k] + (q[k] - p[k]) * u)).join(""));
  }
  return out;
}

/** uint8 colour codes from the kernel to the float values regl-scatterplot reads. */
export function colourValues(codes: Uint8Array, continuous: boolean): Float32Array {
  const out = new Float32Array(codes.length);
  if (continuous) for (let i = 0; i < codes.length; i++) out[i] = codes[i] / 255;
  else for (let i = 0; i < codes.length; i++) out[i] = codes[i];
  return out;
}
