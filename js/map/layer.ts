// Which point layer draws the map: WebGL2 on a GPU (points.ts), the CPU rasteriser (raster.ts)
// where WebGL is missing or itself runs on the CPU. Both take the same columns and settings.
import { glRendererName, isSoftwareGL, PointLayer, type FrameSettings } from "./points";
import { RasterLayer } from "./raster";

export type RendererChoice = "auto" | "webgl" | "cpu";

export interface Layer {
  n: number;
  setPositions(xy: Float32Array, from?: Float32Array | null): void;
  setColours(codes: Uint8Array): void;
  setFlags(flags: Uint8Array): void;
  setState(state: Uint8Array): void;
  setPalette(rgba: Uint8Array): void;
  render(target: CanvasRenderingContext2D, width: number, height: number, f: FrameSettings): void;
  destroy(): void;
}

/** A layer for `choice`, and what it runs on (shown as the map's data-renderer). */
export function createLayer(choice: RendererChoice = "auto"): { layer: Layer; kind: string } {
  if (choice === "cpu") return { layer: new RasterLayer(), kind: "cpu" };
  const name = glRendererName();
  if (!name) {
    if (choice === "webgl") throw new Error("the map was asked to use WebGL2, which this browser does not offer");
    return { layer: new RasterLayer(), kind: "cpu (no WebGL2)" };
  }
  if (choice === "auto" && isSoftwareGL(name)) return { layer: new RasterLayer(), kind: `cpu (WebGL is software: ${name})` };
  return { layer: new PointLayer(), kind: `webgl (${name})` };
}
