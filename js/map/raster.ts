// The map's point layer for browsers whose WebGL is a software renderer (SwiftShader, llvmpipe:
// headless CI, remote desktops, VMs without a GPU) or missing: one pass over the typed arrays
// writes each point's pixels into an RGBA buffer, shown with putImageData. Software GL spends
// ~2 s setting up 1M point primitives; this pass takes tens of milliseconds. Same inputs and the
// same picture as points.ts: selected points, then flagged ones, on top.
import { fitLength, type FrameSettings } from "./points";

const WHITE = 0xffffffff;

/** Pixel offsets covered by a point `size` px wide: a disc when round, else a square. */
function footprint(size: number, round: boolean): Int32Array {
  const s = Math.max(1, Math.round(size));
  const out: number[] = [];
  const c = (s - 1) / 2;
  for (let dy = 0; dy < s; dy++) {
    for (let dx = 0; dx < s; dx++) {
      if (round && s > 2 && (dx - c) ** 2 + (dy - c) ** 2 > (s / 2) ** 2) continue;
      out.push(dx - Math.floor(s / 2), dy - Math.floor(s / 2));
    }
  }
  return Int32Array.from(out);
}

export class RasterLayer {
  private xy: Float32Array<ArrayBufferLike> = new Float32Array(0);
  private from: Float32Array<ArrayBufferLike> | null = null;
  private colour: Uint8Array<ArrayBufferLike> = new Uint8Array(0);
  private flag: Uint8Array<ArrayBufferLike> = new Uint8Array(0);
  private state: Uint8Array<ArrayBufferLike> = new Uint8Array(0);
  private palette = new Uint32Array(256); // RGBA bytes read as little-endian uint32
  private faded = new Uint32Array(256);
  private pixels = new Uint32Array(0);
  private depth = new Uint8Array(0);
  private image: ImageData | null = null;
  n = 0;

  setPositions(xy: Float32Array, from: Float32Array | null = null): void {
    const n = xy.length >> 1;
    if (n !== this.n) {
      this.n = n;
      this.colour = new Uint8Array(n);
      this.flag = new Uint8Array(n);
      this.state = new Uint8Array(n);
    }
    this.xy = xy;
    this.from = from && from.length === xy.length ? from : null;
  }

  setColours(codes: Uint8Array): void {
    this.colour = fitLength(codes, this.n);
  }

  setFlags(flags: Uint8Array): void {
    this.flag = fitLength(flags, this.n);
  }

  setState(state: Uint8Array): void {
    this.state = fitLength(state, this.n);
  }

  setPalette(rgba: Uint8Array): void {
    const bytes = new Uint8Array(this.palette.buffer);
    bytes.set(rgba.subarray(0, 1024));
    const faded = new Uint8Array(this.faded.buffer);
    for (let i = 0; i < 1024; i++) faded[i] = (i & 3) === 3 ? 255 : Math.round(rgba[i] + (255 - rgba[i]) * 0.75);
  }

  render(target: CanvasRenderingContext2D, width: number, height: number, f: FrameSettings): void {
    if (!this.image || this.image.width !== width || this.image.height !== height) {
      this.image = new ImageData(width, height);
      this.pixels = new Uint32Array(this.image.data.buffer);
      this.depth = new Uint8Array(width * height);
    }
    const { pixels, depth, xy, colour, flag, state, palette } = this;
    const from = f.t < 1 ? this.from : null;
    const faded = f.anySelected ? this.faded : palette;
    pixels.fill(WHITE);
    depth.fill(0);
    // clip -> device pixels
    const ax = (f.scale[0] * width) / 2, bx = ((f.offset[0] + 1) * width) / 2;
    const ay = (-f.scale[1] * height) / 2, by = ((1 - f.offset[1]) * height) / 2;
    const sel = f.anySelected ? 1 : 0;
    const shapes = [footprint(f.size, f.round), footprint(f.flagSize, f.round),
      footprint(f.size + sel, f.round), footprint(f.flagSize + sel, f.round)];
    const t = f.t;
    for (let i = 0, n = this.n; i < n; i++) {
      const s = state[i];
      if (s & 2) continue;
      let x = xy[2 * i], y = xy[2 * i + 1];
      if (from) {
        x = from[2 * i] + (x - from[2 * i]) * t;
        y = from[2 * i + 1] + (y - from[2 * i + 1]) * t;
      }
      const px = Math.round(x * ax + bx), py = Math.round(y * ay + by);
      if (px < -8 || py < -8 || px >= width + 8 || py >= height + 8) continue;
      // priority 1..4: plain, flagged, selected, selected and flagged (higher lies on top)
      const prio = 1 + (flag[i] ? 1 : 0) + (s & 1) * 2;
      const rgba = s & 1 ? palette[colour[i]] : faded[colour[i]];
      const shape = shapes[prio - 1];
      for (let k = 0; k < shape.length; k += 2) {
        const qx = px + shape[k], qy = py + shape[k + 1];
        if (qx < 0 || qy < 0 || qx >= width || qy >= height) continue;
        const p = qy * width + qx;
        if (depth[p] <= prio) {
          depth[p] = prio;
          pixels[p] = rgba;
        }
      }
    }
    target.putImageData(this.image, 0, 0);
  }

  destroy(): void {
    this.n = 0;
    this.xy = new Float32Array(0);
    this.image = null;
  }
}
