/**
 * torch.nn.functional.interpolate(x, size=(h, w), mode=m) with the defaults ComfyUI calls it with
 * (comfy.utils.common_upscale): 'nearest-exact', 'bilinear' and 'bicubic' with align_corners=False and no
 * antialias, and 'area' (adaptive average pooling).
 *
 * All four are separable: each output pixel is a weighted sum over a rectangle of input pixels whose weights are
 * a product of a row weight and a column weight. So the tensor is resized along its width, then along its
 * height, each pass a table of (input index, weight) "taps" per output index. The source positions and weights
 * are computed with float32 arithmetic where PyTorch's CPU kernels use it (the scale in/out, the source
 * coordinate), because nearest-exact takes the floor of that coordinate: a float64 coordinate would pick another
 * pixel where the float32 one lands exactly on an integer. The sums themselves are accumulated in float64.
 */
import type { Tensor } from '../tensor.ts';
import { checkSize, gridOf, planesOf, shapeOf, type Layout } from './grid.ts';

export type InterpolateMode = 'nearest-exact' | 'bilinear' | 'area' | 'bicubic';

export const INTERPOLATE_MODES: readonly InterpolateMode[] = ['nearest-exact', 'bilinear', 'area', 'bicubic'];

/** For each output index, `k` input indices and their weights (unused taps have weight 0). */
interface Taps {
  k: number;
  index: Int32Array;
  weight: Float64Array;
}

const f32 = Math.fround;

/** torch's area_pixel_compute_scale for align_corners=False: (float)in / out. */
const scaleOf = (inSize: number, outSize: number): number => f32(inSize / outSize);

/**
 * torch's area_pixel_compute_source_index (align_corners=False): scale * (o + 0.5) - 0.5, evaluated in double
 * and stored as float; clamped at 0 except for cubic.
 */
function sourceIndex(scale: number, o: number, cubic: boolean): number {
  const real = f32(scale * (o + 0.5) - 0.5);
  return !cubic && real < 0 ? 0 : real;
}

function newTaps(outSize: number, k: number): Taps {
  return { k, index: new Int32Array(outSize * k), weight: new Float64Array(outSize * k) };
}

/** nearest-exact: input index floor((o + 0.5) * scale), the product rounded to float first (torch's floorf). */
function nearestExactTaps(inSize: number, outSize: number): Taps {
  const taps = newTaps(outSize, 1);
  const scale = scaleOf(inSize, outSize);
  for (let o = 0; o < outSize; o++) {
    taps.index[o] = Math.min(Math.floor(f32((o + 0.5) * scale)), inSize - 1);
    taps.weight[o] = 1;
  }
  return taps;
}

/** bilinear, align_corners=False: the two neighbours of the (clamped) source coordinate. */
function bilinearTaps(inSize: number, outSize: number): Taps {
  const taps = newTaps(outSize, 2);
  const scale = scaleOf(inSize, outSize);
  for (let o = 0; o < outSize; o++) {
    const real = sourceIndex(scale, o, false);
    const i0 = Math.trunc(real);
    const lambda1 = Math.min(Math.max(real - i0, 0), 1);
    taps.index[2 * o] = i0;
    taps.index[2 * o + 1] = i0 < inSize - 1 ? i0 + 1 : i0;
    taps.weight[2 * o] = f32(1 - lambda1);
    taps.weight[2 * o + 1] = lambda1;
  }
  return taps;
}

/** Keys' cubic convolution with A = -0.75 (torch's bicubic), for |x| <= 1 and 1 < |x| < 2. */
const A = -0.75;
const cubicNear = (x: number): number => ((A + 2) * x - (A + 3)) * x * x + 1;
const cubicFar = (x: number): number => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;

/** bicubic, align_corners=False: four taps around floor(source), indices clamped to the edge (not clamped coordinate). */
function bicubicTaps(inSize: number, outSize: number): Taps {
  const taps = newTaps(outSize, 4);
  const scale = scaleOf(inSize, outSize);
  for (let o = 0; o < outSize; o++) {
    const real = sourceIndex(scale, o, true);
    const i0 = Math.floor(real);
    const t = f32(real - i0);
    const weights = [cubicFar(t + 1), cubicNear(t), cubicNear(1 - t), cubicFar(2 - t)];
    for (let j = 0; j < 4; j++) {
      taps.index[4 * o + j] = Math.max(Math.min(i0 - 1 + j, inSize - 1), 0);
      taps.weight[4 * o + j] = f32(weights[j]!);
    }
  }
  return taps;
}

/** area (adaptive average pooling): the mean of input indices floor(o * in / out) .. ceil((o + 1) * in / out) - 1. */
function areaTaps(inSize: number, outSize: number): Taps {
  const start = (o: number) => Math.floor((o * inSize) / outSize);
  const end = (o: number) => Math.ceil(((o + 1) * inSize) / outSize);
  let k = 1;
  for (let o = 0; o < outSize; o++) k = Math.max(k, end(o) - start(o));
  const taps = newTaps(outSize, k);
  for (let o = 0; o < outSize; o++) {
    const from = start(o);
    const count = end(o) - from;
    for (let j = 0; j < k; j++) {
      taps.index[k * o + j] = Math.min(from + j, inSize - 1);
      taps.weight[k * o + j] = j < count ? 1 / count : 0;
    }
  }
  return taps;
}

function tapsFor(mode: InterpolateMode, inSize: number, outSize: number): Taps {
  switch (mode) {
    case 'nearest-exact':
      return nearestExactTaps(inSize, outSize);
    case 'bilinear':
      return bilinearTaps(inSize, outSize);
    case 'bicubic':
      return bicubicTaps(inSize, outSize);
    case 'area':
      return areaTaps(inSize, outSize);
    default:
      throw new RangeError(`interpolate: unknown mode "${String(mode)}"; expected one of ${INTERPOLATE_MODES.join(', ')}`);
  }
}

/** Resizes the W axis of an [outer, H, W, inner] view. */
function alongWidth(src: Float32Array, outer: number, H: number, W: number, inner: number, outW: number, taps: Taps): Float32Array {
  const out = new Float32Array(outer * H * outW * inner);
  const { k, index, weight } = taps;
  for (let row = 0; row < outer * H; row++) {
    const inRow = row * W * inner;
    const outRow = row * outW * inner;
    for (let x = 0; x < outW; x++) {
      for (let c = 0; c < inner; c++) {
        let sum = 0;
        for (let j = 0; j < k; j++) sum += weight[x * k + j]! * src[inRow + index[x * k + j]! * inner + c]!;
        out[outRow + x * inner + c] = sum;
      }
    }
  }
  return out;
}

/** Resizes the H axis of an [outer, H, W, inner] view: whole rows are weighted and added. */
function alongHeight(src: Float32Array, outer: number, H: number, rowLength: number, outH: number, taps: Taps): Float32Array {
  const out = new Float32Array(outer * outH * rowLength);
  const sum = new Float64Array(rowLength);
  const { k, index, weight } = taps;
  for (let o = 0; o < outer; o++) {
    for (let y = 0; y < outH; y++) {
      sum.fill(0);
      for (let j = 0; j < k; j++) {
        const w = weight[y * k + j]!;
        if (w === 0) continue;
        const from = (o * H + index[y * k + j]!) * rowLength;
        for (let e = 0; e < rowLength; e++) sum[e]! += w * src[from + e]!;
      }
      out.set(sum, (o * outH + y) * rowLength);
    }
  }
  return out;
}

/**
 * `t` resized to `width` x `height` as torch's interpolate(mode) does. `layout` says where the channels are
 * ('nchw' for latents and masks, 'nhwc' for an IMAGE); the result has the same layout. A new tensor is returned.
 */
export function interpolate(t: Tensor, width: number, height: number, mode: InterpolateMode, layout: Layout = 'nchw'): Tensor {
  const grid = gridOf(t, layout, `interpolate (${mode})`);
  checkSize(width, height, `interpolate (${mode})`);
  const { outer, inner } = planesOf(grid);
  const { height: H, width: W } = grid;
  // Every mode is the identity along an axis whose size does not change, so that pass is skipped.
  let data = t.data;
  if (width !== W) data = alongWidth(data, outer, H, W, inner, width, tapsFor(mode, W, width));
  if (height !== H) data = alongHeight(data, outer, H, width * inner, height, tapsFor(mode, H, height));
  return { data: data === t.data ? t.data.slice() : data, shape: shapeOf(grid, height, width) };
}
