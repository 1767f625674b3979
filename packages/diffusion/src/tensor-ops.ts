/**
 * Tensor helpers for node authors porting ComfyUI nodes, which do this work with torch: element-wise ops with
 * numpy / torch broadcasting, stack, cat and slice along any axis, mean over an axis, repeat (torch's
 * `Tensor.repeat`), and resizing an IMAGE, MASK or LATENT (torch's interpolate: bilinear with
 * align_corners=False, or nearest). IMAGE is [B, H, W, C], MASK [B, H, W], LATENT samples [B, C, H, W].
 *
 * Every function returns a new tensor (inputs are never written). Shapes are checked and a mismatch is a
 * RangeError naming both shapes. The sampling loop's same-shape, in-place helpers are in tensor.ts.
 */
import { resizeBilinear } from './inpaint.ts';
import { sizeOf, type Tensor } from './tensor.ts';

/** Row-major strides of a shape. */
function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) strides[i] = strides[i + 1]! * shape[i + 1]!;
  return strides;
}

/** An axis given as in torch (negative counts from the end), checked against a rank. */
function axisOf(axis: number, rank: number, what: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new RangeError(`${what}: axis ${axis} is outside a tensor of rank ${rank}`);
  return a;
}

/** The shape two shapes broadcast to (numpy's rule: aligned at the end, each dim equal or 1). */
export function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new RangeError(`shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast (dimension ${i}: ${x} vs ${y})`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** `t` broadcast to `shape` (a copy). */
export function broadcastTo(t: Tensor, shape: readonly number[]): Tensor {
  const target = broadcastShape(t.shape, shape);
  if (target.join() !== shape.join()) throw new RangeError(`[${t.shape.join(', ')}] cannot be broadcast to [${shape.join(', ')}]`);
  return elementwise(t, { data: new Float32Array(1), shape: [] }, (x) => x, shape);
}

/**
 * `fn(a, b)` element by element, the two broadcast against each other (a scalar number works as either side).
 * `into` forces the result's shape (used by broadcastTo).
 */
export function elementwise(a: Tensor | number, b: Tensor | number, fn: (x: number, y: number) => number, into?: readonly number[]): Tensor {
  const ta = typeof a === 'number' ? { data: Float32Array.of(a), shape: [] } : a;
  const tb = typeof b === 'number' ? { data: Float32Array.of(b), shape: [] } : b;
  const shape = into ? [...into] : broadcastShape(ta.shape, tb.shape);
  const n = sizeOf(shape);
  const out = new Float32Array(n);
  const x = ta.data;
  const y = tb.data;
  if (sameDims(ta.shape, shape) && sameDims(tb.shape, shape)) {
    for (let i = 0; i < n; i++) out[i] = fn(x[i]!, y[i]!);
    return { data: out, shape };
  }
  // Broadcast: each side's stride is 0 along the dims it repeats.
  const sa = broadcastStrides(ta.shape, shape);
  const sb = broadcastStrides(tb.shape, shape);
  const index = new Array<number>(shape.length).fill(0);
  let ia = 0;
  let ib = 0;
  for (let i = 0; i < n; i++) {
    out[i] = fn(x[ia]!, y[ib]!);
    for (let d = shape.length - 1; d >= 0; d--) {
      index[d]!++;
      ia += sa[d]!;
      ib += sb[d]!;
      if (index[d]! < shape[d]!) break;
      ia -= sa[d]! * shape[d]!;
      ib -= sb[d]! * shape[d]!;
      index[d] = 0;
    }
  }
  return { data: out, shape };
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function broadcastStrides(shape: readonly number[], target: readonly number[]): number[] {
  const own = stridesOf(shape);
  return target.map((_, i) => {
    const d = i - (target.length - shape.length);
    return d < 0 || shape[d] === 1 ? 0 : own[d]!;
  });
}

export const plus = (a: Tensor | number, b: Tensor | number) => elementwise(a, b, (x, y) => x + y);
export const minus = (a: Tensor | number, b: Tensor | number) => elementwise(a, b, (x, y) => x - y);
export const times = (a: Tensor | number, b: Tensor | number) => elementwise(a, b, (x, y) => x * y);
export const dividedBy = (a: Tensor | number, b: Tensor | number) => elementwise(a, b, (x, y) => x / y);
export const maximum = (a: Tensor | number, b: Tensor | number) => elementwise(a, b, Math.max);
export const minimum = (a: Tensor | number, b: Tensor | number) => elementwise(a, b, Math.min);

/** `fn` on every element. */
export function map(t: Tensor, fn: (x: number) => number): Tensor {
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < out.length; i++) out[i] = fn(t.data[i]!);
  return { data: out, shape: [...t.shape] };
}

/** torch.cat: the tensors joined along `axis`; every other dimension must agree. */
export function cat(tensors: readonly Tensor[], axis = 0): Tensor {
  const first = tensors[0];
  if (!first) throw new RangeError('cat: no tensors given');
  const a = axisOf(axis, first.shape.length, 'cat');
  for (const t of tensors) {
    if (t.shape.length !== first.shape.length || t.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new RangeError(`cat along axis ${axis}: [${t.shape.join(', ')}] does not match [${first.shape.join(', ')}] outside that axis`);
    }
  }
  const shape = [...first.shape];
  shape[a] = tensors.reduce((n, t) => n + t.shape[a]!, 0);
  const outer = first.shape.slice(0, a).reduce((p, d) => p * d, 1);
  const out = new Float32Array(sizeOf(shape));
  let at = 0;
  for (let o = 0; o < outer; o++) {
    for (const t of tensors) {
      const block = t.data.length / outer;
      out.set(t.data.subarray(o * block, (o + 1) * block), at);
      at += block;
    }
  }
  return { data: out, shape };
}

/** torch.stack: equal-shaped tensors along a new axis. */
export function stack(tensors: readonly Tensor[], axis = 0): Tensor {
  const first = tensors[0];
  if (!first) throw new RangeError('stack: no tensors given');
  const a = axisOf(axis, first.shape.length + 1, 'stack');
  for (const t of tensors) {
    if (!sameDims(t.shape, first.shape)) throw new RangeError(`stack: [${t.shape.join(', ')}] differs from [${first.shape.join(', ')}]`);
  }
  const withAxis = (t: Tensor) => ({ data: t.data, shape: [...t.shape.slice(0, a), 1, ...t.shape.slice(a)] });
  return cat(tensors.map(withAxis), a);
}

/** `t[..., start:end:step, ...]` along `axis` (Python's slice rules: negative indices count from the end). */
export function slice(t: Tensor, axis: number, start = 0, end?: number, step = 1): Tensor {
  const a = axisOf(axis, t.shape.length, 'slice');
  if (!Number.isInteger(step) || step <= 0) throw new RangeError(`slice: step ${step} must be a positive whole number`);
  const size = t.shape[a]!;
  const clampIndex = (i: number) => Math.min(size, Math.max(0, i < 0 ? i + size : i));
  const from = clampIndex(start);
  const to = clampIndex(end ?? size);
  const picked: number[] = [];
  for (let i = from; i < to; i += step) picked.push(i);
  const outer = t.shape.slice(0, a).reduce((p, d) => p * d, 1);
  const inner = t.shape.slice(a + 1).reduce((p, d) => p * d, 1);
  const out = new Float32Array(outer * picked.length * inner);
  let at = 0;
  for (let o = 0; o < outer; o++) {
    for (const i of picked) {
      const src = (o * size + i) * inner;
      out.set(t.data.subarray(src, src + inner), at);
      at += inner;
    }
  }
  const shape = [...t.shape];
  shape[a] = picked.length;
  return { data: out, shape };
}

/** The mean over `axis` (torch.mean(dim, keepdim)). */
export function mean(t: Tensor, axis: number, keepDims = false): Tensor {
  const a = axisOf(axis, t.shape.length, 'mean');
  const size = t.shape[a]!;
  const outer = t.shape.slice(0, a).reduce((p, d) => p * d, 1);
  const inner = t.shape.slice(a + 1).reduce((p, d) => p * d, 1);
  const out = new Float32Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < size; i++) {
      const src = (o * size + i) * inner;
      for (let k = 0; k < inner; k++) out[o * inner + k]! += t.data[src + k]!;
    }
  }
  for (let k = 0; k < out.length; k++) out[k]! /= size;
  const shape = keepDims ? t.shape.map((d, i) => (i === a ? 1 : d)) : t.shape.filter((_, i) => i !== a);
  return { data: out, shape };
}

/** torch's `Tensor.repeat(*counts)`: the tensor tiled `counts[i]` times along dim i (counts may add leading dims). */
export function repeat(t: Tensor, counts: readonly number[]): Tensor {
  if (counts.length < t.shape.length) throw new RangeError(`repeat: ${counts.length} counts for a tensor of rank ${t.shape.length}`);
  let result: Tensor = { data: t.data, shape: [...new Array<number>(counts.length - t.shape.length).fill(1), ...t.shape] };
  counts.forEach((count, axis) => {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`repeat: count ${count} must be a whole number`);
    if (count !== 1) result = cat(new Array<Tensor>(count).fill(result), axis);
  });
  return result.data === t.data ? { data: t.data.slice(), shape: result.shape } : result;
}

/** Moves axes (torch.permute): `order[i]` is the input axis that becomes axis i. */
export function permute(t: Tensor, order: readonly number[]): Tensor {
  const rank = t.shape.length;
  if (order.length !== rank || new Set(order).size !== rank || order.some((o) => o < 0 || o >= rank)) {
    throw new RangeError(`permute: [${order.join(', ')}] is not an order of ${rank} axes`);
  }
  const shape = order.map((o) => t.shape[o]!);
  const inStrides = stridesOf(t.shape);
  const strides = order.map((o) => inStrides[o]!);
  const n = t.data.length;
  const out = new Float32Array(n);
  const index = new Array<number>(rank).fill(0);
  let src = 0;
  for (let i = 0; i < n; i++) {
    out[i] = t.data[src]!;
    for (let d = rank - 1; d >= 0; d--) {
      index[d]!++;
      src += strides[d]!;
      if (index[d]! < shape[d]!) break;
      src -= strides[d]! * shape[d]!;
      index[d] = 0;
    }
  }
  return { data: out, shape };
}

export type ResizeMode = 'bilinear' | 'nearest';

/** torch's interpolate on [N, C, H, W] (align_corners=False for bilinear; nearest as torch's 'nearest'). */
function resizeNchw(t: Tensor, height: number, width: number, mode: ResizeMode): Tensor {
  if (!Number.isInteger(height) || !Number.isInteger(width) || height <= 0 || width <= 0) throw new RangeError(`resize: ${width}x${height} is not a size`);
  if (mode === 'bilinear') return resizeBilinear(t, height, width);
  const [n, c, H, W] = t.shape as [number, number, number, number];
  const out = new Float32Array(n * c * height * width);
  // torch 'nearest': source index floor(o * in / out).
  const rows = Array.from({ length: height }, (_, y) => Math.min(H - 1, Math.floor((y * H) / height)));
  const cols = Array.from({ length: width }, (_, x) => Math.min(W - 1, Math.floor((x * W) / width)));
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out[(p * height + y) * width + x] = t.data[(p * H + rows[y]!) * W + cols[x]!]!;
  }
  return { data: out, shape: [n, c, height, width] };
}

/** An IMAGE [B, H, W, C] resized to `width` x `height`. */
export function resizeImage(image: Tensor, width: number, height: number, mode: ResizeMode = 'bilinear'): Tensor {
  if (image.shape.length !== 4) throw new RangeError(`resizeImage: an IMAGE is [batch, height, width, channels]; got [${image.shape.join(', ')}]`);
  return permute(resizeNchw(permute(image, [0, 3, 1, 2]), height, width, mode), [0, 2, 3, 1]);
}

/** A MASK [B, H, W] (or [H, W]) resized to `width` x `height`. */
export function resizeMask(mask: Tensor, width: number, height: number, mode: ResizeMode = 'bilinear'): Tensor {
  const batched = mask.shape.length === 2 ? { data: mask.data, shape: [1, ...mask.shape] } : mask;
  if (batched.shape.length !== 3) throw new RangeError(`resizeMask: a MASK is [batch, height, width]; got [${mask.shape.join(', ')}]`);
  const [b] = batched.shape as [number];
  const out = resizeNchw({ data: batched.data, shape: [b, 1, batched.shape[1]!, batched.shape[2]!] }, height, width, mode);
  return { data: out.data, shape: mask.shape.length === 2 ? [height, width] : [b, height, width] };
}

/** LATENT samples [B, C, h, w] resized to `width` x `height` latent cells. */
export function resizeLatent(samples: Tensor, width: number, height: number, mode: ResizeMode = 'bilinear'): Tensor {
  if (samples.shape.length !== 4) throw new RangeError(`resizeLatent: LATENT samples are [batch, channels, height, width]; got [${samples.shape.join(', ')}]`);
  return resizeNchw(samples, height, width, mode);
}
