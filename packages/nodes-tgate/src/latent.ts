/**
 * Checking a LATENT (and the CONDITIONING) against the model that is about to use it, with messages that name
 * the input and say what to change. Shared by KSampler, VAEDecode and VAEEncode, and by the samplers' validation
 * (samplingSizeProblem), so a size is refused with the same words when queued and when run.
 */
import { NodeInputError } from '@gategraph/core';
import { DEFAULT_AESTHETIC_SCORE, defaultSdxlSizes, sdxlRefinerTimeIds, sdxlTimeIds, zeros, type AddedConditioning, type DiffusionModel, type Tensor } from '@gategraph/diffusion';
import type { Conditioning, ConditioningEntry, Latent } from './types.ts';
import { activationLimit, estimateUnetBytes, estimateVaeDecodeBytes, formatBytes, largestSquareSide } from './memory.ts';
import { sizingOf, trainedSize, type ModelSizing, type SizedModel } from './sizing.ts';

/** ComfyUI's MAX_RESOLUTION: the widgets' maximum width/height. */
export const MAX_RESOLUTION = 16384;

/** Nearest sizes divisible by `f` around `v` (for "use 56 or 64"). */
function neighbours(v: number, f: number): string {
  const down = Math.max(f, Math.floor(v / f) * f);
  const up = Math.ceil(v / f) * f;
  return down === up ? String(down) : `${down} or ${up}`;
}

/** " (tiny-sd was trained at 64x64)", or nothing when its config does not say. */
function trainedAt(sizing: ModelSizing): string {
  const side = trainedSize(sizing);
  return side ? ` (${sizing.name} was trained at ${side}x${side})` : '';
}

/** An image size the VAE cannot map to latent cells: width and height must divide by its pixels per cell. */
export function factorProblem(sizing: ModelSizing, width: number, height: number, input: string): string | undefined {
  const f = sizing.scaleFactor;
  if (width % f === 0 && height % f === 0) return undefined;
  return (
    `${input} is an empty ${width}x${height} latent, but ${sizing.name}'s VAE works in blocks of ${f} pixels, so width and height must be multiples of ${f}: ` +
    `set the EmptyLatentImage to ${neighbours(width, f)} wide and ${neighbours(height, f)} high`
  );
}

/** A size the UNet graph cannot take (exported for one size only). */
export function unetSizeProblem(sizing: ModelSizing, width: number, height: number, input: string): string | undefined {
  const fixed = sizing.fixedLatentSize;
  const f = sizing.scaleFactor;
  if (!fixed || (fixed[0] * f === height && fixed[1] * f === width)) return undefined;
  return (
    `${input} is ${width}x${height} pixels (latent ${width / f}x${height / f}), but ${sizing.name}'s UNet was exported for ${fixed[1] * f}x${fixed[0] * f} pixels only: ` +
    `set the EmptyLatentImage to width ${fixed[1] * f}, height ${fixed[0] * f}`
  );
}

/** A UNet call whose activations would not fit the memory limit; the message gives the largest size that fits. */
export function unetMemoryProblem(
  sizing: ModelSizing,
  image: { width: number; height: number; batch: number },
  cfgRows: number,
  input: string,
): string | undefined {
  const { width, height, batch } = image;
  const f = sizing.scaleFactor;
  const limit = activationLimit();
  const need = estimateUnetBytes(sizing, batch * cfgRows, height / f, width / f);
  if (need <= limit.bytes) return undefined;
  const head =
    `${input} is ${width}x${height} pixels x ${batch} image(s): sampling it with ${sizing.name} needs an estimated ${formatBytes(need)} of activations, ` +
    `above the limit of ${formatBytes(limit.bytes)} (${limit.source}). `;
  // A model exported for one size takes no other: a smaller square would not help.
  if (sizing.fixedLatentSize) return head + `${sizing.name} takes ${width}x${height} only: lower the batch size.`;
  const max = largestSquareSide(f, MAX_RESOLUTION, limit.bytes, (side) => estimateUnetBytes(sizing, batch * cfgRows, side / f, side / f));
  return (
    head +
    (max > 0
      ? `The largest square size within the limit at this batch size is ${max}x${max}${trainedAt(sizing)}.`
      : 'Even the smallest size does not fit: lower the batch size.')
  );
}

/**
 * Everything that decides whether a sampler can take an image of this size, in the order a person fixes them:
 * the VAE's block size (for an empty latent), a size fixed by the export, memory. Used when a prompt is
 * queued (from the EmptyLatentImage's widgets) and again when the sampler runs (from the latent itself).
 */
export function samplingSizeProblem(
  sizing: ModelSizing,
  image: { width: number; height: number; batch: number },
  cfgRows: number,
  input: string,
): string | undefined {
  return (
    factorProblem(sizing, image.width, image.height, input) ??
    unetSizeProblem(sizing, image.width, image.height, input) ??
    unetMemoryProblem(sizing, image, cfgRows, input)
  );
}

/**
 * The latent's samples as this model needs them. An empty latent (EmptyLatentImage) becomes zeros of the
 * model's latent channels at its pixels-per-cell factor, after checking the image size divides by it; any other
 * latent must already have the model's channel count.
 */
export function latentSamplesFor(latent: Latent, model: SizedModel, input: string): Tensor {
  const f = model.io.vae.scaleFactor;
  const channels = model.io.unet?.latentChannels ?? model.io.vae.latentChannels;
  if (!latent || typeof latent !== 'object' || !latent.samples?.shape) {
    throw new NodeInputError(`${input} is not a LATENT (expected { samples: [batch, channels, height, width] })`, input);
  }
  const [batch] = latent.samples.shape;
  if (latent.emptyImageSize) {
    const { width, height } = latent.emptyImageSize;
    const problem = factorProblem(sizingOf(model), width, height, input);
    if (problem) throw new NodeInputError(problem, input);
    return zeros([batch!, channels, height / f, width / f]);
  }
  const shape = latent.samples.shape;
  if (shape.length !== 4) {
    throw new NodeInputError(`${input} has samples of shape [${shape.join(', ')}]; a LATENT is [batch, channels, height, width]`, input);
  }
  if (shape[1] !== channels) {
    throw new NodeInputError(
      `${input} has ${shape[1]} latent channels but ${model.name} works on ${channels}: it was made by another model's VAE; encode the image with this checkpoint's VAE`,
      input,
    );
  }
  return latent.samples;
}

/** Refuses samples the sampler cannot take (size fixed by the export, memory): the run-time half of samplingSizeProblem. */
export function checkSamplingSize(model: DiffusionModel, samples: Tensor, cfgRows: number, input: string): void {
  const [batch, , h, w] = samples.shape as [number, number, number, number];
  const sizing = sizingOf(model);
  const f = sizing.scaleFactor;
  const image = { width: w * f, height: h * f, batch };
  const problem = unetSizeProblem(sizing, image.width, image.height, input) ?? unetMemoryProblem(sizing, image, cfgRows, input);
  if (problem) throw new NodeInputError(problem, input);
}

/** Same for the VAE (one image at a time), decoding a latent of h x w cells or encoding the image it stands for. */
export function checkVaeMemory(model: SizedModel, h: number, w: number, input: string, action: 'decoding' | 'encoding' = 'decoding'): void {
  const sizing = sizingOf(model);
  const limit = activationLimit();
  const need = estimateVaeDecodeBytes(sizing, h, w);
  if (need <= limit.bytes) return;
  const f = sizing.scaleFactor;
  const max = largestSquareSide(f, MAX_RESOLUTION, limit.bytes, (side) => estimateVaeDecodeBytes(sizing, side / f, side / f));
  throw new NodeInputError(
    `${input} is ${w * f}x${h * f} pixels: ${action} it with ${model.name}'s VAE needs an estimated ${formatBytes(need)} of activations, ` +
      `above the limit of ${formatBytes(limit.bytes)} (${limit.source}). The largest square size within the limit is ${max}x${max}.`,
    input,
  );
}

/** Refuses a VAE whose decoder graph takes one size only, for another size. */
export function checkVaeSize(model: SizedModel, samples: Tensor, input: string): void {
  const fixed = model.io.vae.fixedImageSize;
  if (!fixed) return;
  const f = model.io.vae.scaleFactor;
  const [, , h, w] = samples.shape as [number, number, number, number];
  if (h * f !== fixed[0] || w * f !== fixed[1]) {
    throw new NodeInputError(
      `${input} is ${w * f}x${h * f} pixels (latent ${w}x${h}), but ${model.name}'s VAE decoder was exported for ${fixed[1]}x${fixed[0]} pixels only`,
      input,
    );
  }
}

/** The one embedding of a CONDITIONING, checked against the UNet. */
/**
 * SDXL's added conditioning of a prompt for the UNet: its pooled text (`text_embeds`) and its size conditioning
 * (`time_ids`: the sizes CLIPTextEncodeSDXL set, else ComfyUI's default, the latent's size in pixels with no
 * crop). Undefined for a UNet without them.
 */
export function addedConditioningFor(conditioning: Conditioning, model: DiffusionModel, input: string, latentShape: readonly number[]): AddedConditioning | undefined {
  return addedConditioningForEntry(conditioning[0]!, model, input, latentShape);
}

/** SDXL's text_embeds and time_ids of one conditioning entry (undefined for a UNet without them). */
export function addedConditioningForEntry(entry: ConditioningEntry, model: DiffusionModel, input: string, latentShape: readonly number[]): AddedConditioning | undefined {
  const added = model.io.unet.added;
  if (!added) return undefined;
  if (!entry.pooled || entry.pooled.shape[1] !== added.textEmbedsDim) {
    throw new NodeInputError(
      `${input} has no pooled text ${added.textEmbedsDim} wide (it has ${entry.pooled ? `[${entry.pooled.shape.join(', ')}]` : 'none'}), which ${model.name}'s SDXL UNet takes as text_embeds: encode it with the CLIP of the same checkpoint`,
      input,
    );
  }
  const scale = model.io.vae.scaleFactor;
  const sizes = entry.sdxl ?? defaultSdxlSizes(latentShape[3]! * scale, latentShape[2]! * scale);
  if (added.timeIdsCount === 5) {
    // The refiner: sizes and crop, then the aesthetic score (ComfyUI: 6 for the positive, 2.5 for the negative).
    const score = entry.aestheticScore ?? (input === 'negative' ? DEFAULT_AESTHETIC_SCORE.negative : DEFAULT_AESTHETIC_SCORE.positive);
    return { textEmbeds: entry.pooled, timeIds: sdxlRefinerTimeIds(sizes, score) };
  }
  return { textEmbeds: entry.pooled, timeIds: sdxlTimeIds(sizes) };
}

/**
 * The first entry's encoder_hidden_states, after checking that every entry fits the UNet (several entries are
 * evaluated by the sampler's regional conditioning: conditioning-regions.ts).
 */
export function conditioningFor(conditioning: Conditioning, model: DiffusionModel, input: string): Tensor {
  if (!Array.isArray(conditioning) || conditioning.length === 0) {
    throw new NodeInputError(`${input} is an empty CONDITIONING; connect a CLIPTextEncode`, input);
  }
  for (const entry of conditioning) checkConditioningEntry(entry, model, input);
  return conditioning[0]!.hiddenStates;
}

/** Refuses an entry made by a text encoder that does not fit the UNet (another checkpoint's CLIP). */
export function checkConditioningEntry(entry: ConditioningEntry, model: DiffusionModel, input: string): void {
  const [, length, width] = entry.hiddenStates.shape;
  const expected = model.io.unet.crossAttentionDim;
  if (width !== expected || (model.io.unet.sequenceLength !== undefined && length !== model.io.unet.sequenceLength)) {
    throw new NodeInputError(
      `${input} was encoded by the text encoder of ${entry.modelDir} ([${entry.hiddenStates.shape.join(', ')}]), which does not fit ${model.name}'s UNet ` +
        `(it expects [1, ${model.io.unet.sequenceLength ?? 77}, ${expected}]): connect the CLIP output of the same checkpoint as the MODEL`,
      input,
    );
  }
}
