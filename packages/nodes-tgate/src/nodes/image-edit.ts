/**
 * ComfyUI's basic image nodes: EmptyImage, ImageInvert, ImageCrop, ImagePadForOutpaint. IMAGE is
 * [B, H, W, C] in 0..1 (channels last).
 */
import { defineNode, int, socket } from '@gategraph/core';
import { MAX_RESOLUTION } from '../latent.ts';
import { imageDims } from '../latent-values.ts';
import { checkTensorFits } from '../tensor-budget.ts';
import type { Image, Mask } from '../types.ts';

export const EmptyImage = defineNode({
  id: 'EmptyImage',
  displayName: 'EmptyImage',
  category: 'image',
  description: 'A batch of images of one solid colour (black by default): a canvas to paint into or to pad with.',
  inputs: {
    width: int({ default: 512, min: 1, max: MAX_RESOLUTION, step: 1, tooltip: 'Width in pixels.' }),
    height: int({ default: 512, min: 1, max: MAX_RESOLUTION, step: 1, tooltip: 'Height in pixels.' }),
    batch_size: int({ default: 1, min: 1, max: 4096, tooltip: 'Number of images.' }),
    color: int({ default: 0, min: 0, max: 0xffffff, step: 1, tooltip: 'The colour as a number 0xRRGGBB (16777215 = white, 16711680 = red).' }),
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', tooltip: 'The solid images.' }],
  execute({ width, height, batch_size, color }) {
    checkTensorFits([batch_size, height, width, 3], 'batch_size', 'the empty image batch', { advice: 'batch_size, width or height' });
    const rgb = [(color >> 16) & 0xff, (color >> 8) & 0xff, color & 0xff].map((v) => v / 0xff);
    const data = new Float32Array(batch_size * height * width * 3);
    for (let p = 0; p < data.length; p += 3) data.set(rgb, p);
    const image: Image = { data, shape: [batch_size, height, width, 3] };
    return [image];
  },
});

export const ImageInvert = defineNode({
  id: 'ImageInvert',
  displayName: 'Invert Image',
  category: 'image',
  description: 'Inverts images: every channel value v becomes 1 - v (black becomes white).',
  inputs: { image: socket('IMAGE', { tooltip: 'The images to invert.' }) },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', tooltip: 'The inverted images.' }],
  execute({ image }) {
    imageDims(image, 'image');
    const inverted: Image = { data: image.data.map((v) => 1 - v), shape: [...image.shape] };
    return [inverted];
  },
});

export const ImageCrop = defineNode({
  id: 'ImageCrop',
  displayName: 'Image Crop',
  category: 'image/transform',
  description:
    'Cuts a width x height window out of images, its top-left corner at (x, y). A window reaching past the image is cut at its edge; x and y are kept inside the image.',
  inputs: {
    image: socket('IMAGE', { tooltip: 'The images to crop.' }),
    width: int({ default: 512, min: 1, max: MAX_RESOLUTION, step: 1, tooltip: 'Width of the window in pixels.' }),
    height: int({ default: 512, min: 1, max: MAX_RESOLUTION, step: 1, tooltip: 'Height of the window in pixels.' }),
    x: int({ default: 0, min: 0, max: MAX_RESOLUTION, step: 1, tooltip: 'Left edge of the window, in pixels from the left.' }),
    y: int({ default: 0, min: 0, max: MAX_RESOLUTION, step: 1, tooltip: 'Top edge of the window, in pixels from the top.' }),
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', tooltip: 'The cropped images.' }],
  execute({ image, width, height, x, y }) {
    const [B, H, W, C] = imageDims(image, 'image');
    const x0 = Math.min(x, W - 1);
    const y0 = Math.min(y, H - 1);
    const w = Math.min(width, W - x0);
    const h = Math.min(height, H - y0);
    const data = new Float32Array(B * h * w * C);
    for (let b = 0; b < B; b++) {
      for (let r = 0; r < h; r++) {
        const from = ((b * H + y0 + r) * W + x0) * C;
        data.set(image.data.subarray(from, from + w * C), ((b * h + r) * w) * C);
      }
    }
    const cropped: Image = { data, shape: [B, h, w, C] };
    return [cropped];
  },
});

/**
 * ImagePadForOutpaint's mask inside the original image: 0, except within `feathering` pixels of a padded side,
 * where it rises as ((feathering - d) / feathering)^2 towards that side (d = distance to it). No feathering when
 * the image is not more than twice as large as the feathering.
 */
function featheredInside(H: number, W: number, sides: { top: number; bottom: number; left: number; right: number }, feathering: number): Float32Array {
  const inside = new Float32Array(H * W);
  if (feathering <= 0 || feathering * 2 >= H || feathering * 2 >= W) return inside;
  for (let i = 0; i < H; i++) {
    for (let j = 0; j < W; j++) {
      const d = Math.min(sides.top !== 0 ? i : H, sides.bottom !== 0 ? H - i : H, sides.left !== 0 ? j : W, sides.right !== 0 ? W - j : W);
      if (d >= feathering) continue;
      const v = (feathering - d) / feathering;
      inside[i * W + j] = v * v;
    }
  }
  return inside;
}

export const ImagePadForOutpaint = defineNode({
  id: 'ImagePadForOutpaint',
  displayName: 'Pad Image for Outpainting',
  category: 'image',
  description:
    'Adds borders to images for outpainting: the new pixels are grey, and the MASK is 1 over them (to be painted), 0 over the original image, ' +
    'with a soft ramp of `feathering` pixels inside the image along the padded sides so the new content blends in. Feed both to VAEEncodeForInpaint.',
  inputs: {
    image: socket('IMAGE', { tooltip: 'The images to extend.' }),
    left: int({ default: 0, min: 0, max: MAX_RESOLUTION, step: 8, tooltip: 'Pixels added on the left.' }),
    top: int({ default: 0, min: 0, max: MAX_RESOLUTION, step: 8, tooltip: 'Pixels added at the top.' }),
    right: int({ default: 0, min: 0, max: MAX_RESOLUTION, step: 8, tooltip: 'Pixels added on the right.' }),
    bottom: int({ default: 0, min: 0, max: MAX_RESOLUTION, step: 8, tooltip: 'Pixels added at the bottom.' }),
    feathering: int({ default: 40, min: 0, max: MAX_RESOLUTION, step: 1, tooltip: 'Width in pixels of the soft edge of the mask inside the original image along the padded sides; 0 = a hard edge.' }),
  },
  outputs: [
    { type: 'IMAGE', name: 'IMAGE', tooltip: 'The padded images (the new pixels grey).' },
    { type: 'MASK', name: 'MASK', tooltip: 'One mask for the whole batch: 1 over the padding, 0 over the image, feathered at the seam.' },
  ],
  execute({ image, left, top, right, bottom, feathering }) {
    const [B, H, W, C] = imageDims(image, 'image');
    const H2 = H + top + bottom;
    const W2 = W + left + right;
    checkTensorFits([B, H2, W2, C], 'left', 'the padded image', { advice: 'the padding' });
    const data = new Float32Array(B * H2 * W2 * C).fill(0.5);
    for (let b = 0; b < B; b++) {
      for (let r = 0; r < H; r++) data.set(image.data.subarray((b * H + r) * W * C, (b * H + r + 1) * W * C), ((b * H2 + top + r) * W2 + left) * C);
    }
    const maskData = new Float32Array(H2 * W2).fill(1);
    const inside = featheredInside(H, W, { top, bottom, left, right }, feathering);
    for (let r = 0; r < H; r++) maskData.set(inside.subarray(r * W, (r + 1) * W), (top + r) * W2 + left);
    const padded: Image = { data, shape: [B, H2, W2, C] };
    const mask: Mask = { data: maskData, shape: [1, H2, W2] };
    return [padded, mask];
  },
});
