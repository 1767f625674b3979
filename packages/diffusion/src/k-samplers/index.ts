/**
 * ComfyUI's sampler list as k-diffusion-style functions: the names in the KSampler's order (comfy/samplers.py
 * KSAMPLER_NAMES, then ddim, uni_pc, uni_pc_bh2 as in SAMPLER_NAMES), a lookup, and what each one asks of the
 * sampling loop (noise, model calls, cfg++, schedule quirks).
 */
import type { SamplerFunction } from './types.ts';
import { sampleEuler, sampleEulerAncestral, sampleEulerAncestralCfgPp, sampleEulerCfgPp } from './euler.ts';
import { sampleHeun, sampleHeunpp2 } from './heun.ts';
import { sampleDpm2, sampleDpm2Ancestral } from './dpm2.ts';
import { sampleLms } from './lms.ts';
import { sampleDpmAdaptive, sampleDpmFast } from './dpm-solver.ts';
import { sampleDpmpp2sAncestral, sampleDpmpp2sAncestralCfgPp } from './dpmpp-2s.ts';
import { sampleDpmppSde } from './dpmpp-sde.ts';
import { sampleDpmpp2m, sampleDpmpp2mCfgPp } from './dpmpp-2m.ts';
import { sampleDpmpp2mSde, sampleDpmpp2mSdeHeun, sampleDpmpp3mSde } from './dpmpp-multistep-sde.ts';
import { sampleDdpm } from './ddpm.ts';
import { sampleLcm } from './lcm.ts';
import { sampleIpndm, sampleIpndmV } from './ipndm.ts';
import { sampleDeis } from './deis.ts';
import { sampleResMultistep, sampleResMultistepAncestral, sampleResMultistepAncestralCfgPp, sampleResMultistepCfgPp } from './res-multistep.ts';
import { sampleGradientEstimation, sampleGradientEstimationCfgPp } from './gradient-estimation.ts';
import { sampleErSde } from './er-sde.ts';
import { sampleExpHeun2X0, sampleExpHeun2X0Sde, sampleSeeds2, sampleSeeds3 } from './seeds.ts';
import { sampleSaSolver, sampleSaSolverPece } from './sa-solver.ts';
import { sampleUniPc, sampleUniPcBh2 } from './uni-pc.ts';

/** ComfyUI's SAMPLER_NAMES, in its order (the KSampler `sampler_name` combo). */
export const K_SAMPLER_NAMES = [
  'euler', 'euler_cfg_pp', 'euler_ancestral', 'euler_ancestral_cfg_pp', 'heun', 'heunpp2', 'exp_heun_2_x0',
  'exp_heun_2_x0_sde', 'dpm_2', 'dpm_2_ancestral', 'lms', 'dpm_fast', 'dpm_adaptive', 'dpmpp_2s_ancestral',
  'dpmpp_2s_ancestral_cfg_pp', 'dpmpp_sde', 'dpmpp_sde_gpu', 'dpmpp_2m', 'dpmpp_2m_cfg_pp', 'dpmpp_2m_sde',
  'dpmpp_2m_sde_gpu', 'dpmpp_2m_sde_heun', 'dpmpp_2m_sde_heun_gpu', 'dpmpp_3m_sde', 'dpmpp_3m_sde_gpu', 'ddpm',
  'lcm', 'ipndm', 'ipndm_v', 'deis', 'res_multistep', 'res_multistep_cfg_pp', 'res_multistep_ancestral',
  'res_multistep_ancestral_cfg_pp', 'gradient_estimation', 'gradient_estimation_cfg_pp', 'er_sde', 'seeds_2',
  'seeds_3', 'sa_solver', 'sa_solver_pece', 'ddim', 'uni_pc', 'uni_pc_bh2',
] as const;

export type KSamplerName = (typeof K_SAMPLER_NAMES)[number];

/** What a sampler asks of the loop that runs it. */
export interface KSamplerDescriptor {
  readonly name: KSamplerName;
  readonly sample: SamplerFunction;
  /** Adds fresh noise during sampling with ComfyUI's default options, so run.noise is required. */
  readonly needsNoise: boolean;
  /**
   * ComfyUI draws that noise from a Brownian tree (BrownianTreeNoiseSampler seeded with the seed) rather than
   * from the seed + 1 generator; the draws depend on (sigma, sigma'), not on their order.
   */
  readonly brownianNoise: boolean;
  /** Model calls per step, for documentation and progress estimates ('variable': the sampler decides). */
  readonly modelCallsPerStep: 1 | 2 | 3 | 'variable';
  /**
   * A cfg++ sampler: it reads the negative prompt's own estimate (Denoised.uncond). ComfyUI runs the negative
   * branch for these even at cfg 1 (disable_cfg1_optimization), so the loop should too.
   */
  readonly cfgPp: boolean;
  /**
   * ComfyUI builds the schedule for steps + 1 and drops the penultimate sigma for this sampler
   * (KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS), so that its last step is not wasted on a tiny interval.
   */
  readonly discardPenultimateSigma: boolean;
  /**
   * Inpainting re-noises the kept region with noise from a fresh seed + 1 generator instead of the initial
   * noise (ComfyUI's inpaint_options "random"): only ddim.
   */
  readonly randomInpaintNoise: boolean;
  /**
   * The sampler chooses its own steps (dpm_fast, dpm_adaptive): it only uses the first and last non-zero
   * sigma, and the `step` of its model calls and reports counts its own steps, not indices into sigmas.
   */
  readonly ownSteps: boolean;
}

type Traits = Omit<KSamplerDescriptor, 'name' | 'sample'>;
const plain: Traits = { needsNoise: false, brownianNoise: false, modelCallsPerStep: 1, cfgPp: false, discardPenultimateSigma: false, randomInpaintNoise: false, ownSteps: false };
const noisy: Traits = { ...plain, needsNoise: true };
const brownian: Traits = { ...plain, needsNoise: true, brownianNoise: true };

function entry(name: KSamplerName, sample: SamplerFunction, traits: Partial<Traits> = {}, base: Traits = plain): KSamplerDescriptor {
  return Object.freeze({ name, sample, ...base, ...traits });
}

/** One descriptor per name, in K_SAMPLER_NAMES order. */
export const K_SAMPLERS: readonly KSamplerDescriptor[] = Object.freeze([
  entry('euler', sampleEuler),
  entry('euler_cfg_pp', sampleEulerCfgPp, { cfgPp: true }),
  entry('euler_ancestral', sampleEulerAncestral, {}, noisy),
  entry('euler_ancestral_cfg_pp', sampleEulerAncestralCfgPp, { cfgPp: true }, noisy),
  entry('heun', sampleHeun, { modelCallsPerStep: 2 }),
  entry('heunpp2', sampleHeunpp2, { modelCallsPerStep: 'variable' }),
  entry('exp_heun_2_x0', sampleExpHeun2X0, { modelCallsPerStep: 2 }),
  entry('exp_heun_2_x0_sde', sampleExpHeun2X0Sde, { modelCallsPerStep: 2 }, noisy),
  entry('dpm_2', sampleDpm2, { modelCallsPerStep: 2, discardPenultimateSigma: true }),
  entry('dpm_2_ancestral', sampleDpm2Ancestral, { modelCallsPerStep: 2, discardPenultimateSigma: true }, noisy),
  entry('lms', sampleLms),
  entry('dpm_fast', sampleDpmFast, { modelCallsPerStep: 'variable', ownSteps: true }),
  entry('dpm_adaptive', sampleDpmAdaptive, { modelCallsPerStep: 'variable', ownSteps: true }),
  entry('dpmpp_2s_ancestral', sampleDpmpp2sAncestral, { modelCallsPerStep: 2 }, noisy),
  entry('dpmpp_2s_ancestral_cfg_pp', sampleDpmpp2sAncestralCfgPp, { modelCallsPerStep: 2, cfgPp: true }, noisy),
  entry('dpmpp_sde', sampleDpmppSde, { modelCallsPerStep: 2 }, brownian),
  // The _gpu variants are the same functions: ComfyUI only builds their Brownian tree on the GPU.
  entry('dpmpp_sde_gpu', sampleDpmppSde, { modelCallsPerStep: 2 }, brownian),
  entry('dpmpp_2m', sampleDpmpp2m),
  entry('dpmpp_2m_cfg_pp', sampleDpmpp2mCfgPp, { cfgPp: true }),
  entry('dpmpp_2m_sde', sampleDpmpp2mSde, {}, brownian),
  entry('dpmpp_2m_sde_gpu', sampleDpmpp2mSde, {}, brownian),
  entry('dpmpp_2m_sde_heun', sampleDpmpp2mSdeHeun, {}, brownian),
  entry('dpmpp_2m_sde_heun_gpu', sampleDpmpp2mSdeHeun, {}, brownian),
  entry('dpmpp_3m_sde', sampleDpmpp3mSde, {}, brownian),
  entry('dpmpp_3m_sde_gpu', sampleDpmpp3mSde, {}, brownian),
  entry('ddpm', sampleDdpm, {}, noisy),
  entry('lcm', sampleLcm, {}, noisy),
  entry('ipndm', sampleIpndm),
  entry('ipndm_v', sampleIpndmV),
  entry('deis', sampleDeis),
  entry('res_multistep', sampleResMultistep),
  entry('res_multistep_cfg_pp', sampleResMultistepCfgPp, { cfgPp: true }),
  entry('res_multistep_ancestral', sampleResMultistepAncestral, {}, noisy),
  entry('res_multistep_ancestral_cfg_pp', sampleResMultistepAncestralCfgPp, { cfgPp: true }, noisy),
  entry('gradient_estimation', sampleGradientEstimation),
  entry('gradient_estimation_cfg_pp', sampleGradientEstimationCfgPp, { cfgPp: true }),
  entry('er_sde', sampleErSde, {}, noisy),
  entry('seeds_2', sampleSeeds2, { modelCallsPerStep: 2 }, noisy),
  entry('seeds_3', sampleSeeds3, { modelCallsPerStep: 3 }, noisy),
  entry('sa_solver', sampleSaSolver, {}, noisy),
  entry('sa_solver_pece', sampleSaSolverPece, { modelCallsPerStep: 2 }, noisy),
  // ComfyUI's ddim is euler whose inpainting re-noise comes from a fresh generator (see randomInpaintNoise).
  entry('ddim', sampleEuler, { randomInpaintNoise: true }),
  entry('uni_pc', sampleUniPc, { discardPenultimateSigma: true }),
  entry('uni_pc_bh2', sampleUniPcBh2, { discardPenultimateSigma: true }),
]);

const BY_NAME = new Map<string, KSamplerDescriptor>(K_SAMPLERS.map((d) => [d.name, d]));

export function isKSamplerName(name: string): name is KSamplerName {
  return BY_NAME.has(name);
}

/** The descriptor of a ComfyUI sampler name; a RangeError listing the valid names for any other. */
export function kSamplerInfo(name: string): KSamplerDescriptor {
  const found = BY_NAME.get(name);
  if (found === undefined) throw new RangeError(`Unknown k-sampler "${name}"; valid sampler names are: ${K_SAMPLER_NAMES.join(', ')}`);
  return found;
}

/** The sampler function of a ComfyUI sampler name; a RangeError listing the valid names for any other. */
export function kSampler(name: string): SamplerFunction {
  return kSamplerInfo(name).sample;
}
