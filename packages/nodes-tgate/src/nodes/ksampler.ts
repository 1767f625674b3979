import { combo, defineNode, float, int, InterruptedError, NodeInputError, socket, type ExecutionContext } from '@gategraph/core';
import {
  K_SAMPLER_NAMES,
  SCHEDULER_NAMES,
  SamplingInterruptedError,
  OnnxUnetRunner,
  assertScheduleName,
  isKDiffusionSampling,
  isKSamplerName,
  kSamplerInfo,
  type KDiffusionSampling,
  type ScheduleName,
  createAncestralNoiseGenerator,
  createNoiseGenerator,
  encodePng,
  latentPreviewRgb,
  previewMapFor,
  sample,
  schedulerForKSampler,
  type LatentRgbMap,
  type Scheduler,
  type DiffusionModel,
  type SamplingWrappers,
  type Tensor,
  concatBatch,
  concatChannels,
  guidanceScaleEmbedding,
  resizeBilinear,
  zeros,
} from '@gategraph/diffusion';
import { addedConditioningFor, checkSamplingSize, conditioningFor, latentSamplesFor } from '../latent.ts';
import { isPatchError, samplingWrappersFor } from '../patches.ts';
import { needsRegions, regionsFor } from '../conditioning-regions.ts';
import { isSchedulerSampler, kSamplingForKSampler, levelsOf, runsAsScheduler } from '../sampler-choice.ts';
import { samplingOf, stepPatches } from '../model-sampling.ts';

/** The sampler_name combo's tooltip, shared by every node that has one. */
export const SAMPLER_NAME_TOOLTIP =
  "The update rule, ComfyUI's list. Ancestral, SDE and lcm samplers add fresh noise from the seed at each step (the SDE ones from a Brownian tree, " +
  'as ComfyUI); heun, dpm_2 and the 2s / sde samplers call the model twice per step; the cfg_pp ones need cfg about 1-2; ' +
  "dpm_fast and dpm_adaptive choose their own steps. lcm is meant for LCM-distilled models (few steps, low cfg, sgm_uniform).";
import { checkSamplerInputs } from '../queue-checks.ts';
import type { Conditioning, Latent, ModelRef } from '../types.ts';

/**
 * Latent previews are for a person watching: at most one per PREVIEW_INTERVAL_MS. Built every step, they cost
 * 7 % of the sampling time on the embedded model, whose step takes about 10 ms (bench/previews.ts: ~0.25 ms to
 * encode a 16x16 PNG, plus the frame); on SD-size models a step takes a second or more and every step still gets
 * one. The first step always does.
 */
export const PREVIEW_INTERVAL_MS = 100;

/** A gate that opens at most once per `intervalMs` (first call: open). */
export function previewPacer(intervalMs = PREVIEW_INTERVAL_MS, now: () => number = () => performance.now()): () => boolean {
  let last = -Infinity;
  return () => {
    const t = now();
    if (t - last < intervalMs) return false;
    last = t;
    return true;
  };
}

/** The largest seed a workflow can carry exactly: JSON numbers are doubles (ComfyUI's own limit is 2^64 - 1). */
const MAX_SEED = Number.MAX_SAFE_INTEGER;

export interface SamplerSettings {
  model: ModelRef;
  seed: number;
  steps: number;
  cfg: number;
  sampler_name: string;
  scheduler: string;
  positive: Conditioning;
  negative: Conditioning;
  latent_image: Latent;
  denoise: number;
  /** KSamplerAdvanced: false starts from the latent as it is (a previous stage's leftover noise). Default true. */
  addNoise?: boolean;
  /** KSamplerAdvanced: run steps [startStep, endStep) of the `steps` schedule (see windowSigmas). */
  window?: { startStep: number; endStep: number; forceFullDenoise: boolean };
}

/**
 * ComfyUI's prepare_noise: one draw of the latent's shape from a generator seeded with `seed`; with a
 * `batch_index` (latents picked out of a bigger batch), item i gets the noise the i-th item of the full batch
 * would have had, so a picked image re-samples to the same picture.
 */
export function initialNoise(seed: number, shape: readonly number[], batchIndex: readonly number[] | undefined): Tensor {
  const generator = createNoiseGenerator(seed);
  if (!batchIndex) return generator.randn(shape);
  const [, ...item] = shape;
  const per = item.reduce((a, b) => a * b, 1);
  const wanted = [...new Set(batchIndex)].sort((a, b) => a - b);
  const draws = new Map<number, Float32Array>();
  for (let i = 0; i <= wanted[wanted.length - 1]!; i++) {
    const draw = generator.randn([1, ...item]).data;
    if (wanted.includes(i)) draws.set(i, draw);
  }
  const data = new Float32Array(batchIndex.length * per);
  batchIndex.forEach((index, b) => data.set(draws.get(index)!, b * per));
  return { data, shape: [...shape] };
}

/**
 * The engine's scheduler for the samplers it had first, ComfyUI's k-diffusion function for the others (and for
 * all of them when the MODEL's prediction type is one the schedulers do not know: model-sampling.ts).
 */
function samplingFor(settings: SamplerSettings, model: ModelRef, latentShape: readonly number[]): Scheduler | KDiffusionSampling {
  // Validation rejects names outside the combos; these checks are for values that bypass it (API callers,
  // links from other nodes), with the engine's message listing the valid names.
  if (!isSchedulerSampler(settings.sampler_name) && !isKSamplerName(settings.sampler_name)) {
    throw new NodeInputError(`sampler_name: unknown sampler "${settings.sampler_name}"; valid sampler names are: ${K_SAMPLER_NAMES.join(', ')}`, 'sampler_name');
  }
  let schedule: ScheduleName;
  try {
    schedule = assertScheduleName(settings.scheduler);
  } catch (error) {
    throw new NodeInputError(`scheduler: ${(error as Error).message}`, 'scheduler');
  }
  try {
    if (!runsAsScheduler(settings.sampler_name, model)) return kSamplingForKSampler({ ...settings, scheduler: schedule }, model, latentShape, settings.window);
    return schedulerForKSampler(settings, { ...samplingOf(model).config }, settings.window);
  } catch (error) {
    if (error instanceof NodeInputError) throw error;
    throw new NodeInputError(`${settings.sampler_name}/${settings.scheduler} with ${settings.steps} steps, denoise ${settings.denoise}: ${(error as Error).message}`);
  }
}

/**
 * The noise mask (the latent's, resized to it) and, for an inpainting UNet, its extra input channels, as
 * ComfyUI's concat_cond builds them: the mask (the conditioning's concat_mask, else the latent's noise mask,
 * rounded) and the masked image's latent (the conditioning's, else the latent itself); with no mask at all,
 * a mask of ones and ComfyUI's latent of a blank image.
 */
function inpaintingInputs(latent: Latent, positive: Conditioning, negative: Conditioning, model: DiffusionModel, samples: Tensor): { denoiseMask?: Tensor; concatLatent?: Tensor } {
  const [B, C, h, w] = samples.shape as [number, number, number, number];
  const noiseMask = latent.noise_mask;
  const denoiseMask = noiseMask ? resizeBilinear(noiseMask, h, w) : undefined;
  const extra = model.io.unet.sampleChannels - model.io.unet.latentChannels;
  if (extra === 0) return denoiseMask ? { denoiseMask } : {};
  if (extra !== 1 + C) {
    throw new NodeInputError(`model: its UNet takes ${extra} channels beside the latent; this engine knows inpainting UNets (mask + masked-image latent: ${1 + C})`, 'model');
  }
  const entry = positive[0] ?? negative[0];
  const concatMask = entry?.concatMask ? resizeBilinear(entry.concatMask, h, w) : denoiseMask;
  let mask: Tensor;
  let image: Tensor;
  if (concatMask) {
    mask = { data: concatMask.data.map((v) => Math.round(v)), shape: concatMask.shape };
    image = entry?.concatLatentImage ?? samples;
    if (image.shape[2] !== h || image.shape[3] !== w) {
      throw new NodeInputError(`positive: its inpainting image is ${image.shape[3]}x${image.shape[2]} latent cells but the latent is ${w}x${h}: use the same image size`, 'positive');
    }
  } else {
    mask = { data: new Float32Array(h * w).fill(1), shape: [1, 1, h, w] };
    image = { data: new Float32Array(C * h * w), shape: [1, C, h, w] };
    BLANK_INPAINT_LATENT.forEach((v, c) => image.data.fill(v, c * h * w, (c + 1) * h * w));
  }
  // One mask channel then the image's channels, per item (ComfyUI's concat_keys order: mask, masked_image).
  const parts = Array.from({ length: B }, (_, b) => concatChannels(itemOf(mask, b), itemOf(image, b)));
  return { ...(denoiseMask ? { denoiseMask } : {}), concatLatent: concatBatch(parts) };
}

/** Item `b` of a batch as a batch of one, items repeating when the batch is shorter (a mask for every image). */
function itemOf(t: Tensor, b: number): Tensor {
  const n = t.shape[0]!;
  const per = t.data.length / n;
  return { data: t.data.subarray((b % n) * per, ((b % n) + 1) * per), shape: [1, ...t.shape.slice(1)] };
}

/** ComfyUI's blank_inpaint_image_like: an all-black image's SD latent, per channel. */
const BLANK_INPAINT_LATENT = [0.8223, -0.6876, 0.6364, 0.138];

/** What a node running the sampler adds beyond its MODEL's patches. */
export interface RunSamplerOptions {
  /** Wrappers chained outside the patches' (GateAdvisor's attention probe), the first outermost. */
  wrappers?: readonly SamplingWrappers[];
}

/** A PatchError, from planning or from preparing a wrapper, is the user's error on the `model` input. */
function asModelInputError(error: unknown): unknown {
  return isPatchError(error) ? new NodeInputError(`model: ${error.message}`, 'model') : error;
}

/** What KSampler does (exported for sampler nodes to come): checks, noise, patches, the engine's loop with progress and previews. */
export async function runSampler(settings: SamplerSettings, ctx: ExecutionContext, options: RunSamplerOptions = {}): Promise<Latent> {
  const { latent } = await runSampling(
    {
      model: settings.model,
      positive: settings.positive,
      negative: settings.negative,
      cfg: settings.cfg,
      latent: settings.latent_image,
      seed: settings.seed,
      cfgPp: isKSamplerName(settings.sampler_name) && kSamplerInfo(settings.sampler_name).cfgPp,
      sampling: (shape) => samplingFor(settings, settings.model, shape),
      // add_noise off: ComfyUI samples from zero noise, i.e. from the latent as it is.
      noise: (shape, batchIndex) => (settings.addNoise === false ? zeros(shape) : initialNoise(settings.seed, shape, batchIndex)),
    },
    ctx,
    options,
  );
  return latent;
}

/** One sampling run, whatever node asks for it: KSampler's widgets, or SamplerCustom's SAMPLER / SIGMAS / NOISE / GUIDER. */
export interface SamplingJob {
  model: ModelRef;
  positive: Conditioning;
  /** Absent for BasicGuider (the positive prompt alone, cfg 1). */
  negative?: Conditioning;
  /** DualCFGGuider: its cond2 and how the three prompts mix; `cfg` is then unused. */
  dual?: { middle: Conditioning; cfgConds: number; cfgCond2Negative: number; nested: boolean };
  cfg: number;
  latent: Latent;
  /** Seeds the step noise of the engine's own stochastic schedulers (k-diffusion runs carry theirs). */
  seed: number;
  /** A cfg++ sampler: the negative prompt runs even at cfg 1. */
  cfgPp?: boolean;
  /** The node returns the last step's clean-latent estimate (SamplerCustom's denoised_output). */
  keepDenoised?: boolean;
  /** The scheduler or k-diffusion run, for the latent's shape at the model's size. */
  sampling(latentShape: readonly number[]): Scheduler | KDiffusionSampling;
  /** The starting noise for that shape (zeros when none is added). */
  noise(latentShape: readonly number[], batchIndex: readonly number[] | undefined): Tensor;
}

/** What runSampling returns: the final latent and, when the run had steps, the last step's clean-latent estimate. */
export interface SamplingOutcome {
  latent: Latent;
  /** ComfyUI's denoised_output: the model's estimate of the clean latent at the last step. */
  denoised?: Latent;
}

/** Checks, patches, previews and the engine's loop for one job. */
export async function runSampling(job: SamplingJob, ctx: ExecutionContext, options: RunSamplerOptions = {}): Promise<SamplingOutcome> {
  const model = job.model.model;
  const latent = job.latent;
  const samples = latentSamplesFor(latent, model, 'latent_image');
  const keepIndex = latent.batch_index ? { batch_index: latent.batch_index } : {};
  // An LCM UNet has guidance distilled in: cfg goes in as its timestep_cond embedding and each step is one
  // pass with the prompt (diffusers' LatentConsistencyModelPipeline), never a [uncond, cond] batch.
  const lcmUnet = model.io.unet.timestepCond;
  const cfg = lcmUnet || job.dual || !job.negative ? 1 : job.cfg;
  const cfgRows = job.dual ? 3 : cfg === 1 && !(job.cfgPp && job.negative) ? 1 : 2;
  checkSamplingSize(model, samples, cfgRows, 'latent_image');
  const positive = conditioningFor(job.positive, model, 'positive');
  const negative = job.negative ? conditioningFor(job.negative, model, 'negative') : undefined;
  const addedPositive = addedConditioningFor(job.positive, model, 'positive', samples.shape);
  const addedNegative = job.negative ? addedConditioningFor(job.negative, model, 'negative', samples.shape) : undefined;
  const usedNegative = cfg === 1 && !job.cfgPp && !job.dual ? undefined : job.negative;
  let regions = job.dual || needsRegions(job.positive, usedNegative) ? regionsFor(job.positive, usedNegative, model, samples.shape, levelsOf(job.model)) : undefined;
  if (job.dual) {
    const middle = regionsFor(job.dual.middle, undefined, model, samples.shape, levelsOf(job.model)).positive;
    regions = { ...regions!, dual: { middle, cfgConds: job.dual.cfgConds, cfgCond2Negative: job.dual.cfgCond2Negative, nested: job.dual.nested } };
  }
  const scheduler = job.sampling(samples.shape);
  const total = scheduler.timesteps.length;
  // ModelSamplingDiscrete's patch is read by the schedule above; the others wrap the run and count its steps.
  const patches = stepPatches(job.model);
  if (isKDiffusionSampling(scheduler) && patches.length && isKSamplerName(scheduler.sampler) && kSamplerInfo(scheduler.sampler).ownSteps) {
    throw new NodeInputError(
      `sampler_name: ${scheduler.sampler} chooses its own steps, and the MODEL's patches (TGATE, DeepCache) count the schedule's steps: pick another sampler for a patched model`,
      'sampler_name',
    );
  }
  // denoise 0, a window starting at or past the end (or a schedule with no step): nothing to do, the latent
  // comes back as it was (as in ComfyUI).
  if (total === 0) return { latent: { samples, ...keepIndex } };

  let patched: SamplingWrappers[];
  try {
    patched = await samplingWrappersFor(patches, {
      model,
      steps: total,
      cfg,
      scheduler,
      latentShape: samples.shape,
      hasNegative: negative !== undefined,
      log: ctx.log,
      signal: ctx.signal,
    });
  } catch (error) {
    throw asModelInputError(error);
  }
  const wrappers = [...(options.wrappers ?? []), ...patched];

  // Previews are a convenience: a model whose VAE cannot be fitted still samples, without them.
  let previewMap: LatentRgbMap | undefined;
  try {
    previewMap = await previewMapFor(model);
  } catch (error) {
    ctx.log.debug(`no latent previews for ${model.name}: ${(error as Error).message}`);
  }

  const previewDue = previewPacer();
  let lastDenoised: Tensor | undefined;
  try {
    const result = await sample({
      unet: OnnxUnetRunner.forModel(model),
      scheduler,
      positive,
      ...(negative ? { negative } : {}),
      ...(regions ? { regions } : {}),
      cfg,
      latent: samples,
      ...inpaintingInputs(latent, job.positive, job.negative ?? [], model, samples),
      ...(lcmUnet ? { timestepCond: guidanceScaleEmbedding(job.cfg, lcmUnet.dim) } : {}),
      ...(addedPositive ? { added: { positive: addedPositive, ...(addedNegative ? { negative: addedNegative } : {}) } } : {}),
      noise: job.noise(samples.shape, latent.batch_index),
      ...(!isKDiffusionSampling(scheduler) && scheduler.stochastic ? { stepNoise: createAncestralNoiseGenerator(job.seed) } : {}),
      ...(wrappers.length ? { wrappers } : {}),
      // The estimate of each step is computed for previews, and for denoised_output when the node returns it.
      previews: previewMap !== undefined || job.keepDenoised === true,
      signal: ctx.signal,
      onProgress(step, steps, preview) {
        lastDenoised = preview;
        // ctx.progress throws InterruptedError once the user interrupted: sampling stops at this step.
        const image = preview && previewMap && previewDue() ? { format: 'PNG' as const, data: encodePng(latentPreviewRgb(preview, previewMap)) } : undefined;
        ctx.progress(step, steps, image);
      },
    });
    return { latent: { samples: result.latent, ...keepIndex }, ...(lastDenoised ? { denoised: { samples: lastDenoised, ...keepIndex } } : {}) };
  } catch (error) {
    if (error instanceof SamplingInterruptedError) throw new InterruptedError(error.message);
    throw asModelInputError(error);
  }
}

export const KSampler = defineNode({
  id: 'KSampler',
  displayName: 'KSampler',
  category: 'sampling',
  description:
    'Denoises a latent with the model, guided by the positive and negative conditioning. Applies the patches its MODEL carries (TGATE, DeepCache).',
  inputs: {
    model: socket('MODEL', { tooltip: 'The model to denoise with (with any patches added by TGATE / DeepCache nodes).' }),
    seed: int({
      default: 0,
      min: 0,
      max: MAX_SEED,
      controlAfterGenerate: true,
      tooltip:
        'Seed of the starting noise; the same seed gives the same image. At most 2^53 - 1 (9007199254740991): a JSON workflow cannot carry larger integers exactly.',
    }),
    steps: int({ default: 20, min: 1, max: 10000, tooltip: 'Number of denoising steps.' }),
    cfg: float({
      default: 8.0,
      min: 0.0,
      max: 100.0,
      step: 0.1,
      round: 0.01,
      tooltip:
        'Classifier-free guidance: how strongly the image follows the prompt. 1 turns guidance off (one UNet pass per step). For an LCM UNet (one with timestep_cond) it is the distilled guidance scale the UNet takes (LCM models: about 8), and every step is one pass.',
    }),
    sampler_name: combo(K_SAMPLER_NAMES, { tooltip: SAMPLER_NAME_TOOLTIP }),
    scheduler: combo(SCHEDULER_NAMES, { tooltip: 'How the noise levels are spaced over the steps.' }),
    positive: socket('CONDITIONING', { tooltip: 'What the image should show.' }),
    negative: socket('CONDITIONING', { tooltip: 'What the image should avoid (an empty prompt is the usual default).' }),
    latent_image: socket('LATENT', { tooltip: 'The latent to denoise: an EmptyLatentImage for text-to-image, a VAEEncode for image-to-image.' }),
    denoise: float({
      default: 1.0,
      min: 0.0,
      max: 1.0,
      step: 0.01,
      tooltip: 'How much of the schedule to run: 1 starts from pure noise; lower keeps more of the input latent.',
    }),
  },
  outputs: [{ type: 'LATENT', name: 'LATENT', tooltip: 'The denoised latent.' }],
  // Sizes the model cannot take are refused when the prompt is queued (see queue-checks.ts).
  validate(inputs, context) {
    return checkSamplerInputs(inputs.cfg, context);
  },
  async execute(inputs, ctx) {
    return [await runSampler(inputs, ctx)];
  },
});
