/**
 * Shared base of the k-diffusion style samplers (euler, euler_ancestral, dpmpp_2m), Karras et al. 2022's
 * formulation: the sample lives in "variance exploding" units, x = x0 + sigma * eps, and the UNet (trained on
 * variance-preserving samples sqrt(abar) x0 + sqrt(1 - abar) eps) sees x / sqrt(sigma^2 + 1), with
 * abar = 1 / (1 + sigma^2). This is what ComfyUI does for every sampler.
 */
import { axpby, addScaled, clone, scale, type Tensor } from '../tensor.ts';
import { isNoiseTensor, checkStep } from './step-utils.ts';
import { sigmaToTimestep, type NoiseLevels, type PredictionType } from './config.ts';
import type { ScheduleName } from './sigma-schedules.ts';
import type { SamplerName, Scheduler, StepNoise } from './types.ts';

export abstract class SigmaScheduler implements Scheduler {
  abstract readonly sampler: SamplerName;
  abstract readonly stochastic: boolean;
  readonly timesteps: number[];
  readonly initNoiseSigma: number;

  constructor(
    readonly schedule: ScheduleName,
    readonly predictionType: PredictionType,
    readonly sigmas: number[],
    levels: NoiseLevels,
  ) {
    this.timesteps = sigmas.slice(0, -1).map((s) => sigmaToTimestep(levels, s));
    const first = sigmas[0] ?? 0;
    // ComfyUI's max_denoise: starting at the top of the schedule, the latent is taken as pure VP noise, i.e.
    // noise * sqrt(1 + sigma^2) in VE units; part-way down it is latent + sigma * noise.
    const fullStrength = first > 0 && (Math.abs(first - levels.sigmaMax) <= 1e-5 * levels.sigmaMax || first > levels.sigmaMax);
    this.initNoiseSigma = fullStrength ? Math.sqrt(1 + first * first) : first;
  }

  protected sigma(i: number): number {
    checkStep(i, this.timesteps.length, this.sampler);
    return this.sigmas[i]!;
  }

  scaleModelInput(sample: Tensor, i: number): Tensor {
    const s = this.sigma(i);
    return scale(sample, 1 / Math.sqrt(s * s + 1));
  }

  denoised(modelOutput: Tensor, i: number, sample: Tensor): Tensor {
    const s = this.sigma(i);
    if (this.predictionType === 'epsilon') return addScaled(sample, modelOutput, -s);
    // v = sqrt(abar) eps - sqrt(1 - abar) x0 on the VP sample; in VE units x0 = x / (s^2 + 1) - v s / sqrt(s^2 + 1)
    return axpby(1 / (s * s + 1), sample, -s / Math.sqrt(s * s + 1), modelOutput);
  }

  modelOutputFor(denoised: Tensor, i: number, sample: Tensor): Tensor {
    const s = this.sigma(i);
    // epsilon: d = x - s eps, so eps = (x - d) / s; v: d = x / (s^2 + 1) - v s / sqrt(s^2 + 1)
    if (this.predictionType === 'epsilon') return axpby(1 / s, sample, -1 / s, denoised);
    const root = Math.sqrt(s * s + 1);
    return axpby(1 / (s * root), sample, -root / s, denoised);
  }

  noised(latent: Tensor, noise: Tensor, i: number): Tensor {
    return addScaled(latent, noise, this.sigma(i));
  }

  addNoise(latent: Tensor, noise: Tensor, startStep = 0): Tensor {
    if (this.sigmas.length === 0) return clone(latent);
    checkStep(startStep, this.timesteps.length, this.sampler);
    const s = startStep === 0 ? this.initNoiseSigma : this.sigmas[startStep]!;
    return addScaled(latent, noise, s);
  }

  abstract step(modelOutput: Tensor, i: number, sample: Tensor, noise?: StepNoise): Tensor;

  /** Already in LATENT units (x0 + sigma * noise). */
  finalLatent(sample: Tensor): Tensor {
    return sample;
  }

  /** Noise for a stochastic step, drawn from a generator only when actually needed (as ComfyUI draws). */
  protected drawNoise(noise: StepNoise | undefined, like: Tensor, i: number): Tensor {
    if (noise === undefined) {
      throw new Error(
        `${this.sampler} needs fresh noise at step ${i}: pass a NoiseGenerator (e.g. createAncestralNoiseGenerator(seed)) or a noise tensor as step()'s 4th argument`,
      );
    }
    return isNoiseTensor(noise) ? noise : noise.randn(like.shape);
  }
}
