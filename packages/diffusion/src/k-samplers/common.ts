/**
 * What every k-sampler module shares: linear combinations of tensors, model calls, step reports, option
 * checks and the fresh-noise source. Kept small on purpose: the samplers themselves read as their formulas.
 */
import { assertSameShape, axpby, axpbypcz, clone, scale, zeros, type Tensor } from '../tensor.ts';
import type { Denoised, NoiseSampler, SamplerOptions, SamplerRun } from './types.ts';

/** One term of a linear combination: coefficient and tensor. */
export type Term = readonly [number, Tensor];

/**
 * sum_k c_k t_k, the coefficients combined in float64 and each element rounded to float32 once. Terms with a
 * zero coefficient are left out, so a tensor that a formula multiplies by 0 is never read (it may be a
 * placeholder from a branch that did not run).
 */
export function combine(...terms: readonly Term[]): Tensor {
  const live = terms.filter(([c]) => c !== 0);
  const first = terms[0];
  if (first === undefined) throw new RangeError('combine: no terms given');
  if (live.length === 0) return zeros(first[1].shape);
  const [a, b, c] = live as [Term, Term | undefined, Term | undefined];
  if (live.length === 1) return scale(a[1], a[0]);
  if (live.length === 2) return axpby(a[0], a[1], b![0], b![1]);
  if (live.length === 3) return axpbypcz(a[0], a[1], b![0], b![1], c![0], c![1]);
  for (const [, t] of live) assertSameShape(a[1], t, 'combined tensors');
  const n = a[1].data.length;
  const acc = new Float64Array(n);
  for (const [coefficient, t] of live) {
    const d = t.data;
    for (let i = 0; i < n; i++) acc[i] = acc[i]! + coefficient * d[i]!;
  }
  return { data: Float32Array.from(acc), shape: [...a[1].shape] };
}

/** Karras et al.'s ODE derivative d = (x - D) / sigma. */
export function derivative(x: Tensor, sigma: number, denoised: Tensor): Tensor {
  return axpby(1 / sigma, x, -1 / sigma, denoised);
}

/** The clean-latent estimate a cfg++ sampler steers by: the negative prompt's, or the guided one at cfg 1. */
export function uncondOf(out: Denoised): Tensor {
  return out.uncond ?? out.denoised;
}

/** ComfyUI's torch.nan_to_num on a scalar coefficient (NaN -> 0). */
export function nanToZero(v: number): number {
  return Number.isNaN(v) ? 0 : v;
}

/** log-SNR time of a sigma in k-diffusion units: lambda = log(alpha / sigma) with alpha = 1, i.e. -log sigma. */
export function lambdaOf(sigma: number): number {
  return -Math.log(sigma);
}

/** The model, its step reports and the run's fixed inputs, for one sampler run. */
export class SamplerContext {
  readonly sigmas: readonly number[];
  readonly options: SamplerOptions;

  constructor(
    readonly run: SamplerRun,
    readonly sampler: string,
  ) {
    for (const s of run.sigmas) {
      if (!Number.isFinite(s) || s < 0) throw new RangeError(`${sampler}: sigmas must be finite and >= 0 (got ${s})`);
    }
    this.sigmas = run.sigmas;
    this.options = run.options ?? {};
  }

  /** Number of steps (sigmas.length - 1, or 0). */
  get steps(): number {
    return Math.max(this.sigmas.length - 1, 0);
  }

  sigma(i: number): number {
    return this.sigmas[i]!;
  }

  model(x: Tensor, sigma: number, step: number, call = 0): Promise<Denoised> {
    return this.run.model(x, sigma, { step, call });
  }

  report(step: number, x: Tensor, denoised: Tensor, sigma: number, sigmaNext: number): void {
    this.run.callback?.({ step, x, denoised, sigma, sigmaNext });
  }

  /** A number option: the given value or the default, checked against a range. */
  number(name: keyof SamplerOptions, fallback: number, check: (v: number) => boolean = (v) => v >= 0, expected = '>= 0'): number {
    const value = this.options[name];
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isFinite(value) || !check(value)) {
      throw new RangeError(`${this.sampler}: option ${name} must be a finite number ${expected} (got ${String(value)})`);
    }
    return value;
  }

  /** A whole-number option within [min, max]. */
  integer(name: keyof SamplerOptions, fallback: number, min: number, max: number): number {
    return this.number(name, fallback, (v) => Number.isInteger(v) && v >= min && v <= max, `and a whole number from ${min} to ${max}`);
  }

  /**
   * The fresh-noise source. `needed` says whether, with these options and sigmas, the sampler will add noise
   * with a non-zero weight somewhere: without run.noise that is refused before any model call.
   */
  noise(needed: boolean): NoiseDraw {
    const source = this.run.noise;
    if (source === undefined && needed) throw missingNoise(this.sampler);
    return new NoiseDraw(source, this.sampler);
  }
}

function missingNoise(sampler: string): Error {
  return new Error(
    `k-sampler "${sampler}" adds fresh noise during sampling but the run has no noise sampler: pass run.noise ` +
      '(a seeded generator, as ComfyUI\'s default_noise_sampler, or a Brownian tree for the SDE samplers)',
  );
}

/**
 * Draws noise where ComfyUI draws it. With a noise sampler every draw ComfyUI makes is made, even one it then
 * multiplies by 0, so a seeded stream stays in step with ComfyUI's; without one, a draw whose weight is 0 is
 * skipped and any other is an error.
 */
export class NoiseDraw {
  constructor(
    private readonly source: NoiseSampler | undefined,
    private readonly sampler: string,
  ) {}

  /** x + weight * z(sigma, sigmaNext). */
  add(x: Tensor, sigma: number, sigmaNext: number, weight: number): Tensor {
    const z = this.draw(sigma, sigmaNext, weight, x);
    return z === undefined || weight === 0 ? x : combine([1, x], [weight, z]);
  }

  /** z(sigma, sigmaNext), or undefined when there is no source and the draw's weight is 0. */
  draw(sigma: number, sigmaNext: number, weight: number, like?: Tensor): Tensor | undefined {
    if (this.source === undefined) {
      if (weight === 0) return undefined;
      throw missingNoise(this.sampler);
    }
    const z = this.source(sigma, sigmaNext);
    if (like !== undefined) assertSameShape(like, z, `${this.sampler} noise and sample`);
    return z;
  }
}

/** Whether any step ends above sigma 0 (only such steps add noise in ComfyUI's samplers). */
export function stepsToNoise(sigmas: readonly number[]): boolean {
  return sigmas.slice(1).some((s) => s > 0);
}

/** The result of a run with no step: the input, as a new tensor (a sampler never hands back its input). */
export function unchanged(x: Tensor): Tensor {
  return clone(x);
}
