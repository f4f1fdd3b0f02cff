// The map's point layer: every point in one WebGL2 draw call, straight from the bytes the kernel
// sends (interleaved float32 x, y; uint8 colour code; uint8 flag) plus a uint8 state per point
// (bit 0 selected, bit 1 hidden by a filter). Nothing is converted per point in JavaScript.
//
// One WebGL2 context serves every map on the page (browsers keep only ~16 alive): each map keeps
// its buffers in it and copies the drawn frame onto its own 2-D canvas.

const VERTEX = `#version 300 es
in vec2 a_pos;
in vec2 a_from;
in uint a_colour;
in uint a_flag;
in uint a_state;
uniform float u_t;
uniform vec2 u_scale;
uniform vec2 u_offset;
uniform float u_size;
uniform float u_flagSize;
uniform bool u_anySelected;
uniform sampler2D u_palette;
out vec3 v_colour;
void main() {
  if ((a_state & 2u) != 0u) {
    gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
    gl_PointSize = 0.0;
    return;
  }
  bool selected = (a_state & 1u) != 0u;
  bool flagged = a_flag != 0u;
  vec2 p = mix(a_from, a_pos, u_t);
  // selected points, then flagged ones, lie on top (smaller depth wins)
  float depth = 0.5 - (flagged ? 0.25 : 0.0) - (selected ? 0.5 : 0.0);
  gl_Position = vec4(p * u_scale + u_offset, depth, 1.0);
  gl_PointSize = (flagged ? u_flagSize : u_size) + (selected && u_anySelected ? 1.0 : 0.0);
  vec3 c = texelFetch(u_palette, ivec2(int(a_colour), 0), 0).rgb;
  v_colour = (u_anySelected && !selected) ? mix(c, vec3(1.0), 0.75) : c;
}`;

const FRAGMENT = `#version 300 es
precision mediump float;
in vec3 v_colour;
uniform bool u_round;
out vec4 colour;
void main() {
  if (u_round) {
    vec2 d = gl_PointCoord - 0.5;
    if (dot(d, d) > 0.25) discard;
  }
  colour = vec4(v_colour, 1.0);
}`;

export interface FrameSettings {
  /** clip = position * scale + offset */
  scale: [number, number];
  offset: [number, number];
  /** 0 = previous positions, 1 = current ones (layout transitions) */
  t: number;
  size: number;
  flagSize: number;
  round: boolean;
  anySelected: boolean;
}

/** `bytes` as exactly `n` bytes (cut, or padded with zeros), one per point. */
export function fitLength(bytes: Uint8Array, n: number): Uint8Array {
  if (bytes.length === n) return bytes;
  const out = new Uint8Array(n);
  out.set(bytes.subarray(0, n));
  return out;
}

class SharedRenderer {
  readonly canvas = document.createElement("canvas");
  readonly gl: WebGL2RenderingContext;
  readonly program: WebGLProgram;
  readonly uniforms: Record<string, WebGLUniformLocation | null> = {};
  readonly attributes: Record<string, number> = {};

  constructor() {
    const gl = this.canvas.getContext("webgl2", { antialias: false, depth: true, alpha: false,
      premultipliedAlpha: false, preserveDrawingBuffer: false });
    if (!gl) throw new Error("the map needs WebGL2, which this browser does not offer");
    this.gl = gl;
    const program = gl.createProgram()!;
    for (const [type, source] of [[gl.VERTEX_SHADER, VERTEX], [gl.FRAGMENT_SHADER, FRAGMENT]] as const) {
      const shader = gl.createShader(type)!;
      gl.shaderSource(shader, source);
      gl.compileShader(shader);
      if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(`map shader: ${gl.getShaderInfoLog(shader)}`);
      gl.attachShader(program, shader);
    }
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(`map program: ${gl.getProgramInfoLog(program)}`);
    this.program = program;
    for (const u of ["u_t", "u_scale", "u_offset", "u_size", "u_flagSize", "u_anySelected", "u_palette", "u_round"]) {
      this.uniforms[u] = gl.getUniformLocation(program, u);
    }
    for (const a of ["a_pos", "a_from", "a_colour", "a_flag", "a_state"]) this.attributes[a] = gl.getAttribLocation(program, a);
  }
}

let shared: SharedRenderer | null = null;
function renderer(): SharedRenderer {
  if (!shared) shared = new SharedRenderer();
  return shared;
}

/** One map's points in the shared context. */
export class PointLayer {
  private r = renderer();
  private vao: WebGLVertexArrayObject;
  private pos: WebGLBuffer;
  private from: WebGLBuffer;
  private colour: WebGLBuffer;
  private flag: WebGLBuffer;
  private state: WebGLBuffer;
  private palette: WebGLTexture;
  n = 0;

  constructor() {
    const gl = this.r.gl;
    this.vao = gl.createVertexArray()!;
    [this.pos, this.from, this.colour, this.flag, this.state] = [0, 1, 2, 3, 4].map(() => gl.createBuffer()!);
    this.palette = gl.createTexture()!;
    gl.bindVertexArray(this.vao);
    const a = this.r.attributes;
    for (const [name, buffer] of [["a_pos", this.pos], ["a_from", this.from]] as const) {
      gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
      gl.enableVertexAttribArray(a[name]);
      gl.vertexAttribPointer(a[name], 2, gl.FLOAT, false, 0, 0);
    }
    for (const [name, buffer] of [["a_colour", this.colour], ["a_flag", this.flag], ["a_state", this.state]] as const) {
      gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
      gl.enableVertexAttribArray(a[name]);
      gl.vertexAttribIPointer(a[name], 1, gl.UNSIGNED_BYTE, 0, 0);
    }
    gl.bindVertexArray(null);
  }

  private upload(buffer: WebGLBuffer, data: ArrayBufferView): void {
    const gl = this.r.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
    gl.bufferData(gl.ARRAY_BUFFER, data, gl.STATIC_DRAW);
  }

  /** New positions (interleaved x, y); `from` = where the points start a transition (default: here). */
  setPositions(xy: Float32Array, from: Float32Array | null = null): void {
    const n = xy.length >> 1;
    if (n !== this.n) {
      this.n = n;
      this.upload(this.colour, new Uint8Array(n));
      this.upload(this.flag, new Uint8Array(n));
      this.upload(this.state, new Uint8Array(n));
    }
    this.upload(this.pos, xy);
    this.upload(this.from, from && from.length === xy.length ? from : xy);
  }

  setColours(codes: Uint8Array): void {
    this.upload(this.colour, fitLength(codes, this.n));
  }

  setFlags(flags: Uint8Array): void {
    this.upload(this.flag, fitLength(flags, this.n));
  }

  /** Per point: bit 0 selected, bit 1 hidden. */
  setState(state: Uint8Array): void {
    this.upload(this.state, fitLength(state, this.n));
  }

  /** 256 RGBA colours; a point's colour code indexes it. */
  setPalette(rgba: Uint8Array): void {
    const gl = this.r.gl;
    gl.bindTexture(gl.TEXTURE_2D, this.palette);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, 256, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE, rgba);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
  }

  /** Draw into the shared context at `width` x `height` device pixels and copy onto `target`. */
  render(target: CanvasRenderingContext2D, width: number, height: number, f: FrameSettings): void {
    const { gl, canvas, program, uniforms: u } = this.r;
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    gl.viewport(0, 0, width, height);
    gl.clearColor(1, 1, 1, 1);
    gl.clearDepth(1);
    gl.enable(gl.DEPTH_TEST);
    gl.depthFunc(gl.LEQUAL);
    gl.disable(gl.BLEND);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    gl.useProgram(program);
    gl.uniform2f(u.u_scale, f.scale[0], f.scale[1]);
    gl.uniform2f(u.u_offset, f.offset[0], f.offset[1]);
    gl.uniform1f(u.u_t, f.t);
    gl.uniform1f(u.u_size, f.size);
    gl.uniform1f(u.u_flagSize, f.flagSize);
    gl.uniform1i(u.u_anySelected, f.anySelected ? 1 : 0);
    gl.uniform1i(u.u_round, f.round ? 1 : 0);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.palette);
    gl.uniform1i(u.u_palette, 0);
    gl.bindVertexArray(this.vao);
    if (this.n) gl.drawArrays(gl.POINTS, 0, this.n);
    gl.bindVertexArray(null);
    target.clearRect(0, 0, width, height);
    target.drawImage(canvas, 0, 0);
  }

  destroy(): void {
    const gl = this.r.gl;
    for (const b of [this.pos, this.from, this.colour, this.flag, this.state]) gl.deleteBuffer(b);
    gl.deleteTexture(this.palette);
    gl.deleteVertexArray(this.vao);
    this.n = 0;
  }
}

/** The WebGL2 renderer's name ("" when the browser offers no WebGL2). */
export function glRendererName(): string {
  let r: SharedRenderer;
  try {
    r = renderer();
  } catch {
    return "";
  }
  const info = r.gl.getExtension("WEBGL_debug_renderer_info");
  return String(r.gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : r.gl.RENDERER) ?? "unknown");
}

/** True for CPU implementations of WebGL, which pay ~2 us of setup per point. */
export function isSoftwareGL(name: string): boolean {
  return /swiftshader|llvmpipe|softpipe|software|basic render/i.test(name);
}
