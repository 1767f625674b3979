/**
 * ComfyUI's custom sampling (comfy_extras/nodes_custom_sampler.py): the sampler, the noise levels, the noise
 * and the guidance as separate nodes, joined by SamplerCustom or SamplerCustomAdvanced. Ids, inputs, defaults,
 * categories and outputs are ComfyUI's. Everything runs through the same loop as KSampler (runSampling), so a
 * MODEL's TGATE / DeepCache patches apply here too, counting the steps of the SIGMAS given.
 */
import { boolean, combo, defineNode, float, int, NodeInputError, socket } from '@gategraph/core';
import { K_SAMPLER_NAMES, SCHEDULER_NAMES, karrasSigmas, kSamplerInfo, zeros, type Tensor } from '@gategraph/diffusion';
import { initialNoise, runSampling, SAMPLER_NAME_TOOLTIP, type SamplingJob } from './ksampler.ts';
import { checkSamplerInputs } from '../queue-checks.ts';
import { kSamplerSigmas, kSamplingFor, levelsOf } from '../sampler-choice.ts';
import type { Guider, Latent, NoiseSource, SamplerChoice, Sigmas } from '../types.ts';

const MAX_SEED = Number.MAX_SAFE_INTEGER;
const sigmasOf = (values: readonly number[]): Sigmas => ({ data: Float32Array.from(values), shape: [values.length] });
const valuesOf = (sigmas: Sigmas): number[] => Array.from(sigmas.data);

export const KSamplerSelect = defineNode({
  id: 'KSamplerSelect',
  displayName: 'KSamplerSelect',
  category: 'sampling/custom_sampling/samplers',
  description: 'A sampler of ComfyUI\'s list, for SamplerCustom / SamplerCustomAdvanced.',
  inputs: { sampler_name: combo(K_SAMPLER_NAMES, { tooltip: SAMPLER_NAME_TOOLTIP }) },
  outputs: [{ type: 'SAMPLER', name: 'SAMPLER' }],
  execute({ sampler_name }) {
    kSamplerInfo(sampler_name);
    const choice: SamplerChoice = { name: sampler_name };
    return [choice];
  },
});

export const BasicScheduler = defineNode({
  id: 'BasicScheduler',
  displayName: 'BasicScheduler',
  category: 'sampling/custom_sampling/schedulers',
  description: 'The noise levels of a scheduler for the model, as KSampler builds them: steps + 1 levels; below denoise 1, the last part of a longer schedule.',
  inputs: {
    model: socket('MODEL'),
    scheduler: combo(SCHEDULER_NAMES, { tooltip: 'How the noise levels are spaced over the steps.' }),
    steps: int({ default: 20, min: 1, max: 10000, tooltip: 'Number of steps.' }),
    denoise: float({ default: 1.0, min: 0.0, max: 1.0, step: 0.01, tooltip: '1 starts from pure noise; lower starts part-way down (image-to-image).' }),
  },
  outputs: [{ type: 'SIGMAS', name: 'SIGMAS' }],
  execute({ model, scheduler, steps, denoise }) {
    return [sigmasOf(kSamplerSigmas(scheduler, levelsOf(model), steps, denoise, false).map(Math.fround))];
  },
});

const sigmaInput = (value: number, tooltip: string) => float({ default: value, min: 0.0, max: 5000.0, step: 0.01, round: false, tooltip });

export const KarrasScheduler = defineNode({
  id: 'KarrasScheduler',
  displayName: 'KarrasScheduler',
  category: 'sampling/custom_sampling/schedulers',
  description: 'Karras et al.\'s noise levels between sigma_max and sigma_min (rho 7 spaces them like the karras scheduler), then 0.',
  inputs: {
    steps: int({ default: 20, min: 1, max: 10000, tooltip: 'Number of steps.' }),
    sigma_max: sigmaInput(14.614642, 'The first noise level (SD-1.x: 14.6146).'),
    sigma_min: sigmaInput(0.0291675, 'The last noise level before 0 (SD-1.x: 0.0292).'),
    rho: float({ default: 7.0, min: 0.0, max: 100.0, step: 0.01, round: false, tooltip: 'Higher spends more steps at low noise.' }),
  },
  outputs: [{ type: 'SIGMAS', name: 'SIGMAS' }],
  execute({ steps, sigma_max, sigma_min, rho }) {
    return [sigmasOf(karrasSigmas(steps, sigma_min, sigma_max, rho).map(Math.fround))];
  },
});

export const ExponentialScheduler = defineNode({
  id: 'ExponentialScheduler',
  displayName: 'ExponentialScheduler',
  category: 'sampling/custom_sampling/schedulers',
  description: 'Noise levels evenly spaced in log sigma from sigma_max to sigma_min, then 0.',
  inputs: {
    steps: int({ default: 20, min: 1, max: 10000, tooltip: 'Number of steps.' }),
    sigma_max: sigmaInput(14.614642, 'The first noise level.'),
    sigma_min: sigmaInput(0.0291675, 'The last noise level before 0.'),
  },
  outputs: [{ type: 'SIGMAS', name: 'SIGMAS' }],
  execute({ steps, sigma_max, sigma_min }) {
    const [a, b] = [Math.log(sigma_max), Math.log(sigma_min)];
    const values = Array.from({ length: steps }, (_, i) => Math.exp(steps === 1 ? a : a + ((b - a) * i) / (steps - 1)));
    return [sigmasOf([...values, 0].map(Math.fround))];
  },
});

export const SplitSigmas = defineNode({
  id: 'SplitSigmas',
  displayName: 'SplitSigmas',
  category: 'sampling/custom_sampling/sigmas',
  description: 'Cuts the noise levels at a step: high_sigmas are levels 0..step, low_sigmas step..end (they share the level at the cut), for two-stage sampling.',
  inputs: {
    sigmas: socket('SIGMAS'),
    step: int({ default: 0, min: 0, max: 10000, tooltip: 'The step to cut at.' }),
  },
  outputs: [
    { type: 'SIGMAS', name: 'high_sigmas' },
    { type: 'SIGMAS', name: 'low_sigmas' },
  ],
  execute({ sigmas, step }) {
    const values = valuesOf(sigmas);
    return [sigmasOf(values.slice(0, step + 1)), sigmasOf(values.slice(step))];
  },
});

export const FlipSigmas = defineNode({
  id: 'FlipSigmas',
  displayName: 'FlipSigmas',
  category: 'sampling/custom_sampling/sigmas',
  description: 'The noise levels in reverse order (from low to high: sampling "up", to invert an image into noise); a first level of 0 becomes 0.0001.',
  inputs: { sigmas: socket('SIGMAS') },
  outputs: [{ type: 'SIGMAS', name: 'SIGMAS' }],
  execute({ sigmas }) {
    const values = valuesOf(sigmas).reverse();
    if (values[0] === 0) values[0] = 0.0001;
    return [sigmasOf(values.map(Math.fround))];
  },
});

class SeededNoise implements NoiseSource {
  constructor(readonly seed: number) {}
  generate(shape: readonly number[], batchIndex: readonly number[] | undefined): Tensor {
    return initialNoise(this.seed, shape, batchIndex);
  }
}

/** No starting noise; the seed still seeds the step noise of stochastic samplers (DisableNoise's is 0, as ComfyUI's). */
class NoNoise implements NoiseSource {
  constructor(readonly seed = 0) {}
  generate(shape: readonly number[]): Tensor {
    return zeros(shape);
  }
}

export const RandomNoise = defineNode({
  id: 'RandomNoise',
  displayName: 'RandomNoise',
  category: 'sampling/custom_sampling/noise',
  description: 'The starting noise of a seed (the same as KSampler\'s for that seed); stochastic samplers draw their step noise from it too.',
  inputs: {
    noise_seed: int({ default: 0, min: 0, max: MAX_SEED, controlAfterGenerate: true, tooltip: 'The seed. At most 2^53 - 1: a JSON workflow cannot carry larger integers exactly.' }),
  },
  outputs: [{ type: 'NOISE', name: 'NOISE' }],
  execute({ noise_seed }) {
    const noise: NoiseSource = new SeededNoise(noise_seed);
    return [noise];
  },
});

export const DisableNoise = defineNode({
  id: 'DisableNoise',
  displayName: 'DisableNoise',
  category: 'sampling/custom_sampling/noise',
  description: 'No starting noise: the sampler continues from the latent as it is (a previous stage\'s leftover noise).',
  inputs: {},
  outputs: [{ type: 'NOISE', name: 'NOISE' }],
  execute() {
    const noise: NoiseSource = new NoNoise();
    return [noise];
  },
});

const cfgInput = (tooltip: string) => float({ default: 8.0, min: 0.0, max: 100.0, step: 0.1, round: 0.01, tooltip });

export const CFGGuider = defineNode({
  id: 'CFGGuider',
  displayName: 'CFGGuider',
  category: 'sampling/custom_sampling/guiders',
  description: 'Classifier-free guidance of the model by a positive and a negative conditioning, as KSampler guides.',
  inputs: {
    model: socket('MODEL'),
    positive: socket('CONDITIONING'),
    negative: socket('CONDITIONING'),
    cfg: cfgInput('How strongly the image follows the prompt; 1 turns guidance off.'),
  },
  outputs: [{ type: 'GUIDER', name: 'GUIDER' }],
  execute({ model, positive, negative, cfg }) {
    const guider: Guider = { model, positive, negative, cfg };
    return [guider];
  },
});

export const BasicGuider = defineNode({
  id: 'BasicGuider',
  displayName: 'BasicGuider',
  category: 'sampling/custom_sampling/guiders',
  description: 'The model with one conditioning and no negative (cfg 1): for guidance-distilled models.',
  inputs: {
    model: socket('MODEL'),
    conditioning: socket('CONDITIONING'),
  },
  outputs: [{ type: 'GUIDER', name: 'GUIDER' }],
  execute({ model, conditioning }) {
    const guider: Guider = { model, positive: conditioning, cfg: 1 };
    return [guider];
  },
});

export const DualCFGGuider = defineNode({
  id: 'DualCFGGuider',
  displayName: 'DualCFGGuider',
  category: 'sampling/custom_sampling/guiders',
  description:
    'Guidance by two prompts and a negative: regular = negative + cfg_cond2_negative (cond2 - negative) + cfg_conds (cond1 - cond2); ' +
    'nested = negative + cfg_cond2_negative ((cond2 + cfg_conds (cond1 - cond2)) - negative). Three UNet passes per call; ' +
    'TGATE and DeepCache keep a cache per prompt and keep all three passes after the gate.',
  inputs: {
    model: socket('MODEL'),
    cond1: socket('CONDITIONING', { tooltip: 'The main prompt.' }),
    cond2: socket('CONDITIONING', { tooltip: 'The second prompt, between the negative and cond1.' }),
    negative: socket('CONDITIONING'),
    cfg_conds: cfgInput('Guidance of cond1 against cond2.'),
    cfg_cond2_negative: cfgInput('Guidance of cond2 against the negative.'),
    style: combo(['regular', 'nested'] as const, { tooltip: 'How the three predictions mix (see the description).' }),
  },
  outputs: [{ type: 'GUIDER', name: 'GUIDER' }],
  execute({ model, cond1, cond2, negative, cfg_conds, cfg_cond2_negative, style }) {
    const guider: Guider = {
      model,
      positive: cond1,
      negative,
      cfg: cfg_conds,
      dual: { middle: cond2, cfgConds: cfg_conds, cfgCond2Negative: cfg_cond2_negative, nested: style === 'nested' },
    };
    return [guider];
  },
});

/** The job of a custom sampling node: the given noise levels and sampler, the guider's prompts. */
function customJob(guider: Guider, noise: NoiseSource, sampler: SamplerChoice, sigmas: Sigmas, latent: Latent): SamplingJob {
  const descriptor = kSamplerInfo(sampler.name);
  const values = valuesOf(sigmas);
  for (let i = 1; i < values.length; i++) {
    if (!Number.isFinite(values[i]!) || values[i]! < 0) throw new NodeInputError(`sigmas: level ${i} is ${values[i]}; noise levels are numbers >= 0`, 'sigmas');
  }
  return {
    model: guider.model,
    positive: guider.positive,
    ...(guider.negative ? { negative: guider.negative } : {}),
    ...(guider.dual ? { dual: guider.dual } : {}),
    cfg: guider.cfg,
    latent,
    seed: noise.seed,
    cfgPp: descriptor.cfgPp,
    keepDenoised: true,
    sampling: (shape) => kSamplingFor({ descriptor, sigmas: values, model: guider.model, seed: noise.seed, latentShape: shape }),
    noise: (shape, batchIndex) => noise.generate(shape, batchIndex),
  };
}

const LATENT_OUTPUTS = [
  { type: 'LATENT', name: 'output', tooltip: 'The latent after the last level.' },
  { type: 'LATENT', name: 'denoised_output', tooltip: 'The model\'s estimate of the clean latent at the last step (the same as output when the run ends at 0).' },
] as const;

export const SamplerCustom = defineNode({
  id: 'SamplerCustom',
  displayName: 'SamplerCustom',
  category: 'sampling/custom_sampling',
  description: 'KSampler with its parts given separately: a SAMPLER (KSamplerSelect) and the noise levels (a scheduler node, SplitSigmas, ...).',
  inputs: {
    model: socket('MODEL'),
    add_noise: boolean({ default: true, tooltip: 'Off: start from the latent as it is (a previous stage\'s leftover noise).' }),
    noise_seed: int({ default: 0, min: 0, max: MAX_SEED, controlAfterGenerate: true, tooltip: 'Seed of the starting noise and of the step noise.' }),
    cfg: cfgInput('Classifier-free guidance; 1 turns it off.'),
    positive: socket('CONDITIONING'),
    negative: socket('CONDITIONING'),
    sampler: socket('SAMPLER'),
    sigmas: socket('SIGMAS'),
    latent_image: socket('LATENT'),
  },
  outputs: [...LATENT_OUTPUTS],
  validate(inputs, context) {
    return checkSamplerInputs(inputs.cfg, context);
  },
  async execute({ model, add_noise, noise_seed, cfg, positive, negative, sampler, sigmas, latent_image }, ctx) {
    const noise: NoiseSource = add_noise ? new SeededNoise(noise_seed) : new NoNoise(noise_seed);
    const outcome = await runSampling(customJob({ model, positive, negative, cfg }, noise, sampler, sigmas, latent_image), ctx);
    return [outcome.latent, outcome.denoised ?? outcome.latent];
  },
});

export const SamplerCustomAdvanced = defineNode({
  id: 'SamplerCustomAdvanced',
  displayName: 'SamplerCustomAdvanced',
  category: 'sampling/custom_sampling',
  description: 'Sampling from its four parts: NOISE (RandomNoise / DisableNoise), GUIDER (CFGGuider, BasicGuider, DualCFGGuider), SAMPLER and SIGMAS.',
  inputs: {
    noise: socket('NOISE'),
    guider: socket('GUIDER'),
    sampler: socket('SAMPLER'),
    sigmas: socket('SIGMAS'),
    latent_image: socket('LATENT'),
  },
  outputs: [...LATENT_OUTPUTS],
  async execute({ noise, guider, sampler, sigmas, latent_image }, ctx) {
    const outcome = await runSampling(customJob(guider, noise, sampler, sigmas, latent_image), ctx);
    return [outcome.latent, outcome.denoised ?? outcome.latent];
  },
});

export const customSamplingNodes = [
  SamplerCustom,
  SamplerCustomAdvanced,
  KSamplerSelect,
  BasicScheduler,
  KarrasScheduler,
  ExponentialScheduler,
  SplitSigmas,
  FlipSigmas,
  RandomNoise,
  DisableNoise,
  CFGGuider,
  BasicGuider,
  DualCFGGuider,
] as const;
