/**
 * Bit-exact float32 emulation of the vectorised log / sincos PyTorch's CPU `normal_` uses on x86-64 with AVX2
 * (ATen's avx_mathfun.h: Cephes single-precision polynomials, after Julien Pommier's sse_mathfun). Written
 * from the algorithm: Cody-Waite range reduction by multiples of pi/4 (or exponent extraction for log), then
 * the Cephes minimax polynomials, every operation rounded to float32.
 *
 * The Debian/PyPI builds compile those intrinsics with GCC, which contracts `a * b + c` into one fused
 * multiply-add wherever it can; which products get fused was established against torch's own output
 * (see test/noise.test.ts and test/fixtures/make_noise_refs.py), so `fma` below marks those places.
 */

const f = Math.fround;
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function floatBits(x: number): number {
  f32[0] = x;
  return u32[0]!;
}
function bitsFloat(b: number): number {
  u32[0] = b >>> 0;
  return f32[0]!;
}

/** The float32 next to `x` in the direction of `dir` (+1 or -1); x finite and non-zero. */
function nextFloat(x: number, dir: number): number {
  const b = floatBits(x);
  return (x > 0) === (dir > 0) ? bitsFloat(b + 1) : bitsFloat(b - 1);
}

/**
 * fmaf(a, b, c) for float32 inputs: a*b is exact in float64 (48 significant bits); the sum is computed with
 * its exact rounding error (TwoSum) so the single float32 rounding of the true result is reproduced, ties
 * included (rounding the float64 sum directly would round twice).
 */
export function fmaf(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const bv = s - p;
  const err = p - (s - bv) + (c - bv);
  const r = f(s);
  if (err === 0) return r;
  const d = s - r;
  if (d === 0 || r === 0 || !Number.isFinite(r)) return r;
  const neighbour = nextFloat(r, d);
  // s sits exactly halfway between r and its neighbour: the true value s + err decides the side.
  if (neighbour - r === 2 * d) return (err > 0) === (d > 0) ? neighbour : r;
  return r;
}

const SQRTHF = f(0.707106781186547524);
const LOG_P = [
  7.0376836292e-2, -1.151461031e-1, 1.167699874e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
  2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1,
].map(f);
const LOG_Q1 = f(-2.1219444e-4);
const LOG_Q2 = f(0.693359375);

/** Natural log of a positive, normal float32 (the inputs here are 1 - u with u in [0, 1)). */
export function logf32(x: number): number {
  const bits = floatBits(x);
  let e = f((bits >>> 23) - 127 + 1);
  // mantissa scaled into [0.5, 1)
  const m = bitsFloat((bits & ~0x7f800000) | 0x3f000000);
  let t: number;
  if (m < SQRTHF) {
    e = f(e - 1);
    t = f(f(m - 1) + m);
  } else {
    t = f(m - 1);
  }
  const z = f(t * t);
  let y = LOG_P[0]!;
  for (let k = 1; k < LOG_P.length; k++) y = fmaf(y, t, LOG_P[k]!);
  y = f(y * t);
  y = fmaf(y, z, f(e * LOG_Q1));
  y = fmaf(-z, 0.5, y);
  t = f(t + y);
  return fmaf(e, LOG_Q2, t);
}

const FOPI = f(1.27323954473516); // 4 / pi
const DP1 = f(-0.78515625);
const DP2 = f(-2.4187564849853515625e-4);
const DP3 = f(-3.77489497744594108e-8);
const SIN_P0 = f(-1.9515295891e-4);
const SIN_P1 = f(8.3321608736e-3);
const SIN_P2 = f(-1.6666654611e-1);
const COS_P0 = f(2.443315711809948e-5);
const COS_P1 = f(-1.388731625493765e-3);
const COS_P2 = f(4.166664568298827e-2);

/** sin and cos of a non-negative float32 angle (here 2*pi*u, u in [0, 1)), written into `out` as [sin, cos]. */
export function sincosf32(angle: number, out: Float64Array): void {
  let x = angle;
  let j = Math.trunc(f(x * FOPI));
  j = (j + 1) & ~1; // octant, rounded up to even
  const y = f(j);
  const sinNegative = (j & 4) !== 0;
  const cosNegative = (~(j - 2) & 4) !== 0;
  const usesSinPolyForSin = (j & 2) === 0;
  // extended-precision reduction x - j * pi/4, in three parts
  x = fmaf(y, DP1, x);
  x = fmaf(y, DP2, x);
  x = fmaf(y, DP3, x);
  const z = f(x * x);
  let c = fmaf(COS_P0, z, COS_P1);
  c = fmaf(c, z, COS_P2);
  c = f(c * z);
  c = fmaf(c, z, -f(z * 0.5));
  c = f(c + 1);
  let s = fmaf(SIN_P0, z, SIN_P1);
  s = fmaf(s, z, SIN_P2);
  s = f(s * z);
  s = fmaf(s, x, x);
  let sin = usesSinPolyForSin ? s : c;
  let cos = usesSinPolyForSin ? c : s;
  if (sinNegative) sin = -sin;
  if (cosNegative) cos = -cos;
  out[0] = sin;
  out[1] = cos;
}
