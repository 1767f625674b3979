/**
 * ComfyUI's "lanczos" image upscale (comfy.utils.lanczos), which goes through Pillow: each image is turned into
 * 8-bit pixels (255 * value, clipped to 0..255, truncated), resized with Image.resize(LANCZOS), and divided by 255
 * again. So the result is quantized to 1/255 steps and clipped to 0..1, and matching it means doing Pillow's
 * integer arithmetic: Lanczos-3 weights (widened by the scale when shrinking), normalized per output pixel,
 * turned into 22-bit fixed point; a horizontal pass, then a vertical one, each rounded and clipped to 8 bits.
 * RGBA (and LA) images are resized with their colours premultiplied by alpha, as Pillow does, so fully
 * transparent pixels do not bleed their colour into the opaque ones.
 */
import type { Tensor } from '../tensor.ts';
import { checkSize, gridOf, indexer, planesOf, shapeOf, type Layout } from './grid.ts';

/** Pillow's fixed-point precision for 8-bit resampling (32 - 8 - 2 bits). */
const PRECISION_BITS = 22;
const ONE = 2 ** PRECISION_BITS;
const SUPPORT = 3;

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

const lanczos3 = (x: number): number => (x >= -SUPPORT && x < SUPPORT ? sinc(x) * sinc(x / SUPPORT) : 0);

interface Coefficients {
  /** Taps per output pixel (unused ones are 0). */
  k: number;
  start: Int32Array;
  count: Int32Array;
  /** Fixed-point weights, `k` per output pixel. */
  weight: Int32Array;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for resizing `inSize` pixels to `outSize`. */
function coefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = SUPPORT * filterScale;
  const k = Math.ceil(support) * 2 + 1;
  const c: Coefficients = { k, start: new Int32Array(outSize), count: new Int32Array(outSize), weight: new Int32Array(outSize * k) };
  const row = new Float64Array(k);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    // C's (int) cast of a positive value truncates: "round" by adding 0.5 first, as Pillow does.
    const min = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - min;
    let total = 0;
    for (let x = 0; x < count; x++) {
      row[x] = lanczos3((x + min - center + 0.5) / filterScale);
      total += row[x]!;
    }
    for (let x = 0; x < count; x++) {
      const w = total !== 0 ? row[x]! / total : row[x]!;
      c.weight[o * k + x] = Math.trunc(w < 0 ? -0.5 + w * ONE : 0.5 + w * ONE);
    }
    c.start[o] = min;
    c.count[o] = count;
  }
  return c;
}

/** Pillow's clip8: a fixed-point sum back to 0..255. */
function clip8(sum: number): number {
  if (sum >= ONE * 256) return 255;
  if (sum <= 0) return 0;
  return Math.floor(sum / ONE);
}

/** Resamples the W axis of 8-bit [outer, H, W, inner] pixels. */
function horizontal(src: Uint8Array, outer: number, H: number, W: number, inner: number, outW: number, c: Coefficients): Uint8Array {
  const out = new Uint8Array(outer * H * outW * inner);
  for (let row = 0; row < outer * H; row++) {
    const inRow = row * W * inner;
    const outRow = row * outW * inner;
    for (let x = 0; x < outW; x++) {
      const start = c.start[x]!;
      const count = c.count[x]!;
      for (let ch = 0; ch < inner; ch++) {
        let sum = ONE / 2;
        for (let j = 0; j < count; j++) sum += src[inRow + (start + j) * inner + ch]! * c.weight[x * c.k + j]!;
        out[outRow + x * inner + ch] = clip8(sum);
      }
    }
  }
  return out;
}

/** Resamples the H axis of 8-bit [outer, H, W, inner] pixels (rows of `rowLength` bytes). */
function vertical(src: Uint8Array, outer: number, H: number, rowLength: number, outH: number, c: Coefficients): Uint8Array {
  const out = new Uint8Array(outer * outH * rowLength);
  const sum = new Float64Array(rowLength);
  for (let o = 0; o < outer; o++) {
    for (let y = 0; y < outH; y++) {
      sum.fill(ONE / 2);
      for (let j = 0; j < c.count[y]!; j++) {
        const w = c.weight[y * c.k + j]!;
        const from = (o * H + c.start[y]! + j) * rowLength;
        for (let e = 0; e < rowLength; e++) sum[e]! += src[from + e]! * w;
      }
      const to = (o * outH + y) * rowLength;
      for (let e = 0; e < rowLength; e++) out[to + e] = clip8(sum[e]!);
    }
  }
  return out;
}

/** numpy's np.clip(255 * x, 0, 255).astype(uint8) on a float32 value (NaN becomes 0). */
function toByte(v: number): number {
  const scaled = Math.fround(255 * v);
  return scaled > 0 ? Math.trunc(Math.min(scaled, 255)) : 0;
}

/** Pillow's MULDIV255: a * b / 255, rounded, in integers. */
function mulDiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

/** Premultiplies (or, `undo`, divides back) the colour channels of each pixel by its last channel, as Pillow's RGBa. */
function premultiply(bytes: Uint8Array, pixels: number, at: (p: number, c: number) => number, channels: number, undo: boolean): void {
  for (let p = 0; p < pixels; p++) {
    const alpha = bytes[at(p, channels - 1)]!;
    if (undo && (alpha === 255 || alpha === 0)) continue;
    for (let c = 0; c < channels - 1; c++) {
      const i = at(p, c);
      bytes[i] = undo ? Math.min(255, Math.trunc((255 * bytes[i]!) / alpha)) : mulDiv255(bytes[i]!, alpha);
    }
  }
}

/**
 * `t` (values in 0..1) resized to `width` x `height` as ComfyUI's lanczos does through Pillow: the result is on
 * 1/255 steps. `layout` says where the channels are ('nhwc' for an IMAGE). A new tensor is returned.
 */
export function lanczos(t: Tensor, width: number, height: number, layout: Layout = 'nchw'): Tensor {
  const grid = gridOf(t, layout, 'lanczos');
  checkSize(width, height, 'lanczos');
  const { outer, inner } = planesOf(grid);
  const { height: H, width: W, channels } = grid;
  let bytes: Uint8Array = new Uint8Array(t.data.length);
  for (let i = 0; i < bytes.length; i++) bytes[i] = toByte(t.data[i]!);
  // Pillow returns a copy when the size does not change, without the premultiplied round trip.
  const resized = width !== W || height !== H;
  const withAlpha = resized && (channels === 4 || channels === 2);
  const pixelAt = (g: typeof grid) => {
    const { at } = indexer(g);
    return (p: number, c: number) => at(Math.floor(p / (g.height * g.width)), c, Math.floor(p / g.width) % g.height, p % g.width);
  };
  if (withAlpha) premultiply(bytes, grid.batch * H * W, pixelAt(grid), channels, false);
  if (width !== W) bytes = horizontal(bytes, outer, H, W, inner, width, coefficients(W, width));
  if (height !== H) bytes = vertical(bytes, outer, H, width * inner, height, coefficients(H, height));
  const outGrid = { ...grid, height, width };
  if (withAlpha) premultiply(bytes, grid.batch * height * width, pixelAt(outGrid), channels, true);
  const data = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) data[i] = bytes[i]! / 255;
  return { data, shape: shapeOf(grid, height, width) };
}
