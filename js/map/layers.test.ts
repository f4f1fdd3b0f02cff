import { expect, it } from "vitest";
import { paletteBytes } from "./palette";
import type { Layer } from "./layer";
import { PointLayer } from "./points";
import { RasterLayer } from "./raster";

function pixel(ctx: CanvasRenderingContext2D, x: number, y: number): number[] {
  return Array.from(ctx.getImageData(x, y, 1, 1).data);
}

it.each([["CPU", () => new RasterLayer()], ["WebGL2", () => new PointLayer()]] as [string, () => Layer][])(
    "the %s point layer draws colours, fades the unselected, hides filtered points, puts selected on top", (_, make) => {
  const canvas = document.createElement("canvas");
  canvas.width = 100;
  canvas.height = 100;
  const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
  const layer = make();
  // three points: (-0.5, 0.5) -> pixel (25, 25); (0.5, -0.5) -> (75, 75); two at the centre (50, 50)
  layer.setPositions(new Float32Array([-0.5, 0.5, 0.5, -0.5, 0, 0, 0, 0]));
  layer.setColours(new Uint8Array([0, 1, 0, 1]));
  layer.setPalette(paletteBytes(["#ff0000", "#0000ff"], false));
  const frame = { scale: [1, 1] as [number, number], offset: [0, 0] as [number, number], t: 1, size: 3,
    flagSize: 5, round: false, anySelected: false };
  layer.render(ctx, 100, 100, frame);
  expect(pixel(ctx, 25, 25)).toEqual([255, 0, 0, 255]);
  expect(pixel(ctx, 75, 75)).toEqual([0, 0, 255, 255]);
  expect(pixel(ctx, 50, 50)).toEqual([0, 0, 255, 255]); // the later point wins a tie
  expect(pixel(ctx, 10, 10)).toEqual([255, 255, 255, 255]);
  // select the first centre point (red), hide the blue corner point
  layer.setState(new Uint8Array([0, 2, 1, 0]));
  layer.render(ctx, 100, 100, { ...frame, anySelected: true });
  expect(pixel(ctx, 50, 50)).toEqual([255, 0, 0, 255]); // selected lies on top
  expect(pixel(ctx, 75, 75)).toEqual([255, 255, 255, 255]); // hidden
  const faded = pixel(ctx, 25, 25);
  expect(faded[0]).toBe(255);
  expect(faded[1]).toBeGreaterThan(150); // unselected red is washed out towards white
});
