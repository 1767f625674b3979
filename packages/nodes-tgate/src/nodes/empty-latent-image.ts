import { defineNode, int, NodeInputError } from '@gategraph/core';
import { zeros } from '@gategraph/diffusion';
import { MAX_RESOLUTION } from '../latent.ts';
import { activationLimit, formatBytes } from '../memory.ts';
import type { Latent } from '../types.ts';

/** Latent channels and pixels per latent cell of SD, used for the placeholder samples (see Latent.emptyImageSize). */
const SD_CHANNELS = 4;
const SD_FACTOR = 8;

export const EmptyLatentImage = defineNode({
  id: 'EmptyLatentImage',
  displayName: 'Empty Latent Image',
  category: 'latent',
  description:
    'An empty latent (all zeros) for text-to-image. The sampler sizes it for its model: width and height must be multiples of the ' +
    "model's VAE factor (8 for SD, 4 for the embedded tiny-sd), which the sampler checks.",
  inputs: {
    width: int({ default: 512, min: 16, max: MAX_RESOLUTION, step: 8, tooltip: 'Image width in pixels.' }),
    height: int({ default: 512, min: 16, max: MAX_RESOLUTION, step: 8, tooltip: 'Image height in pixels.' }),
    batch_size: int({ default: 1, min: 1, max: 4096, tooltip: 'Number of images sampled together.' }),
  },
  outputs: [{ type: 'LATENT', name: 'LATENT', tooltip: 'The empty latent batch.' }],
  execute({ width, height, batch_size }) {
    const h = Math.floor(height / SD_FACTOR);
    const w = Math.floor(width / SD_FACTOR);
    // Even the zeros must fit: 16384x16384 x 4096 would be 275 GB before the sampler could say anything.
    const bytes = batch_size * SD_CHANNELS * Math.max(1, h) * Math.max(1, w) * 4;
    const limit = activationLimit();
    if (bytes > limit.bytes) {
      throw new NodeInputError(
        `batch_size ${batch_size} of ${width}x${height} images needs ${formatBytes(bytes)} for the latent alone, above the limit of ` +
          `${formatBytes(limit.bytes)} (${limit.source}): lower batch_size or the size`,
        'batch_size',
      );
    }
    const latent: Latent = { samples: zeros([batch_size, SD_CHANNELS, Math.max(1, h), Math.max(1, w)]), emptyImageSize: { width, height } };
    return [latent];
  },
});
