/**
 * ComfyUI's `lcm` sampler (sample_lcm in comfy/k_diffusion/sampling.py), the multistep sampling of Latent
 * Consistency Models (Luo et al. 2023, Algorithm 1): each step jumps to the model's denoised estimate D and, unless
 * the next level is 0, noises it afresh to that level: x' = D + sigma' z (ComfyUI's EPS.noise_scaling without
 * max_denoise), z new standard normal noise per step. Nothing of x survives a step except through D, so the
 * result is only as good as the model's one-step estimates: meant for LCM-distilled models, with few steps, low
 * cfg and the `sgm_uniform` schedule. (ComfyUI also gives LCM models their own model sampling, the
 * ModelSamplingDiscrete node with sampling "lcm": that is a model patch, not this sampler.)
 *
 * z is drawn only for steps that add noise (all but a last step to sigma 0), from the same seeded generator
 * euler_ancestral uses (createAncestralNoiseGenerator: ComfyUI's CPU default_noise_sampler, seed + 1), so a seed
 * gives ComfyUI's noise.
 */
import { addScaled, type Tensor } from '../tensor.ts';
import { SigmaScheduler } from './sigma-scheduler.ts';
import type { NoiseLevels, PredictionType } from './config.ts';
import type { ScheduleName } from './sigma-schedules.ts';
import type { StepNoise } from './types.ts';

export class LcmScheduler extends SigmaScheduler {
  readonly sampler = 'lcm';
  readonly stochastic: boolean;

  constructor(schedule: ScheduleName, predictionType: PredictionType, sigmas: number[], levels: NoiseLevels) {
    super(schedule, predictionType, sigmas, levels);
    // Only a step to a level above 0 draws noise: a one-step run (or none) needs no generator.
    this.stochastic = sigmas.slice(1).some((s) => s > 0);
  }

  step(modelOutput: Tensor, i: number, sample: Tensor, noise?: StepNoise): Tensor {
    const d = this.denoised(modelOutput, i, sample);
    const next = this.sigmas[i + 1]!;
    if (!(next > 0)) return d;
    return addScaled(d, this.drawNoise(noise, sample, i), next, d);
  }
}
