/**
 * From a sampler name and noise levels to what the engine's loop runs: the one-call-per-step schedulers for
 * the samplers this engine had first (euler, euler_ancestral, dpmpp_2m, lcm, ddim: kept, so saved workflows
 * reproduce their images exactly), ComfyUI's k-diffusion functions for every other name of ComfyUI's list.
 *
 * ComfyUI's rules followed here: the noise of the stochastic samplers comes from a generator seeded with
 * seed + 1, except the SDE samplers', which come from a Brownian tree seeded with the seed; some samplers have
 * their schedule built one step longer with the penultimate level dropped; ddim re-noises an inpainting run's
 * kept region with noise of its own; sigmas are float32, as ComfyUI's tensors are.
 */
import { NodeInputError } from '@gategraph/core';
import {
  SAMPLER_NAMES,
  createAncestralNoiseGenerator,
  createBrownianTreeNoiseSampler,
  kDiffusionSampling,
  kSamplerInfo,
  scheduleSigmas,
  windowSigmas,
  type KDiffusionSampling,
  type KSamplerDescriptor,
  type NoiseLevels,
  type NoiseSampler,
  type ScheduleName,
} from '@gategraph/diffusion';
import { samplingOf } from './model-sampling.ts';
import type { ModelRef } from './types.ts';

/** The samplers that keep the engine's own scheduler implementation. */
const SCHEDULER_SAMPLERS = new Set<string>(SAMPLER_NAMES);

/** True for the names the engine's one-call-per-step schedulers implement (euler, euler_ancestral, dpmpp_2m, lcm, ddim). */
export function isSchedulerSampler(name: string): boolean {
  return SCHEDULER_SAMPLERS.has(name);
}

/**
 * True when `name` runs through the engine's one-call-per-step schedulers: one of theirs, for a MODEL whose
 * prediction type they know (ModelSamplingDiscrete's x0, img_to_img and lcm run as k-diffusion functions).
 */
export function runsAsScheduler(name: string, model: ModelRef): boolean {
  return SCHEDULER_SAMPLERS.has(name) && samplingOf(model).oneCallSchedulers;
}

/** The MODEL's noise levels (its scheduler config, or its ModelSamplingDiscrete override). */
export function levelsOf(model: ModelRef): NoiseLevels {
  return samplingOf(model).levels;
}

/**
 * ComfyUI's KSampler.calculate_sigmas + set_steps: the schedule for `steps` (one more, dropping the penultimate
 * level, for the samplers that ask for it), and for denoise < 1 the last steps + 1 levels of the schedule of
 * floor(steps / denoise) steps.
 */
export function kSamplerSigmas(schedule: ScheduleName, levels: NoiseLevels, steps: number, denoise: number, discardPenultimate: boolean): number[] {
  const calculate = (n: number) => {
    if (!discardPenultimate) return scheduleSigmas(schedule, levels, n);
    const longer = scheduleSigmas(schedule, levels, n + 1);
    return [...longer.slice(0, -2), longer[longer.length - 1]!];
  };
  if (denoise > 0.9999) return calculate(steps);
  if (denoise <= 0) return [];
  return calculate(Math.floor(steps / denoise)).slice(-(steps + 1));
}

export interface KSamplingRequest {
  descriptor: KSamplerDescriptor;
  /** Noise levels as the sampler will run them (after any window). */
  sigmas: readonly number[];
  model: ModelRef;
  seed: number;
  latentShape: readonly number[];
}

/** A k-diffusion run with ComfyUI's noise for `seed`. */
export function kSamplingFor({ descriptor, sigmas, model, seed, latentShape }: KSamplingRequest): KDiffusionSampling {
  const { levels, prediction } = samplingOf(model);
  const float32 = sigmas.map(Math.fround);
  let noise: NoiseSampler | undefined;
  if (descriptor.brownianNoise) {
    const positive = float32.filter((s) => s > 0);
    // ComfyUI's BrownianTreeNoiseSampler spans the run's own levels: the smallest non-zero and the largest.
    if (positive.length) noise = createBrownianTreeNoiseSampler({ seed, shape: latentShape, sigmaMin: Math.min(...positive), sigmaMax: Math.max(...positive) });
  } else if (descriptor.needsNoise) {
    const generator = createAncestralNoiseGenerator(seed);
    noise = () => generator.randn(latentShape);
  }
  return kDiffusionSampling({
    sampler: descriptor.name,
    run: descriptor.sample,
    sigmas: float32,
    levels,
    predictionType: prediction,
    ...(noise ? { noise } : {}),
    ...(descriptor.randomInpaintNoise ? { inpaintNoise: createAncestralNoiseGenerator(seed).randn(latentShape) } : {}),
    ...(descriptor.cfgPp ? { needsUncond: true } : {}),
  });
}

/** KSampler / KSamplerAdvanced widgets to a k-diffusion run (for names that do not run as schedulers). */
export function kSamplingForKSampler(
  settings: { sampler_name: string; scheduler: ScheduleName; steps: number; denoise: number; seed: number },
  model: ModelRef,
  latentShape: readonly number[],
  window?: { startStep: number; endStep: number; forceFullDenoise: boolean },
): KDiffusionSampling {
  let descriptor: KSamplerDescriptor;
  try {
    descriptor = kSamplerInfo(settings.sampler_name);
  } catch (error) {
    throw new NodeInputError(`sampler_name: ${(error as Error).message}`, 'sampler_name');
  }
  const full = kSamplerSigmas(settings.scheduler, levelsOf(model), settings.steps, settings.denoise, descriptor.discardPenultimateSigma);
  const sigmas = window ? windowSigmas(full, window, settings.sampler_name) : full;
  return kSamplingFor({ descriptor, sigmas, model, seed: settings.seed, latentShape });
}
