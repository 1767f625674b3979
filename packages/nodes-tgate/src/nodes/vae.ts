import { defineNode, NodeInputError, socket } from '@gategraph/core';
import { decodeLatents, encodeImage, type Tensor } from '@gategraph/diffusion';
import { checkVaeMemory, checkVaeSize, latentSamplesFor } from '../latent.ts';
import type { Image, Latent, VaeRef } from '../types.ts';

export const VAEDecode = defineNode({
  id: 'VAEDecode',
  displayName: 'VAE Decode',
  category: 'latent',
  description: 'Turns latents into images with the VAE decoder.',
  inputs: {
    samples: socket('LATENT', { tooltip: 'The latent to decode.' }),
    vae: socket('VAE', { tooltip: 'The VAE of the checkpoint that made the latent.' }),
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', tooltip: 'The decoded images.' }],
  async execute({ samples, vae }, ctx) {
    const model = vae.model;
    const latent = latentSamplesFor(samples, model, 'samples');
    checkVaeSize(model, latent, 'samples');
    checkVaeMemory(model, latent.shape[2]!, latent.shape[3]!, 'samples');
    const image: Image = await decodeLatents(model, latent, {
      onProgress: (done, total) => {
        if (total > 1) ctx.progress(done, total);
      },
    });
    return [image];
  },
});

/** ComfyUI's crop for sizes the VAE cannot take: the largest multiple of `f`, centred (offset (size % f) / 2). */
export function cropToMultipleOf(height: number, width: number, f: number): { h: number; w: number; y0: number; x0: number } {
  return { h: Math.floor(height / f) * f, w: Math.floor(width / f) * f, y0: Math.floor((height % f) / 2), x0: Math.floor((width % f) / 2) };
}

/** An IMAGE cropped by cropToMultipleOf, RGB only (an alpha channel is dropped, as the VAE takes 3). */
export function cropToMultiple(image: Tensor, f: number): Tensor {
  const [batch, H, W, C] = image.shape as [number, number, number, number];
  const { h, w, y0, x0 } = cropToMultipleOf(H, W, f);
  const channels = Math.min(C, 3);
  if (h === H && w === W && channels === C) return image;
  const data = new Float32Array(batch * h * w * channels);
  let o = 0;
  for (let b = 0; b < batch; b++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const s = ((b * H + y + y0) * W + x + x0) * C;
        for (let c = 0; c < channels; c++) data[o++] = image.data[s + c]!;
      }
    }
  }
  return { data, shape: [batch, h, w, channels] };
}

/**
 * VAEEncode's work, for the nodes that encode images (VAEEncode, the inpainting nodes): checks that the VAE has
 * an encoder and takes the size, centre-crops to its block size as ComfyUI does, encodes.
 */
export async function encodePixels(vae: VaeRef, pixels: Tensor, input = 'pixels'): Promise<Tensor> {
  const model = vae.model;
  if (!model.vaeEncoder) {
    throw new NodeInputError(`vae: ${model.name} has no vae_encoder/model.onnx, so it cannot encode images; add the encoder to ${model.dir} or use another checkpoint`, 'vae');
  }
  const f = model.io.vae.scaleFactor;
  const [, H, W] = pixels.shape as [number, number, number, number];
  if (pixels.shape.length !== 4 || H < f || W < f) {
    throw new NodeInputError(`${input} is [${pixels.shape.join(', ')}]; an IMAGE of at least ${f}x${f} pixels is needed`, input);
  }
  const image = cropToMultiple(pixels, f);
  const fixed = model.io.vae.fixedImageSize;
  if (fixed && (image.shape[1] !== fixed[0] || image.shape[2] !== fixed[1])) {
    throw new NodeInputError(
      `${input} is ${W}x${H} pixels, but ${model.name}'s VAE was exported for ${fixed[1]}x${fixed[0]} images only: resize the image first`,
      input,
    );
  }
  checkVaeMemory(model, image.shape[1]! / f, image.shape[2]! / f, input, 'encoding');
  return await encodeImage(model, image);
}

export const VAEEncode = defineNode({
  id: 'VAEEncode',
  displayName: 'VAE Encode',
  category: 'latent',
  description: "Turns images into latents with the VAE encoder (for image-to-image). Sizes that are not a multiple of the VAE's factor are centre-cropped to one, as in ComfyUI.",
  inputs: {
    pixels: socket('IMAGE', { tooltip: 'The images to encode.' }),
    vae: socket('VAE', { tooltip: 'The VAE of the checkpoint that will sample the latent.' }),
  },
  outputs: [{ type: 'LATENT', name: 'LATENT', tooltip: 'The encoded latents.' }],
  async execute({ pixels, vae }) {
    const latent: Latent = { samples: await encodePixels(vae, pixels) };
    return [latent];
  },
});
