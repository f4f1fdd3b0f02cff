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

/** The 256-entry RGBA table the point layer indexes with each point's uint8 colour code. */
export function paletteBytes(colours: string[], continuous: boolean): Uint8Array {
  const table = continuous ? scoreRamp(256) : colours;
  const out = new Uint8Array(256 * 4);
  for (let i = 0; i < 256; i++) {
    const c = table[i % table.length] ?? "#888888";
    out[4 * i] = parseInt(c.slice(1, 3), 16);
    out[4 * i + 1] = parseInt(c.slice(3, 5), 16);
    out[4 * i + 2] = parseInt(c.slice(5, 7), 16);
    out[4 * i + 3] = 255;
  }
  return out;
}
