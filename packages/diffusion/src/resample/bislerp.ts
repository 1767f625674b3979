/**
 * ComfyUI's "bislerp" latent upscale (comfy.utils.bislerp): bilinear resizing in which two neighbouring latent
 * cells are blended by spherical interpolation of their channel vectors rather than a straight line, so the
 * blend keeps the vectors' length (a straight blend of two different latent vectors shrinks towards zero,
 * which a sampler sees as a flat, washed-out region).
 *
 * Like ComfyUI it works in two passes, along the width then along the height. For each output index it takes
 * the two input cells and the ratio that torch's bilinear interpolation of the coordinate ramp 0..n-1 gives
 * (those coordinates are computed with float32 arithmetic as torch does, since they are truncated to indices).
 * The slerp of two vectors b1, b2 at ratio r is
 *   (sin((1 - r) w) u1 + sin(r w) u2) / sin(w) * (|b1| (1 - r) + |b2| r),  u = b / |b|, w = acos(u1 . u2),
 * with b1 itself when the directions agree (u1 . u2 > 1 - 1e-5) and the straight blend when they are opposite
 * (u1 . u2 < 1e-5 - 1). A zero vector has direction 0.
 */
import type { Tensor } from '../tensor.ts';
import { checkSize, gridOf, indexer, shapeOf, type Grid, type Layout } from './grid.ts';

const f32 = Math.fround;
/** The thresholds as torch compares them with a float32 tensor. */
const SAME = f32(1 - 1e-5);
const OPPOSITE = f32(1e-5 - 1);

interface Pairs {
  first: Int32Array;
  second: Int32Array;
  ratio: Float32Array;
}

/**
 * The value at output `o` of torch's bilinear interpolation (align_corners=False, float32) of the ramp
 * `value(0..inSize-1)` to `outSize` points.
 */
function interpolatedRamp(value: (i: number) => number, inSize: number, outSize: number, o: number): number {
  if (inSize === outSize) return value(o);
  const scale = f32(inSize / outSize);
  const real = Math.max(0, f32(scale * (o + 0.5) - 0.5));
  const i0 = Math.trunc(real);
  const i1 = i0 < inSize - 1 ? i0 + 1 : i0;
  const lambda1 = Math.min(Math.max(real - i0, 0), 1);
  const lambda0 = f32(1 - lambda1);
  return f32(f32(value(i0) * lambda0) + f32(value(i1) * lambda1));
}

/** ComfyUI's generate_bilinear_data: the two input cells each output cell blends, and the ratio between them. */
function pairsFor(inSize: number, outSize: number): Pairs {
  const pairs = { first: new Int32Array(outSize), second: new Int32Array(outSize), ratio: new Float32Array(outSize) };
  // The second ramp is 1..n with its last value lowered to n - 1, so the last cell pairs with itself.
  const next = (i: number) => (i === inSize - 1 ? inSize - 1 : i + 1);
  for (let o = 0; o < outSize; o++) {
    const c1 = interpolatedRamp((i) => i, inSize, outSize, o);
    pairs.first[o] = Math.trunc(c1);
    pairs.ratio[o] = c1 - Math.floor(c1);
    pairs.second[o] = Math.trunc(interpolatedRamp(next, inSize, outSize, o));
  }
  return pairs;
}

/**
 * Slerps the channel vectors at offsets a and b (channel stride `cs`) of `src` at ratio r into `out` at `o`.
 * Computed in float64: where the two directions are close, acos amplifies torch's float32 rounding, so its
 * result differs from the exact one by a few 1e-6 there; this one is the exact one.
 */
function slerpInto(src: Float32Array, a: number, b: number, cs: number, channels: number, r: number, out: Float32Array, o: number, ocs: number): void {
  let n1 = 0;
  let n2 = 0;
  for (let c = 0; c < channels; c++) {
    n1 += src[a + c * cs]! ** 2;
    n2 += src[b + c * cs]! ** 2;
  }
  n1 = Math.sqrt(n1);
  n2 = Math.sqrt(n2);
  const s1 = n1 === 0 ? 0 : 1 / n1;
  const s2 = n2 === 0 ? 0 : 1 / n2;
  let dot = 0;
  for (let c = 0; c < channels; c++) dot += src[a + c * cs]! * s1 * src[b + c * cs]! * s2;
  const q = f32(1 - r);
  if (dot > SAME) {
    for (let c = 0; c < channels; c++) out[o + c * ocs] = src[a + c * cs]!;
    return;
  }
  if (dot < OPPOSITE) {
    for (let c = 0; c < channels; c++) out[o + c * ocs] = src[a + c * cs]! * q + src[b + c * cs]! * r;
    return;
  }
  const omega = Math.acos(dot);
  const so = Math.sin(omega);
  const length = n1 * q + n2 * r;
  const w1 = (Math.sin(q * omega) / so) * s1 * length;
  const w2 = (Math.sin(r * omega) / so) * s2 * length;
  for (let c = 0; c < channels; c++) out[o + c * ocs] = w1 * src[a + c * cs]! + w2 * src[b + c * cs]!;
}

/** One pass: resizes the width (axis 'x') or the height (axis 'y') of `src` laid out as `grid`. */
function pass(src: Float32Array, grid: Grid, axis: 'x' | 'y', outSize: number): { data: Float32Array; grid: Grid } {
  const outGrid: Grid = axis === 'x' ? { ...grid, width: outSize } : { ...grid, height: outSize };
  const data = new Float32Array(src.length / (axis === 'x' ? grid.width : grid.height) * outSize);
  const from = indexer(grid);
  const to = indexer(outGrid);
  const pairs = pairsFor(axis === 'x' ? grid.width : grid.height, outSize);
  for (let b = 0; b < grid.batch; b++) {
    for (let y = 0; y < outGrid.height; y++) {
      for (let x = 0; x < outGrid.width; x++) {
        const o = axis === 'x' ? x : y;
        const p1 = axis === 'x' ? from.at(b, 0, y, pairs.first[o]!) : from.at(b, 0, pairs.first[o]!, x);
        const p2 = axis === 'x' ? from.at(b, 0, y, pairs.second[o]!) : from.at(b, 0, pairs.second[o]!, x);
        slerpInto(src, p1, p2, from.channelStride, grid.channels, pairs.ratio[o]!, data, to.at(b, 0, y, x), to.channelStride);
      }
    }
  }
  return { data, grid: outGrid };
}

/**
 * `t` resized to `width` x `height` by ComfyUI's bislerp. The channel vectors are slerped, so `layout` must say
 * where the channels are ('nchw' for a LATENT's samples). A new tensor is returned.
 */
export function bislerp(t: Tensor, width: number, height: number, layout: Layout = 'nchw'): Tensor {
  const grid = gridOf(t, layout, 'bislerp');
  checkSize(width, height, 'bislerp');
  // ComfyUI runs both passes even when a size does not change (a pass at ratio 0 is then b1 itself, up to rounding).
  const wide = pass(t.data, grid, 'x', width);
  const done = pass(wide.data, wide.grid, 'y', height);
  return { data: done.data, shape: shapeOf(grid, height, width) };
}
