/**
 * ComfyUI's image batch nodes: ImageBatch (two batches into one) and RebatchImages (a list of batches regrouped
 * into batches of a given size).
 */
import { defineNode, int, NodeInputError, socket } from '@gategraph/core';
import { commonUpscale, type Tensor } from '@gategraph/diffusion';
import { imageDims, pickRows } from '../latent-values.ts';
import { checkTensorFits } from '../tensor-budget.ts';
import type { Image } from '../types.ts';

/** `image` with channels added up to `channels`, each 1.0 (an opaque alpha channel for an RGB image). */
function padChannels(image: Image, channels: number): Image {
  const [B, H, W, C] = image.shape as [number, number, number, number];
  if (C >= channels) return image;
  const data = new Float32Array(B * H * W * channels).fill(1);
  for (let p = 0; p < B * H * W; p++) data.set(image.data.subarray(p * C, (p + 1) * C), p * channels);
  return { data, shape: [B, H, W, channels] };
}

function catBatches(parts: readonly Tensor[]): Tensor {
  const total = parts.reduce((n, p) => n + p.data.length, 0);
  const data = new Float32Array(total);
  let at = 0;
  for (const p of parts) {
    data.set(p.data, at);
    at += p.data.length;
  }
  return { data, shape: [parts.reduce((n, p) => n + p.shape[0]!, 0), ...parts[0]!.shape.slice(1)] };
}

export const ImageBatch = defineNode({
  id: 'ImageBatch',
  displayName: 'Batch Images',
  category: 'image',
  deprecated: true,
  description:
    'Joins two image batches into one, image1 first. image2 is resized (bilinear, centre-cropped) to image1\'s size when they differ, and an image without an alpha channel gets an opaque one when the other has it.',
  inputs: {
    image1: socket('IMAGE', { tooltip: 'The first images of the batch; their size is the batch\'s.' }),
    image2: socket('IMAGE', { tooltip: 'The images added after them.' }),
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', tooltip: 'image1 then image2, as one batch.' }],
  execute({ image1, image2 }) {
    const [B1, H, W, C1] = imageDims(image1, 'image1');
    const [B2, , , C2] = imageDims(image2, 'image2');
    const C = Math.max(C1, C2);
    checkTensorFits([B1 + B2, H, W, C], 'image2', 'the joined batch', { advice: 'the batch sizes or image1\'s size' });
    const first = padChannels(image1, C);
    let second = padChannels(image2, C);
    if (second.shape[1] !== H || second.shape[2] !== W) second = commonUpscale(second, W, H, 'bilinear', 'center', 'nhwc');
    return [catBatches([first, second])];
  },
});

export const RebatchImages = defineNode({
  id: 'RebatchImages',
  displayName: 'Rebatch Images',
  category: 'image/batch',
  description:
    'Regroups images into batches of batch_size (a list of batches comes out; the nodes after it run once per batch), e.g. to save or process a large batch in parts.',
  inputIsList: true,
  inputs: {
    images: socket('IMAGE', { tooltip: 'The images to regroup: one batch, or a list of batches.' }),
    batch_size: int({ default: 1, min: 1, max: 4096, tooltip: 'How many images per batch (the last batch may have fewer).' }),
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', isList: true, tooltip: 'The images in batches of batch_size, as a list.' }],
  execute({ images, batch_size }) {
    const size = batch_size[0];
    if (size === undefined || size < 1) throw new NodeInputError('batch_size must be at least 1', 'batch_size');
    const rows: Image[] = images.flatMap((image, i) => {
      const [B] = imageDims(image, `images[${i}]`);
      return Array.from({ length: B }, (_, r) => pickRows(image, [r]));
    });
    const batches: Image[] = [];
    for (let start = 0; start < rows.length; start += size) {
      const group = rows.slice(start, start + size);
      const [, H, W, C] = group[0]!.shape as [number, number, number, number];
      const odd = group.find((r) => r.shape[1] !== H || r.shape[2] !== W || r.shape[3] !== C);
      if (odd) {
        throw new NodeInputError(
          `images: a batch would hold images of ${W}x${H}x${C} and ${odd.shape[2]}x${odd.shape[1]}x${odd.shape[3]} (width x height x channels); resize them to one size first (ImageScale)`,
          'images',
        );
      }
      batches.push(catBatches(group));
    }
    return [batches];
  },
});
