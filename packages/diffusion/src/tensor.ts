/**
 * A minimal float32 tensor: a flat, row-major (C-order) Float32Array and its shape.
 *
 * This is all the sampling loop needs (latents are [B, C, H, W]; images are [B, H, W, C]), so there are no
 * strides and no broadcasting here. Helpers that produce a tensor take an optional `out`:
 * pass one of the inputs to work in place, another tensor of the same shape to reuse its buffer, or nothing
 * to allocate a new one. Loops are plain indexed loops over typed arrays (no per-element closures), which V8
 * compiles to tight code on the 16k-1M element arrays diffusion works with.
 */
export interface Tensor {
  data: Float32Array;
  shape: number[];
}

/** Number of elements of a shape; throws on a negative or non-integer dimension. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`Invalid tensor shape [${shape.join(', ')}]: dimension ${d} is not a non-negative integer`);
    n *= d;
  }
  return n;
}

/** Wraps existing data (no copy). The data length must match the shape. */
export function tensor(data: Float32Array | readonly number[], shape: readonly number[]): Tensor {
  const arr = data instanceof Float32Array ? data : Float32Array.from(data);
  const n = sizeOf(shape);
  if (arr.length !== n) throw new RangeError(`Tensor data has ${arr.length} elements but shape [${shape.join(', ')}] needs ${n}`);
  return { data: arr, shape: [...shape] };
}

export function zeros(shape: readonly number[]): Tensor {
  return { data: new Float32Array(sizeOf(shape)), shape: [...shape] };
}

export function full(shape: readonly number[], value: number): Tensor {
  return { data: new Float32Array(sizeOf(shape)).fill(value), shape: [...shape] };
}

export function clone(t: Tensor): Tensor {
  return { data: t.data.slice(), shape: [...t.shape] };
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function assertSameShape(a: Tensor, b: Tensor, what = 'tensors'): void {
  if (!sameShape(a.shape, b.shape) || a.data.length !== b.data.length) {
    throw new RangeError(`Shape mismatch between ${what}: [${a.shape.join(', ')}] vs [${b.shape.join(', ')}]`);
  }
}

function target(like: Tensor, out: Tensor | undefined): Tensor {
  if (out === undefined) return zeros(like.shape);
  assertSameShape(like, out, 'input and output');
  return out;
}

/** out = a + b */
export function add(a: Tensor, b: Tensor, out?: Tensor): Tensor {
  assertSameShape(a, b);
  const o = target(a, out);
  const x = a.data, y = b.data, r = o.data;
  for (let i = 0; i < r.length; i++) r[i] = x[i]! + y[i]!;
  return o;
}

/** out = a - b */
export function sub(a: Tensor, b: Tensor, out?: Tensor): Tensor {
  assertSameShape(a, b);
  const o = target(a, out);
  const x = a.data, y = b.data, r = o.data;
  for (let i = 0; i < r.length; i++) r[i] = x[i]! - y[i]!;
  return o;
}

/** out = a * b (elementwise) */
export function mul(a: Tensor, b: Tensor, out?: Tensor): Tensor {
  assertSameShape(a, b);
  const o = target(a, out);
  const x = a.data, y = b.data, r = o.data;
  for (let i = 0; i < r.length; i++) r[i] = x[i]! * y[i]!;
  return o;
}

/** out = a * s */
export function scale(a: Tensor, s: number, out?: Tensor): Tensor {
  const o = target(a, out);
  const x = a.data, r = o.data;
  for (let i = 0; i < r.length; i++) r[i] = x[i]! * s;
  return o;
}

/** out = a + s * b (BLAS axpy) */
export function addScaled(a: Tensor, b: Tensor, s: number, out?: Tensor): Tensor {
  assertSameShape(a, b);
  const o = target(a, out);
  const x = a.data, y = b.data, r = o.data;
  for (let i = 0; i < r.length; i++) r[i] = x[i]! + s * y[i]!;
  return o;
}

/**
 * out = ca * a + cb * b: the one operation every scheduler step is made of. The coefficients are combined in
 * float64 and each element is rounded to float32 once.
 */
export function axpby(ca: number, a: Tensor, cb: number, b: Tensor, out?: Tensor): Tensor {
  assertSameShape(a, b);
  const o = target(a, out);
  const x = a.data, y = b.data, r = o.data;
  for (let i = 0; i < r.length; i++) r[i] = ca * x[i]! + cb * y[i]!;
  return o;
}

/** out = ca * a + cb * b + cc * c */
export function axpbypcz(ca: number, a: Tensor, cb: number, b: Tensor, cc: number, c: Tensor, out?: Tensor): Tensor {
  assertSameShape(a, b);
  assertSameShape(a, c);
  const o = target(a, out);
  const x = a.data, y = b.data, z = c.data, r = o.data;
  for (let i = 0; i < r.length; i++) r[i] = ca * x[i]! + cb * y[i]! + cc * z[i]!;
  return o;
}

/** Classifier-free guidance: out = uncond + scale * (cond - uncond). */
export function guidance(uncond: Tensor, cond: Tensor, guidanceScale: number, out?: Tensor): Tensor {
  return axpby(1 - guidanceScale, uncond, guidanceScale, cond, out);
}

/** Clamps every element to [lo, hi]. */
export function clamp(a: Tensor, lo: number, hi: number, out?: Tensor): Tensor {
  const o = target(a, out);
  const x = a.data, r = o.data;
  for (let i = 0; i < r.length; i++) {
    const v = x[i]!;
    r[i] = v < lo ? lo : v > hi ? hi : v;
  }
  return o;
}

/** Largest |a - b| over all elements (for tests and tolerances). */
export function maxAbsDiff(a: Tensor, b: Tensor): number {
  assertSameShape(a, b);
  let m = 0;
  const x = a.data, y = b.data;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i]! - y[i]!);
    if (d > m || Number.isNaN(d)) m = d;
  }
  return m;
}

function batchCheck(t: Tensor, what: string): number {
  const b = t.shape[0];
  if (t.shape.length === 0 || b === undefined) throw new RangeError(`${what}: a 0-d tensor has no batch dimension`);
  return b;
}

/** Concatenates along dim 0 (the batch). All tensors must agree on the other dimensions. */
export function concatBatch(tensors: readonly Tensor[]): Tensor {
  const first = tensors[0];
  if (!first) throw new RangeError('concatBatch: no tensors given');
  batchCheck(first, 'concatBatch');
  const rest = first.shape.slice(1);
  let batch = 0;
  let total = 0;
  for (const t of tensors) {
    batch += batchCheck(t, 'concatBatch');
    if (!sameShape(t.shape.slice(1), rest)) {
      throw new RangeError(`concatBatch: shape [${t.shape.join(', ')}] does not match [*, ${rest.join(', ')}]`);
    }
    total += t.data.length;
  }
  const data = new Float32Array(total);
  let offset = 0;
  for (const t of tensors) {
    data.set(t.data, offset);
    offset += t.data.length;
  }
  return { data, shape: [batch, ...rest] };
}

/**
 * Splits along dim 0 into `parts` equal pieces (a number) or pieces of the given batch sizes (an array).
 * The pieces are views on the input's buffer (no copy): clone them before writing if the input is kept.
 */
export function splitBatch(t: Tensor, parts: number | readonly number[]): Tensor[] {
  const batch = batchCheck(t, 'splitBatch');
  let sizes: number[];
  if (typeof parts === 'number') {
    if (!Number.isInteger(parts) || parts <= 0 || batch % parts !== 0) {
      throw new RangeError(`splitBatch: cannot split a batch of ${batch} into ${parts} equal parts`);
    }
    sizes = new Array<number>(parts).fill(batch / parts);
  } else {
    sizes = [...parts];
    const sum = sizes.reduce((s, v) => s + v, 0);
    if (sum !== batch || sizes.some((v) => !Number.isInteger(v) || v < 0)) {
      throw new RangeError(`splitBatch: sizes [${sizes.join(', ')}] do not add up to the batch of ${batch}`);
    }
  }
  const per = batch === 0 ? 0 : t.data.length / batch;
  const out: Tensor[] = [];
  let start = 0;
  for (const s of sizes) {
    out.push({ data: t.data.subarray(start * per, (start + s) * per), shape: [s, ...t.shape.slice(1)] });
    start += s;
  }
  return out;
}

/**
 * Mean of the two halves of the batch: [2B, ...] -> [B, ...], element i = (x[i] + x[i + half]) / 2.
 * This is how a cached cross-attention output of a CFG batch [uncond, cond] becomes one branch (TGATE).
 */
export function meanOfHalves(t: Tensor, out?: Tensor): Tensor {
  const batch = batchCheck(t, 'meanOfHalves');
  if (batch % 2 !== 0) throw new RangeError(`meanOfHalves: batch ${batch} is odd; expected [uncond, cond] halves`);
  const shape = [batch / 2, ...t.shape.slice(1)];
  const o = out ?? zeros(shape);
  if (!sameShape(o.shape, shape)) throw new RangeError(`meanOfHalves: output shape [${o.shape.join(', ')}] should be [${shape.join(', ')}]`);
  const half = t.data.length / 2;
  const x = t.data, r = o.data;
  for (let i = 0; i < half; i++) r[i] = 0.5 * (x[i]! + x[i + half]!);
  return o;
}

/** Returns a tensor with the same data and a new shape of the same size (no copy). */
export function reshape(t: Tensor, shape: readonly number[]): Tensor {
  if (sizeOf(shape) !== t.data.length) {
    throw new RangeError(`reshape: [${t.shape.join(', ')}] has ${t.data.length} elements, [${shape.join(', ')}] needs ${sizeOf(shape)}`);
  }
  return { data: t.data, shape: [...shape] };
}
