/**
 * dpm_fast and dpm_adaptive: DPM-Solver (Lu et al. 2022, arXiv 2206.00927) in its noise-prediction form,
 * stepping in t = -log sigma with its own step sizes. Both ignore the schedule between its ends, as ComfyUI
 * does: they integrate from sigmas[0] down to the last non-zero sigma and stop there (the final sigma 0 is
 * not reached, so the result keeps that last sigma's noise).
 *
 * DPM-Solver-1/2/3 steps from t to t' (h = t' - t, eps = (x - D) / sigma):
 *   1: x' = x - sigma' (e^h - 1) eps
 *   2: u = x - sigma_s (e^(r1 h) - 1) eps at s = t + r1 h;  x' = x - sigma' (e^h - 1) (eps + (eps_s - eps) / (2 r1))
 *   3: with s1 = t + h/3, s2 = t + 2h/3, the third-order update of the paper's Algorithm (DPM-Solver-3).
 * dpm_fast: floor(n/3) + 1 steps evenly spaced in t, third order except the last one or two, so that it uses
 * exactly n model calls. dpm_adaptive: embedded pairs (1 and 2, or 2 and 3) whose difference drives a PID
 * step-size controller, so the number of calls is its own. With eta > 0 both add ancestral noise.
 *
 * Model calls report `step` as the solver's own step (an attempt, for dpm_adaptive), not an index into sigmas.
 */
import { ancestralStep } from '../schedulers/euler-ancestral.ts';
import type { Tensor } from '../tensor.ts';
import type { SamplerFunction } from './types.ts';
import { combine, SamplerContext, unchanged } from './common.ts';

const sigmaOf = (t: number): number => Math.exp(-t);
const tOf = (sigma: number): number => -Math.log(sigma);

/** One solver step's model evaluations, shared between the embedded low and high order updates. */
class StepEvaluations {
  private readonly cache = new Map<string, Tensor>();
  private calls = 0;

  constructor(
    private readonly ctx: SamplerContext,
    private readonly step: number,
  ) {}

  /** eps at (x, t), computed once per key within the step. */
  async eps(key: string, x: Tensor, t: number): Promise<Tensor> {
    const cached = this.cache.get(key);
    if (cached) return cached;
    const sigma = sigmaOf(t);
    const { denoised } = await this.ctx.model(x, sigma, this.step, this.calls++);
    const eps = combine([1 / sigma, x], [-1 / sigma, denoised]);
    this.cache.set(key, eps);
    return eps;
  }

  async first(x: Tensor, t: number, tNext: number): Promise<Tensor> {
    const eps = await this.eps('eps', x, t);
    return combine([1, x], [-sigmaOf(tNext) * Math.expm1(tNext - t), eps]);
  }

  async second(x: Tensor, t: number, tNext: number, r1 = 1 / 2): Promise<Tensor> {
    const h = tNext - t;
    const eps = await this.eps('eps', x, t);
    const s1 = t + r1 * h;
    const u1 = combine([1, x], [-sigmaOf(s1) * Math.expm1(r1 * h), eps]);
    const epsR1 = await this.eps('eps_r1', u1, s1);
    const a = sigmaOf(tNext) * Math.expm1(h);
    const b = a / (2 * r1);
    return combine([1, x], [-a + b, eps], [-b, epsR1]);
  }

  async third(x: Tensor, t: number, tNext: number, r1 = 1 / 3, r2 = 2 / 3): Promise<Tensor> {
    const h = tNext - t;
    const eps = await this.eps('eps', x, t);
    const s1 = t + r1 * h;
    const s2 = t + r2 * h;
    const u1 = combine([1, x], [-sigmaOf(s1) * Math.expm1(r1 * h), eps]);
    const epsR1 = await this.eps('eps_r1', u1, s1);
    const c = sigmaOf(s2) * (r2 / r1) * (Math.expm1(r2 * h) / (r2 * h) - 1);
    const u2 = combine([1, x], [-sigmaOf(s2) * Math.expm1(r2 * h) + c, eps], [-c, epsR1]);
    const epsR2 = await this.eps('eps_r2', u2, s2);
    const a = sigmaOf(tNext) * Math.expm1(h);
    const b = (sigmaOf(tNext) / r2) * (Math.expm1(h) / h - 1);
    return combine([1, x], [-a + b, eps], [-b, epsR2]);
  }

  /** The step's clean-latent estimate at (x, t), from the cached eps. */
  async denoised(x: Tensor, t: number): Promise<Tensor> {
    return combine([1, x], [-sigmaOf(t), await this.eps('eps', x, t)]);
  }
}

/** ComfyUI's wrapper: the interval is [last non-zero sigma, sigmas[0]]. */
function interval(ctx: SamplerContext): { sigmaMin: number; sigmaMax: number } {
  const sigmas = ctx.sigmas;
  let sigmaMin = sigmas[sigmas.length - 1]!;
  if (sigmaMin === 0) sigmaMin = sigmas[sigmas.length - 2]!;
  const sigmaMax = sigmas[0]!;
  if (!(sigmaMin > 0) || !(sigmaMax > 0)) throw new RangeError(`${ctx.sampler}: the first and last non-zero sigmas must be > 0 (got ${sigmaMax}, ${sigmaMin})`);
  return { sigmaMin, sigmaMax };
}

/**
 * Where an ancestral step from t towards tNext really lands (t') and how much noise brings it to tNext, or
 * (tNext, 0) without eta.
 */
function ancestralTarget(t: number, tNext: number, tEnd: number, eta: number): { target: number; sigmaUp: number } {
  if (!eta) return { target: tNext, sigmaUp: 0 };
  const { sigmaDown } = ancestralStep(sigmaOf(t), sigmaOf(tNext), eta);
  const target = Math.min(tEnd, tOf(sigmaDown));
  return { target, sigmaUp: Math.sqrt(sigmaOf(tNext) ** 2 - sigmaOf(target) ** 2) };
}

export const sampleDpmFast: SamplerFunction = async (x, run) => {
  const ctx = new SamplerContext(run, 'dpm_fast');
  if (ctx.steps === 0) return unchanged(x);
  const eta = ctx.number('eta', 0);
  const sNoise = ctx.number('sNoise', 1);
  const { sigmaMin, sigmaMax } = interval(ctx);
  const tStart = tOf(sigmaMax);
  const tEnd = tOf(sigmaMin);
  if (!(tEnd > tStart) && eta) throw new RangeError('dpm_fast: eta must be 0 when sampling towards higher noise');
  const noise = ctx.noise(eta > 0 && sNoise !== 0);
  const calls = ctx.steps;
  const m = Math.floor(calls / 3) + 1;
  const ts = Array.from({ length: m + 1 }, (_, k) => tStart + ((tEnd - tStart) * k) / m);
  const orders = calls % 3 === 0 ? [...new Array<number>(m - 2).fill(3), 2, 1] : [...new Array<number>(m - 1).fill(3), calls % 3];
  for (let i = 0; i < orders.length; i++) {
    const t = ts[i]!;
    const tNext = ts[i + 1]!;
    const { target, sigmaUp } = ancestralTarget(t, tNext, tEnd, eta);
    const step = new StepEvaluations(ctx, i);
    const denoised = await step.denoised(x, t);
    const order = orders[i]!;
    x = order === 1 ? await step.first(x, t, target) : order === 2 ? await step.second(x, t, target) : await step.third(x, t, target);
    x = noise.add(x, sigmaOf(t), sigmaOf(tNext), sigmaUp * sNoise);
    ctx.report(i, x, denoised, sigmaOf(t), sigmaOf(tNext));
  }
  return x;
};

/** The PID step-size controller of k-diffusion's dpm_adaptive (Söderlind's form, with an arctan limiter). */
export class PidStepSizeController {
  private readonly b1: number;
  private readonly b2: number;
  private readonly b3: number;
  private errors: [number, number, number] | undefined;

  constructor(
    public h: number,
    pcoeff: number,
    icoeff: number,
    dcoeff: number,
    order: number,
    private readonly acceptSafety = 0.81,
    private readonly eps = 1e-8,
  ) {
    this.b1 = (pcoeff + icoeff + dcoeff) / order;
    this.b2 = -(pcoeff + 2 * dcoeff) / order;
    this.b3 = dcoeff / order;
  }

  /** Scales h by the controller's factor for this error; true when the step that gave it is accepted. */
  propose(error: number): boolean {
    const inverse = 1 / (error + this.eps);
    const errs = this.errors ?? [inverse, inverse, inverse];
    errs[0] = inverse;
    this.errors = errs;
    const raw = errs[0] ** this.b1 * errs[1] ** this.b2 * errs[2] ** this.b3;
    const factor = 1 + Math.atan(raw - 1);
    const accept = factor >= this.acceptSafety;
    if (accept) {
      errs[2] = errs[1];
      errs[1] = errs[0];
    }
    this.h *= factor;
    return accept;
  }
}

/** RMS over all elements of (low - high) / max(atol, rtol * max(|low|, |previous|)). */
function scaledError(low: Tensor, high: Tensor, previous: Tensor, atol: number, rtol: number): number {
  let sum = 0;
  const a = low.data;
  const b = high.data;
  const p = previous.data;
  for (let k = 0; k < a.length; k++) {
    const delta = Math.max(atol, rtol * Math.max(Math.abs(a[k]!), Math.abs(p[k]!)));
    const e = (a[k]! - b[k]!) / delta;
    sum += e * e;
  }
  return Math.sqrt(sum) / Math.sqrt(a.length);
}

export const sampleDpmAdaptive: SamplerFunction = async (x, run) => {
  const ctx = new SamplerContext(run, 'dpm_adaptive');
  if (ctx.steps === 0) return unchanged(x);
  const order = ctx.integer('order', 3, 2, 3);
  const rtol = ctx.number('rtol', 0.05);
  const atol = ctx.number('atol', 0.0078);
  const hInit = ctx.number('hInit', 0.05, (v) => v !== 0, 'other than 0');
  const pcoeff = ctx.number('pcoeff', 0, () => true, '');
  const icoeff = ctx.number('icoeff', 1, () => true, '');
  const dcoeff = ctx.number('dcoeff', 0, () => true, '');
  const acceptSafety = ctx.number('acceptSafety', 0.81);
  const eta = ctx.number('eta', 0);
  const sNoise = ctx.number('sNoise', 1);
  const { sigmaMin, sigmaMax } = interval(ctx);
  const tStart = tOf(sigmaMax);
  const tEnd = tOf(sigmaMin);
  const forward = tEnd > tStart;
  if (!forward && eta) throw new RangeError('dpm_adaptive: eta must be 0 when sampling towards higher noise');
  const noise = ctx.noise(eta > 0 && sNoise !== 0);
  const pid = new PidStepSizeController(Math.abs(hInit) * (forward ? 1 : -1), pcoeff, icoeff, dcoeff, eta ? 1.5 : order, acceptSafety);
  const input = x;
  let s = tStart;
  let previous = x;
  for (let attempt = 0; forward ? s < tEnd - 1e-5 : s > tEnd + 1e-5; attempt++) {
    const t = forward ? Math.min(tEnd, s + pid.h) : Math.max(tEnd, s + pid.h);
    const { target, sigmaUp } = ancestralTarget(s, t, tEnd, eta);
    const step = new StepEvaluations(ctx, attempt);
    const denoised = await step.denoised(x, s);
    const low = order === 2 ? await step.first(x, s, target) : await step.second(x, s, target, 1 / 3);
    const high = order === 2 ? await step.second(x, s, target) : await step.third(x, s, target);
    const from = s;
    if (pid.propose(scaledError(low, high, previous, atol, rtol))) {
      previous = low;
      x = noise.add(high, sigmaOf(s), sigmaOf(t), sigmaUp * sNoise);
      s = t;
    }
    ctx.report(attempt, x, denoised, sigmaOf(from), sigmaOf(t));
  }
  return x === input ? unchanged(x) : x;
};
