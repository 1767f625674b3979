/**
 * Checking a LATENT (and the CONDITIONING) against the model that is about to use it, with messages that name
 * the input and say what to change. Shared by KSampler, VAEDecode and VAEEncode.
 */
import { NodeInputError } from '@gategraph/core';
import { zeros, type DiffusionModel, type Tensor } from '@gategraph/diffusion';
import type { Conditioning, Latent } from './types.ts';
import { activationLimit, estimateUnetBytes, estimateVaeDecodeBytes, formatBytes, largestSquareSide } from './memory.ts';

/** ComfyUI's MAX_RESOLUTION: the widgets' maximum width/height. */
export const MAX_RESOLUTION = 16384;

/** Nearest sizes divisible by `f` around `v` (for "use 56 or 64"). */
function neighbours(v: number, f: number): string {
  const down = Math.max(f, Math.floor(v / f) * f);
  const up = Math.ceil(v / f) * f;
  return down === up ? String(down) : `${down} or ${up}`;
}

/**
 * The latent's samples as this model needs them. An empty latent (EmptyLatentImage) becomes zeros of the
 * model's latent channels at its pixels-per-cell factor, after checking the image size divides by it; any other
 * latent must already have the model's channel count.
 */
export function latentSamplesFor(latent: Latent, model: DiffusionModel, input: string): Tensor {
  const f = model.io.vae.scaleFactor;
  const channels = model.io.unet.latentChannels;
  if (!latent || typeof latent !== 'object' || !latent.samples?.shape) {
    throw new NodeInputError(`${input} is not a LATENT (expected { samples: [batch, channels, height, width] })`, input);
  }
  const [batch] = latent.samples.shape;
  if (latent.emptyImageSize) {
    const { width, height } = latent.emptyImageSize;
    if (width % f !== 0 || height % f !== 0) {
      throw new NodeInputError(
        `${input} is an empty ${width}x${height} latent, but ${model.name}'s VAE works in blocks of ${f} pixels, so width and height must be multiples of ${f}: ` +
          `set the EmptyLatentImage to ${neighbours(width, f)} wide and ${neighbours(height, f)} high`,
        input,
      );
    }
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

/** Refuses a latent size the UNet graph cannot take (exported for one size only). */
export function checkUnetSize(model: DiffusionModel, samples: Tensor, input: string): void {
  const fixed = model.io.unet.fixedLatentSize;
  const [, , h, w] = samples.shape as [number, number, number, number];
  if (fixed && (fixed[0] !== h || fixed[1] !== w)) {
    const f = model.io.vae.scaleFactor;
    throw new NodeInputError(
      `${input} is ${w * f}x${h * f} pixels (latent ${w}x${h}), but ${model.name}'s UNet was exported for ${fixed[1] * f}x${fixed[0] * f} pixels only: ` +
        `set the EmptyLatentImage to width ${fixed[1] * f}, height ${fixed[0] * f}`,
      input,
    );
  }
}

/** Refuses a UNet call whose activations would not fit the memory limit; the message gives the largest size that fits. */
export function checkUnetMemory(model: DiffusionModel, samples: Tensor, cfgRows: number, input: string): void {
  const [batch, , h, w] = samples.shape as [number, number, number, number];
  const limit = activationLimit();
  const need = estimateUnetBytes(model, batch * cfgRows, h, w);
  if (need <= limit.bytes) return;
  const f = model.io.vae.scaleFactor;
  const max = largestSquareSide(f, MAX_RESOLUTION, limit.bytes, (side) => estimateUnetBytes(model, batch * cfgRows, side / f, side / f));
  throw new NodeInputError(
    `${input} is ${w * f}x${h * f} pixels x ${batch} image(s): sampling it with ${model.name} needs an estimated ${formatBytes(need)} of activations, ` +
      `above the limit of ${formatBytes(limit.bytes)} (${limit.source}). ` +
      (max > 0 ? `The largest square size within the limit at this batch size is ${max}x${max}.` : 'Even the smallest size does not fit: lower the batch size.'),
    input,
  );
}

/** Same for the VAE (one image at a time), decoding a latent of h x w cells or encoding the image it stands for. */
export function checkVaeMemory(model: DiffusionModel, h: number, w: number, input: string, action: 'decoding' | 'encoding' = 'decoding'): void {
  const limit = activationLimit();
  const need = estimateVaeDecodeBytes(model, h, w);
  if (need <= limit.bytes) return;
  const f = model.io.vae.scaleFactor;
  const max = largestSquareSide(f, MAX_RESOLUTION, limit.bytes, (side) => estimateVaeDecodeBytes(model, side / f, side / f));
  throw new NodeInputError(
    `${input} is ${w * f}x${h * f} pixels: ${action} it with ${model.name}'s VAE needs an estimated ${formatBytes(need)} of activations, ` +
      `above the limit of ${formatBytes(limit.bytes)} (${limit.source}). The largest square size within the limit is ${max}x${max}.`,
    input,
  );
}

/** Refuses a VAE whose decoder graph takes one size only, for another size. */
export function checkVaeSize(model: DiffusionModel, samples: Tensor, input: string): void {
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
export function conditioningFor(conditioning: Conditioning, model: DiffusionModel, input: string): Tensor {
  if (!Array.isArray(conditioning) || conditioning.length === 0) {
    throw new NodeInputError(`${input} is an empty CONDITIONING; connect a CLIPTextEncode`, input);
  }
  if (conditioning.length > 1) {
    throw new NodeInputError(
      `${input} holds ${conditioning.length} conditionings (combined prompts); this sampler takes one per input: encode the prompts into one text instead`,
      input,
    );
  }
  const entry = conditioning[0]!;
  const [, length, width] = entry.hiddenStates.shape;
  const expected = model.io.unet.crossAttentionDim;
  if (width !== expected || (model.io.unet.sequenceLength !== undefined && length !== model.io.unet.sequenceLength)) {
    throw new NodeInputError(
      `${input} was encoded by the text encoder of ${entry.modelDir} ([${entry.hiddenStates.shape.join(', ')}]), which does not fit ${model.name}'s UNet ` +
        `(it expects [1, ${model.io.unet.sequenceLength ?? 77}, ${expected}]): connect the CLIP output of the same checkpoint as the MODEL`,
      input,
    );
  }
  return entry.hiddenStates;
}
