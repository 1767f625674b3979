/**
 * DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12), on the variance-preserving sample
 * x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, as diffusers' DDIMScheduler:
 *   x0^    = (x_t - sqrt(1 - abar_t) eps^) / sqrt(abar_t)
 *   x_prev = sqrt(abar_prev) x0^ + sqrt(1 - abar_prev - s^2) eps^ + s z,
 *   s      = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)   (eq. 16; eta = 0: deterministic)
 * With a v-prediction model: x0^ = sqrt(abar) x_t - sqrt(1 - abar) v, eps^ = sqrt(abar) v + sqrt(1 - abar) x_t.
 *
 * Two ways to choose the abar sequence:
 * - 'diffusers' (no ComfyUI schedule given): timesteps by config.timestep_spacing (+ steps_offset for 'leading'),
 *   abar_prev at t - floor(T / steps), and after the last step abar_prev = 1 if set_alpha_to_one else abar_0
 *   (so with SD's config the result still holds sqrt(1 - abar_0) ~ 0.03 of noise, like diffusers).
 * - a ComfyUI schedule: abar = 1 / (1 + sigma^2) for each sigma of the schedule, ending at sigma = 0 (abar = 1).
 *   With eta = 0 this is the same trajectory as Euler (DDIM is Euler's method on x / sqrt(abar)), which is why
 *   ComfyUI's `ddim` sampler is implemented as Euler; results agree to float rounding.
 */
import { axpby, axpbypcz, clone, scale, type Tensor } from '../tensor.ts';
import { checkStep, isNoiseTensor } from './step-utils.ts';
import type { PredictionType } from './config.ts';
import type { ScheduleName } from './sigma-schedules.ts';
import type { Scheduler, StepNoise } from './types.ts';

export interface DdimPlan {
  schedule: ScheduleName | 'diffusers';
  timesteps: number[];
  /** abar at the start of each step. */
  alphas: number[];
  /** abar after each step. */
  alphasPrev: number[];
  /**
   * ComfyUI's full-strength start: step 0's sample is taken as pure noise (noise, not sqrt(1 - abar) noise),
   * matching ComfyUI's noise * sqrt(1 + sigma^2) in its units.
   */
  pureNoiseStart: boolean;
}

const sigmaOfAlpha = (a: number): number => Math.sqrt(Math.max(0, (1 - a) / a));

export class DdimScheduler implements Scheduler {
  readonly sampler = 'ddim';
  readonly schedule: ScheduleName | 'diffusers';
  readonly timesteps: number[];
  readonly sigmas: number[];
  readonly initNoiseSigma = 1;
  readonly stochastic: boolean;
  private readonly alphas: number[];
  private readonly alphasPrev: number[];
  private readonly pureNoiseStart: boolean;

  constructor(
    plan: DdimPlan,
    readonly predictionType: PredictionType,
    readonly eta = 0,
  ) {
    if (!(eta >= 0)) throw new RangeError(`ddim: eta must be >= 0 (got ${eta})`);
    this.schedule = plan.schedule;
    this.timesteps = plan.timesteps;
    this.alphas = plan.alphas;
    this.alphasPrev = plan.alphasPrev;
    this.pureNoiseStart = plan.pureNoiseStart;
    this.stochastic = eta > 0;
    const n = plan.alphas.length;
    this.sigmas = n === 0 ? [] : [...plan.alphas.map(sigmaOfAlpha), sigmaOfAlpha(plan.alphasPrev[n - 1]!)];
  }

  /**
   * DDIM ends at alphasPrev[last] in VP units (sqrt(a) x0 + sqrt(1 - a) eps); as a LATENT that is x / sqrt(a).
   * With ComfyUI schedules the last level is 0 (a = 1: unchanged) unless a window left noise. diffusers' own
   * DDIM timesteps end at alphas_cumprod[0] when set_alpha_to_one is false, and diffusers returns that sample
   * as it is: so do we.
   */
  finalLatent(sample: Tensor): Tensor {
    const n = this.alphasPrev.length;
    const last = n ? this.alphasPrev[n - 1]! : 1;
    if (this.schedule === 'diffusers' || last === 1) return sample;
    return scale(sample, 1 / Math.sqrt(last));
  }

  private alpha(i: number): number {
    checkStep(i, this.timesteps.length, this.sampler);
    return this.alphas[i]!;
  }

  scaleModelInput(sample: Tensor, i: number): Tensor {
    checkStep(i, this.timesteps.length, this.sampler);
    return sample; // DDIM's sample already is the variance-preserving UNet input
  }

  /** Coefficients (cx, cm) with x0^ = cx x + cm m and eps^ = ex x + em m for model output m. */
  private decompose(a: number): { cx: number; cm: number; ex: number; em: number } {
    const sa = Math.sqrt(a);
    const sb = Math.sqrt(1 - a);
    if (this.predictionType === 'epsilon') return { cx: 1 / sa, cm: -sb / sa, ex: 0, em: 1 };
    return { cx: sa, cm: -sb, ex: sb, em: sa };
  }

  denoised(modelOutput: Tensor, i: number, sample: Tensor): Tensor {
    const { cx, cm } = this.decompose(this.alpha(i));
    return axpby(cx, sample, cm, modelOutput);
  }

  modelOutputFor(denoised: Tensor, i: number, sample: Tensor): Tensor {
    const { cx, cm } = this.decompose(this.alpha(i));
    return axpby(-cx / cm, sample, 1 / cm, denoised);
  }

  noised(latent: Tensor, noise: Tensor, i: number): Tensor {
    const a = this.alpha(i);
    return axpby(Math.sqrt(a), latent, Math.sqrt(1 - a), noise);
  }

  step(modelOutput: Tensor, i: number, sample: Tensor, noise?: StepNoise): Tensor {
    const a = this.alpha(i);
    const aPrev = this.alphasPrev[i]!;
    const s = this.eta * Math.sqrt((1 - aPrev) / (1 - a)) * Math.sqrt(Math.max(0, 1 - a / aPrev));
    const dir = Math.sqrt(Math.max(0, 1 - aPrev - s * s));
    const { cx, cm, ex, em } = this.decompose(a);
    const sp = Math.sqrt(aPrev);
    // x_prev = sp (cx x + cm m) + dir (ex x + em m) [+ s z]
    const kx = sp * cx + dir * ex;
    const km = sp * cm + dir * em;
    if (s === 0) return axpby(kx, sample, km, modelOutput);
    if (noise === undefined) {
      throw new Error(`ddim with eta ${this.eta} needs fresh noise at step ${i}: pass a NoiseGenerator or a noise tensor as step()'s 4th argument`);
    }
    const z = isNoiseTensor(noise) ? noise : noise.randn(sample.shape);
    return axpbypcz(kx, sample, km, modelOutput, s, z);
  }

  addNoise(latent: Tensor, noise: Tensor, startStep = 0): Tensor {
    if (this.alphas.length === 0) return clone(latent);
    const a = this.alpha(startStep);
    const noiseScale = startStep === 0 && this.pureNoiseStart ? 1 : Math.sqrt(1 - a);
    return axpby(Math.sqrt(a), latent, noiseScale, noise);
  }
}
