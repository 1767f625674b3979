/**
 * Adaptive Gauss–Kronrod quadrature (the 7-point Gauss rule embedded in the 15-point Kronrod rule, globally
 * adaptive: the interval with the largest error estimate is halved until the total estimate is within
 * tolerance), for the samplers whose coefficients are integrals: lms (scipy's integrate.quad in ComfyUI) and
 * deis. The 15-point rule is exact for polynomials up to degree 22, so lms's Lagrange integrals come out
 * exact on the first pass; the adaptivity is for deis's non-polynomial integrands.
 */

/** Kronrod nodes on [-1, 1] (the positive half; the Gauss nodes are the odd-indexed ones) and weights. */
const KRONROD_NODES = [
  0.991455371120812639206854697526329, 0.949107912342758524526189684047851, 0.864864423359769072789712788640926,
  0.741531185599394439863864773280788, 0.586087235467691130294144845693013, 0.405845151377397166906606412076961,
  0.207784955007898467600689403773245, 0,
];
const KRONROD_WEIGHTS = [
  0.02293532201052922496373200805897, 0.063092092629978553290700663189204, 0.104790010322250183839876322541518,
  0.140653259715525918745189590510238, 0.16900472663926790282658342659855, 0.190350578064785409913256402421014,
  0.204432940075298892414161999234649, 0.209482141084727828012999174891714,
];
/** Weights of the 7-point Gauss rule at KRONROD_NODES[1], [3], [5], [7]. */
const GAUSS_WEIGHTS = [0.129484966168869693270611432679082, 0.27970539148927666790146777142378, 0.381830050505118944950369775488975, 0.417959183673469387755102040816327];

export interface QuadratureOptions {
  /** Relative tolerance on the integral (default 1e-10). */
  relTol?: number;
  /** Absolute tolerance (default 1e-14), for integrals that are 0 or nearly so. */
  absTol?: number;
  /** Most subintervals before giving up (default 1000). */
  maxIntervals?: number;
}

interface Piece {
  a: number;
  b: number;
  value: number;
  error: number;
  /** The rule applied to |f|: the scale below which the error estimate is only rounding. */
  magnitude: number;
}

function kronrod(f: (x: number) => number, a: number, b: number): Piece {
  const center = (a + b) / 2;
  const half = (b - a) / 2;
  let k = 0;
  let g = 0;
  let abs = 0;
  for (let i = 0; i < KRONROD_NODES.length; i++) {
    const node = KRONROD_NODES[i]!;
    const left = f(center - half * node);
    const right = node === 0 ? 0 : f(center + half * node);
    const sum = left + right;
    k += KRONROD_WEIGHTS[i]! * sum;
    abs += KRONROD_WEIGHTS[i]! * (Math.abs(left) + Math.abs(right));
    if (i % 2 === 1) g += GAUSS_WEIGHTS[(i - 1) / 2]! * sum;
  }
  const value = k * half;
  if (!Number.isFinite(value)) throw new RangeError(`integrate: the integrand is not finite on [${a}, ${b}]`);
  return { a, b, value, error: Math.abs((k - g) * half), magnitude: Math.abs(abs * half) };
}

/** The integral of f from a to b (negative when b < a, as a signed integral is). */
export function integrate(f: (x: number) => number, a: number, b: number, options: QuadratureOptions = {}): number {
  const relTol = options.relTol ?? 1e-10;
  const absTol = options.absTol ?? 1e-14;
  const maxIntervals = options.maxIntervals ?? 1000;
  if (!Number.isFinite(a) || !Number.isFinite(b)) throw new RangeError(`integrate: bounds must be finite (got ${a}, ${b})`);
  if (a === b) return 0;
  const pieces = [kronrod(f, a, b)];
  for (;;) {
    let value = 0;
    let error = 0;
    let magnitude = 0;
    let worst = 0;
    for (let i = 0; i < pieces.length; i++) {
      value += pieces[i]!.value;
      error += pieces[i]!.error;
      magnitude += pieces[i]!.magnitude;
      if (pieces[i]!.error > pieces[worst]!.error) worst = i;
    }
    // Below 50 ulps of the integral of |f| the estimate is rounding noise: halving cannot improve it.
    if (error <= Math.max(absTol, relTol * Math.abs(value), 50 * Number.EPSILON * magnitude)) return value;
    if (pieces.length >= maxIntervals) {
      throw new RangeError(`integrate: no convergence on [${a}, ${b}] after ${maxIntervals} subintervals (error estimate ${error})`);
    }
    const { a: lo, b: hi } = pieces[worst]!;
    const mid = (lo + hi) / 2;
    pieces.splice(worst, 1, kronrod(f, lo, mid), kronrod(f, mid, hi));
  }
}

/**
 * The Lagrange basis polynomial of `nodes` that is 1 at nodes[j] and 0 at the others, as a function.
 * Shared by the multistep methods that integrate an interpolant of past slopes (lms, deis).
 */
export function lagrangeBasis(nodes: readonly number[], j: number): (x: number) => number {
  const own = nodes[j]!;
  return (x) => {
    let p = 1;
    for (let k = 0; k < nodes.length; k++) if (k !== j) p *= (x - nodes[k]!) / (own - nodes[k]!);
    return p;
  };
}
