/**
 * ComfyUI's image resizing nodes: ImageScale, ImageScaleBy, ImageScaleToTotalPixels, with its methods
 * (torch's interpolate modes and Pillow's Lanczos, see @gategraph/diffusion's resample) and its rounding of
 * sizes (Python's round, halves to even).
 */
import { combo, defineNode, float, int, NodeInputError, socket } from '@gategraph/core';
import { commonUpscale, CROP_METHODS, IMAGE_UPSCALE_METHODS, roundHalfEven, type CropMethod } from '@gategraph/diffusion';
import { MAX_RESOLUTION } from '../latent.ts';
import { imageDims } from '../latent-values.ts';
import { checkTensorFits } from '../tensor-budget.ts';
import type { Image } from '../types.ts';

const METHOD_TOOLTIP =
  'How new pixels are computed: nearest-exact copies the nearest pixel (hard edges, pixel art), bilinear and bicubic blend neighbours ' +
  '(bicubic is sharper and may overshoot slightly), area averages the pixels it covers (best for shrinking), lanczos is the sharpest ' +
  '(computed on 8-bit pixels, as ComfyUI does through Pillow).';

/** Resizes an IMAGE to width x height pixels, refusing sizes of no pixels or too large for memory. */
export function scaleImage(image: Image, width: number, height: number, method: (typeof IMAGE_UPSCALE_METHODS)[number], crop: CropMethod, input: string): Image {
  const [B, , , C] = imageDims(image, 'image');
  if (width < 1 || height < 1) throw new NodeInputError(`the scaled image would be ${width}x${height} pixels: it needs at least one pixel a side; raise ${input}`, input);
  checkTensorFits([B, height, width, C], input, 'the scaled image');
  return commonUpscale(image, width, height, method, crop, 'nhwc');
}

export const ImageScale = defineNode({
  id: 'ImageScale',
  displayName: 'Upscale Image',
  category: 'image/upscaling',
  description:
    'Resizes images to width x height pixels. A width or height of 0 keeps the aspect ratio from the other; both 0 leave the images as they are.',
  inputs: {
    image: socket('IMAGE', { tooltip: 'The images to resize.' }),
    upscale_method: combo(IMAGE_UPSCALE_METHODS, { tooltip: METHOD_TOOLTIP }),
    width: int({ default: 512, min: 0, max: MAX_RESOLUTION, step: 1, tooltip: 'Target width in pixels; 0 = from the height, keeping the aspect ratio.' }),
    height: int({ default: 512, min: 0, max: MAX_RESOLUTION, step: 1, tooltip: 'Target height in pixels; 0 = from the width, keeping the aspect ratio.' }),
    crop: combo(CROP_METHODS, { tooltip: 'disabled stretches the image to the new aspect ratio; center cuts the sides that do not fit the new aspect ratio first.' }),
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', tooltip: 'The resized images.' }],
  execute({ image, upscale_method, width, height, crop }) {
    if (width === 0 && height === 0) return [image];
    const [, H, W] = imageDims(image, 'image');
    let w = width;
    let h = height;
    if (width === 0) w = Math.max(1, roundHalfEven((W * height) / H));
    else if (height === 0) h = Math.max(1, roundHalfEven((H * width) / W));
    return [scaleImage(image, w, h, upscale_method, crop, width === 0 ? 'height' : 'width')];
  },
});

export const ImageScaleBy = defineNode({
  id: 'ImageScaleBy',
  displayName: 'Upscale Image By',
  category: 'image/upscaling',
  description: 'Resizes images by a factor: each side is multiplied by scale_by and rounded.',
  inputs: {
    image: socket('IMAGE', { tooltip: 'The images to resize.' }),
    upscale_method: combo(IMAGE_UPSCALE_METHODS, { tooltip: METHOD_TOOLTIP }),
    scale_by: float({ default: 1, min: 0.01, max: 8, step: 0.01, tooltip: 'The factor for width and height: 2 doubles each side, 0.5 halves it.' }),
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', tooltip: 'The resized images.' }],
  execute({ image, upscale_method, scale_by }) {
    const [, H, W] = imageDims(image, 'image');
    return [scaleImage(image, roundHalfEven(W * scale_by), roundHalfEven(H * scale_by), upscale_method, 'disabled', 'scale_by')];
  },
});

export const ImageScaleToTotalPixels = defineNode({
  id: 'ImageScaleToTotalPixels',
  displayName: 'Scale Image to Total Pixels',
  category: 'image/upscaling',
  description:
    'Resizes images to about a number of megapixels (1 megapixel = 1024 x 1024 pixels), keeping the aspect ratio; each side is rounded to a multiple of resolution_steps.',
  inputs: {
    image: socket('IMAGE', { tooltip: 'The images to resize.' }),
    upscale_method: combo(IMAGE_UPSCALE_METHODS, { tooltip: METHOD_TOOLTIP }),
    megapixels: float({ default: 1, min: 0.01, max: 16, step: 0.01, tooltip: 'The target size in megapixels of 1024 x 1024 pixels.' }),
    resolution_steps: int({ default: 1, min: 1, max: 256, tooltip: 'Each side becomes a multiple of this (8 or 64 suit a VAE); 1 = any size.' }),
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', tooltip: 'The resized images.' }],
  execute({ image, upscale_method, megapixels, resolution_steps }) {
    const [, H, W] = imageDims(image, 'image');
    const scale = Math.sqrt((megapixels * 1024 * 1024) / (W * H));
    const width = roundHalfEven((W * scale) / resolution_steps) * resolution_steps;
    const height = roundHalfEven((H * scale) / resolution_steps) * resolution_steps;
    return [scaleImage(image, width, height, upscale_method, 'disabled', width < 1 || height < 1 ? 'resolution_steps' : 'megapixels')];
  },
});
