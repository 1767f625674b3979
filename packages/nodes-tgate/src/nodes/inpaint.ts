/**
 * ComfyUI's inpainting nodes: VAEEncodeForInpaint, SetLatentNoiseMask, InpaintModelConditioning. They attach a
 * mask to the LATENT (`noise_mask`: the sampler denoises only inside it) and, for inpainting UNets (9 input
 * channels), the masked image's latent and the mask to the conditioning (what ComfyUI's c_concat feeds).
 */
import { boolean, defineNode, int, NodeInputError, socket } from '@gategraph/core';
import { resizeBilinear, type Tensor } from '@gategraph/diffusion';
import type { Conditioning, Image, Latent, Mask } from '../types.ts';
import { cropToMultiple, cropToMultipleOf, encodePixels } from './vae.ts';

/** A MASK [B, H, W] (or [H, W]) as [B, 1, H, W], bilinearly resized to H x W pixels as ComfyUI does. */
export function maskAtSize(mask: Mask, height: number, width: number): Tensor {
  const [mh, mw] = mask.shape.slice(-2) as [number, number];
  const batch = mask.data.length / (mh * mw);
  return resizeBilinear({ data: mask.data, shape: [batch, 1, mh, mw] }, height, width);
}

/** A [N, 1, H, W] mask cut as VAEEncode crops the image (cropToMultipleOf). */
function cropMask(mask: Tensor, crop: ReturnType<typeof cropToMultipleOf>): Tensor {
  const [n, , H, W] = mask.shape as [number, number, number, number];
  if (crop.h === H && crop.w === W) return mask;
  const data = new Float32Array(n * crop.h * crop.w);
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < crop.h; y++) data.set(mask.data.subarray((b * H + y + crop.y0) * W + crop.x0, (b * H + y + crop.y0) * W + crop.x0 + crop.w), (b * crop.h + y) * crop.w);
  }
  return { data, shape: [n, 1, crop.h, crop.w] };
}

/** Pixels inside the (rounded) mask set to grey 0.5, as ComfyUI masks the image it encodes for inpainting. */
function greyOutMasked(pixels: Image, mask: Tensor): Image {
  const [B, H, W, C] = pixels.shape as [number, number, number, number];
  const [mb] = mask.shape as [number];
  const data = new Float32Array(pixels.data);
  for (let b = 0; b < B; b++) {
    const m = Math.min(b, mb - 1);
    for (let p = 0; p < H * W; p++) {
      const keep = 1 - Math.round(mask.data[m * H * W + p]!);
      for (let c = 0; c < Math.min(C, 3); c++) {
        const at = (b * H * W + p) * C + c;
        data[at] = (data[at]! - 0.5) * keep + 0.5;
      }
    }
  }
  return { data, shape: pixels.shape };
}

/**
 * ComfyUI's mask growth: conv2d of the rounded mask with a k x k kernel of ones, padding ceil((k - 1) / 2),
 * clamped to 0..1, cut to the mask's size: a pixel is 1 when its window holds any 1.
 */
function growMask(mask: Tensor, k: number): Tensor {
  if (k === 0) return mask;
  const [n, , H, W] = mask.shape as [number, number, number, number];
  const pad = Math.ceil((k - 1) / 2);
  const data = new Float32Array(n * H * W);
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        let any = 0;
        for (let dy = 0; dy < k && !any; dy++) {
          const sy = y - pad + dy;
          if (sy < 0 || sy >= H) continue;
          for (let dx = 0; dx < k; dx++) {
            const sx = x - pad + dx;
            if (sx >= 0 && sx < W && Math.round(mask.data[(b * H + sy) * W + sx]!) >= 1) {
              any = 1;
              break;
            }
          }
        }
        data[(b * H + y) * W + x] = any;
      }
    }
  }
  return { data, shape: [n, 1, H, W] };
}

function roundMask(mask: Tensor): Tensor {
  return { data: mask.data.map((v) => Math.round(v)), shape: mask.shape };
}

function checkMask(mask: Mask, input = 'mask'): void {
  if (mask.shape.length < 2 || mask.shape.length > 3) throw new NodeInputError(`${input} is [${mask.shape.join(', ')}]; a MASK is [batch, height, width]`, input);
}

export const VAEEncodeForInpaint = defineNode({
  id: 'VAEEncodeForInpaint',
  displayName: 'VAE Encode (for Inpainting)',
  category: 'latent/inpaint',
  description:
    'Encodes an image for inpainting: the masked pixels are set to grey before encoding, and the mask (grown by a few pixels) becomes the latent\'s noise mask, so the sampler repaints only there. Use with an inpainting model and denoise 1.',
  inputs: {
    pixels: socket('IMAGE', { tooltip: 'The image to repaint part of.' }),
    vae: socket('VAE'),
    mask: socket('MASK', { tooltip: 'Where to repaint: 1 = repaint (LoadImage makes it from the transparent pixels).' }),
    grow_mask_by: int({ default: 6, min: 0, max: 64, step: 1, tooltip: 'Grows the mask by this many pixels so the repainted region blends in.' }),
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  async execute({ pixels, vae, mask, grow_mask_by }) {
    checkMask(mask);
    const [, H, W] = pixels.shape as [number, number, number];
    const crop = cropToMultipleOf(H, W, vae.scaleFactor);
    const pixelMask = cropMask(maskAtSize(mask, H, W), crop);
    const samples = await encodePixels(vae, greyOutMasked(cropToMultiple(pixels, vae.scaleFactor), pixelMask));
    const latent: Latent = { samples, noise_mask: roundMask(growMask(pixelMask, grow_mask_by)) };
    return [latent];
  },
});

export const SetLatentNoiseMask = defineNode({
  id: 'SetLatentNoiseMask',
  displayName: 'Set Latent Noise Mask',
  category: 'latent/inpaint',
  description: 'Attaches a mask to a latent: the sampler then changes the latent only inside the mask (any model, with denoise below 1 to keep the image).',
  inputs: {
    samples: socket('LATENT'),
    mask: socket('MASK', { tooltip: '1 = denoise here; resized to the latent.' }),
  },
  outputs: [{ type: 'LATENT', name: 'LATENT' }],
  execute({ samples, mask }) {
    checkMask(mask);
    const [mh, mw] = mask.shape.slice(-2) as [number, number];
    const latent: Latent = { ...samples, noise_mask: { data: mask.data, shape: [mask.data.length / (mh * mw), 1, mh, mw] } };
    return [latent];
  },
});

export const InpaintModelConditioning = defineNode({
  id: 'InpaintModelConditioning',
  displayName: 'InpaintModelConditioning',
  category: 'conditioning/inpaint',
  description:
    'Prepares inpainting with an inpainting model: the conditionings carry the masked image\'s latent and the mask (the UNet\'s extra input channels), and the latent is the whole image, with the mask as its noise mask when noise_mask is on.',
  inputs: {
    positive: socket('CONDITIONING'),
    negative: socket('CONDITIONING'),
    vae: socket('VAE'),
    pixels: socket('IMAGE'),
    mask: socket('MASK'),
    noise_mask: boolean({ default: true, tooltip: 'Add a noise mask to the latent so sampling only happens within the mask. Might improve results or completely break things depending on the model.' }),
  },
  outputs: [
    { type: 'CONDITIONING', name: 'positive' },
    { type: 'CONDITIONING', name: 'negative' },
    { type: 'LATENT', name: 'latent' },
  ],
  async execute({ positive, negative, vae, pixels, mask, noise_mask }) {
    checkMask(mask);
    const [, H, W] = pixels.shape as [number, number, number];
    const crop = cropToMultipleOf(H, W, vae.scaleFactor);
    const pixelMask = cropMask(maskAtSize(mask, H, W), crop);
    const concatLatentImage = await encodePixels(vae, greyOutMasked(cropToMultiple(pixels, vae.scaleFactor), pixelMask));
    const original = await encodePixels(vae, pixels);
    const withConcat = (conditioning: Conditioning): Conditioning => conditioning.map((entry) => ({ ...entry, concatLatentImage, concatMask: pixelMask }));
    const latent: Latent = { samples: original, ...(noise_mask ? { noise_mask: pixelMask } : {}) };
    return [withConcat(positive), withConcat(negative), latent];
  },
});
