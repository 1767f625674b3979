/**
 * The regularised incomplete beta function I_x(a, b) and its inverse, for ComfyUI's "beta" scheduler (which
 * places its timesteps at quantiles of a Beta(0.6, 0.6) distribution; ComfyUI calls scipy.stats.beta.ppf).
 * I_x is evaluated with its continued fraction (modified Lentz), on whichever side of the mean converges
 * fast, and inverted with safeguarded Halley steps inside a shrinking bracket, to about 1e-15 relative.
 */

/** Lanczos coefficients for g = 7, n = 9 (accurate to about 1e-15 for positive arguments). */
const LANCZOS_G = 7;
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** log Gamma(x) for x > 0. */
export function logGamma(x: number): number {
  if (!(x > 0)) throw new RangeError(`logGamma: x must be > 0 (got ${x})`);
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x); // reflection
  const z = x - 1;
  let sum = LANCZOS[0]!;
  for (let i = 1; i < LANCZOS.length; i++) sum += LANCZOS[i]! / (z + i);
  const t = z + LANCZOS_G + 0.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

/** log B(a, b). */
export function logBeta(a: number, b: number): number {
  return logGamma(a) + logGamma(b) - logGamma(a + b);
}

/** The continued fraction of I_x(a, b) (converges fast for x < (a + 1) / (a + b + 2)). */
function betaContinuedFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    // Even step.
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    // Odd step.
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-16) return h;
  }
  throw new RangeError(`incomplete beta: no convergence for x = ${x}, a = ${a}, b = ${b}`);
}

function checkShape(a: number, b: number): void {
  if (!(a > 0) || !(b > 0) || !Number.isFinite(a) || !Number.isFinite(b)) {
    throw new RangeError(`incomplete beta: a and b must be finite and > 0 (got ${a}, ${b})`);
  }
}

/** I_x(a, b) = B(x; a, b) / B(a, b), the Beta(a, b) distribution function at x in [0, 1]. */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  checkShape(a, b);
  if (!(x >= 0 && x <= 1)) throw new RangeError(`incomplete beta: x must be in [0, 1] (got ${x})`);
  if (x === 0 || x === 1) return x;
  const front = Math.exp(a * Math.log(x) + b * Math.log1p(-x) - logBeta(a, b));
  if (x < (a + 1) / (a + b + 2)) return (front * betaContinuedFraction(x, a, b)) / a;
  return 1 - (front * betaContinuedFraction(1 - x, b, a)) / b;
}

/** A starting point for the inverse (Numerical Recipes' invbetai guesses). */
function initialGuess(p: number, a: number, b: number): number {
  if (a >= 1 && b >= 1) {
    const pp = p < 0.5 ? p : 1 - p;
    const t = Math.sqrt(-2 * Math.log(pp));
    let x = (2.30753 + t * 0.27061) / (1 + t * (0.99229 + t * 0.04481)) - t;
    if (p < 0.5) x = -x;
    const al = (x * x - 3) / 6;
    const h = 2 / (1 / (2 * a - 1) + 1 / (2 * b - 1));
    const w = (x * Math.sqrt(al + h)) / h - (1 / (2 * b - 1) - 1 / (2 * a - 1)) * (al + 5 / 6 - 2 / (3 * h));
    return a / (a + b * Math.exp(2 * w));
  }
  const lna = Math.log(a / (a + b));
  const lnb = Math.log(b / (a + b));
  const t = Math.exp(a * lna) / a;
  const u = Math.exp(b * lnb) / b;
  const w = t + u;
  return p < t / w ? Math.pow(a * w * p, 1 / a) : 1 - Math.pow(b * w * (1 - p), 1 / b);
}

/** The x in [0, 1] with I_x(a, b) = p: the Beta(a, b) quantile (scipy.stats.beta.ppf). */
export function inverseRegularizedIncompleteBeta(p: number, a: number, b: number): number {
  checkShape(a, b);
  if (!(p >= 0 && p <= 1)) throw new RangeError(`inverse incomplete beta: p must be in [0, 1] (got ${p})`);
  if (p === 0 || p === 1) return p;
  // The median of a symmetric Beta is 1/2 exactly; the beta schedule rounds 0.5 * (T - 1) there, so it matters.
  if (a === b && p === 0.5) return 0.5;
  // Solve on the lower tail, where x is small and keeps its relative precision; I_x(a, b) = 1 - I_1-x(b, a).
  if (p > 0.5) return 1 - inverseRegularizedIncompleteBeta(1 - p, b, a);
  const logB = logBeta(a, b);
  let lo = 0;
  let hi = 1;
  let x = initialGuess(p, a, b);
  if (!(x > 0 && x < 1)) x = 0.5;
  for (let iteration = 0; iteration < 400; iteration++) {
    const error = regularizedIncompleteBeta(x, a, b) - p;
    if (error === 0) return x;
    if (error < 0) lo = x;
    else hi = x;
    // Halley's step on I_x - p, whose derivative is the Beta density.
    const density = Math.exp((a - 1) * Math.log(x) + (b - 1) * Math.log1p(-x) - logB);
    const newton = error / density;
    const curvature = (a - 1) / x - (b - 1) / (1 - x);
    let next = x - newton / (1 - 0.5 * Math.min(1, newton * curvature));
    if (!(next > lo && next < hi)) {
      // Outside the bracket: bisect, geometrically while the bracket spans orders of magnitude.
      next = lo === 0 ? hi / 16 : hi / lo > 1024 ? Math.sqrt(lo * hi) : (lo + hi) / 2;
    }
    if (Math.abs(next - x) <= 1e-15 * next) return next;
    x = next;
  }
  return x;
}
