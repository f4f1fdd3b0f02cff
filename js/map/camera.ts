// The map's view: which data point is at the centre and how far we zoomed in. Positions arrive in
// [-0.95, 0.95]; at zoom 1 that square fits the canvas' shorter side (aspect ratio kept).

/** Screen (CSS px from the canvas' top left) = data * a + b, per axis. */
export interface ScreenTransform {
  ax: number;
  bx: number;
  ay: number;
  by: number;
}

export class Camera {
  zoom = 1;
  cx = 0;
  cy = 0;
  width = 1;
  height = 1;

  resize(width: number, height: number): void {
    this.width = Math.max(1, width);
    this.height = Math.max(1, height);
  }

  /** clip = data * scale + offset (what the point layer needs). */
  clip(): { scale: [number, number]; offset: [number, number] } {
    const m = Math.min(this.width, this.height) * this.zoom;
    const sx = m / this.width;
    const sy = m / this.height;
    return { scale: [sx, sy], offset: [-this.cx * sx, -this.cy * sy] };
  }

  toScreen(): ScreenTransform {
    const { scale, offset } = this.clip();
    const hw = this.width / 2;
    const hh = this.height / 2;
    return { ax: scale[0] * hw, bx: (offset[0] + 1) * hw, ay: -scale[1] * hh, by: (1 - offset[1]) * hh };
  }

  toData(px: number, py: number): [number, number] {
    const t = this.toScreen();
    return [(px - t.bx) / t.ax, (py - t.by) / t.ay];
  }

  /** Zoom by `factor` keeping the data point under (px, py) where it is. */
  zoomAt(px: number, py: number, factor: number): void {
    const [dx, dy] = this.toData(px, py);
    this.zoom = Math.min(Math.max(this.zoom * factor, 0.2), 5000);
    const [nx, ny] = this.toData(px, py);
    this.cx += dx - nx;
    this.cy += dy - ny;
  }

  pan(dxPx: number, dyPx: number): void {
    const t = this.toScreen();
    this.cx -= dxPx / t.ax;
    this.cy -= dyPx / t.ay;
  }

  reset(): void {
    this.zoom = 1;
    this.cx = 0;
    this.cy = 0;
  }
}
