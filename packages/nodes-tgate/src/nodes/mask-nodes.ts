/**
 * ComfyUI's mask conversions: ImageToMask, MaskToImage, SolidMask, InvertMask. MASK is [B, H, W] in 0..1,
 * 1 = masked (what an inpainting node repaints).
 */
import { combo, defineNode, float, int, NodeInputError, socket } from '@gategraph/core';
import { MAX_RESOLUTION } from '../latent.ts';
import { imageDims, maskDims } from '../latent-values.ts';
import { checkTensorFits } from '../tensor-budget.ts';
import type { Image, Mask } from '../types.ts';

const IMAGE_CHANNELS = ['red', 'green', 'blue', 'alpha'] as const;

export const ImageToMask = defineNode({
  id: 'ImageToMask',
  displayName: 'Convert Image to Mask',
  category: 'mask',
  description: 'Makes a MASK from one channel of images: the channel\'s value is the mask (white = 1 = masked).',
  inputs: {
    image: socket('IMAGE', { tooltip: 'The images to take the channel from.' }),
    channel: combo(IMAGE_CHANNELS, { tooltip: 'The channel that becomes the mask (alpha only for images that have one).' }),
  },
  outputs: [{ type: 'MASK', name: 'MASK', tooltip: 'The channel as a mask, one per image.' }],
  execute({ image, channel }) {
    const [B, H, W, C] = imageDims(image, 'image');
    const c = IMAGE_CHANNELS.indexOf(channel);
    if (c >= C) throw new NodeInputError(`image has ${C} channels, so it has no ${channel} channel; pick ${IMAGE_CHANNELS.slice(0, C).join(', ')}`, 'channel');
    const data = new Float32Array(B * H * W);
    for (let p = 0; p < data.length; p++) data[p] = image.data[p * C + c]!;
    const mask: Mask = { data, shape: [B, H, W] };
    return [mask];
  },
});

export const MaskToImage = defineNode({
  id: 'MaskToImage',
  displayName: 'Convert Mask to Image',
  category: 'mask',
  description: 'Shows a MASK as grey images (white = 1 = masked), to preview or save it, or to edit it with image nodes.',
  inputs: { mask: socket('MASK', { tooltip: 'The mask to convert.' }) },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', tooltip: 'The mask in all three channels, one image per mask.' }],
  execute({ mask }) {
    const [B, H, W] = maskDims(mask, 'mask');
    checkTensorFits([B, H, W, 3], 'mask', 'the image of the mask');
    const data = new Float32Array(B * H * W * 3);
    for (let p = 0; p < B * H * W; p++) data.fill(mask.data[p]!, p * 3, p * 3 + 3);
    const image: Image = { data, shape: [B, H, W, 3] };
    return [image];
  },
});

export const SolidMask = defineNode({
  id: 'SolidMask',
  displayName: 'SolidMask',
  category: 'mask',
  description: 'A mask of one value everywhere: 1 masks the whole image, 0 nothing.',
  inputs: {
    value: float({ default: 1, min: 0, max: 1, step: 0.01, tooltip: 'The mask value of every pixel (1 = masked).' }),
    width: int({ default: 512, min: 1, max: MAX_RESOLUTION, step: 1, tooltip: 'Width in pixels.' }),
    height: int({ default: 512, min: 1, max: MAX_RESOLUTION, step: 1, tooltip: 'Height in pixels.' }),
  },
  outputs: [{ type: 'MASK', name: 'MASK', tooltip: 'The solid mask (a batch of one).' }],
  execute({ value, width, height }) {
    checkTensorFits([1, height, width], 'width', 'the mask', { advice: 'width or height' });
    const mask: Mask = { data: new Float32Array(height * width).fill(value), shape: [1, height, width] };
    return [mask];
  },
});

export const InvertMask = defineNode({
  id: 'InvertMask',
  displayName: 'InvertMask',
  category: 'mask',
  description: 'Inverts a mask: every value v becomes 1 - v, so what was masked is kept and the rest is masked.',
  inputs: { mask: socket('MASK', { tooltip: 'The mask to invert.' }) },
  outputs: [{ type: 'MASK', name: 'MASK', tooltip: 'The inverted mask.' }],
  execute({ mask }) {
    maskDims(mask, 'mask');
    const inverted: Mask = { data: mask.data.map((v) => 1 - v), shape: [...mask.shape] };
    return [inverted];
  },
});
