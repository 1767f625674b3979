/**
 * ComfyUI's latent batch nodes: LatentFromBatch, RepeatLatentBatch, RebatchLatents. They move whole latents
 * between batches, and what belongs to each latent moves with it: its noise mask row, and its batch_index (which
 * noise of the seed it gets), so a latent picked out of a batch is sampled with the noise it had in the batch.
 */
import { defineNode, int, NodeInputError, socket } from '@gategraph/core';
import { interpolate, repeat, type Tensor } from '@gategraph/diffusion';
import { latentDims, pickRows, PIXELS_PER_CELL, repeatToBatch, withSamples } from '../latent-values.ts';
import { checkTensorFits } from '../tensor-budget.ts';
import type { Latent } from '../types.ts';

const range = (from: number, to: number): number[] => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);

export const LatentFromBatch = defineNode({
  id: 'LatentFromBatch',
  displayName: 'Latent From Batch',
  category: 'latent/batch',
  description:
    'Picks latents out of a batch: length latents starting at batch_index (both cut to the batch). They keep their noise (batch index) and noise mask, ' +
    'so sampling one of them alone gives the image it had in the batch.',
  inputs: {
    samples: socket('LATENT', { tooltip: 'The batch to pick from.' }),
    batch_index: int({ default: 0, min: 0, max: 63, tooltip: 'The first latent to take (0 = the first of the batch).' }),
    length: int({ default: 1, min: 1, max: 64, tooltip: 'How many latents to take.' }),
  },
  outputs: [{ type: 'LATENT', name: 'LATENT', tooltip: 'The picked latents.' }],
  execute({ samples, batch_index, length }) {
    const [B] = latentDims(samples, 'samples');
    const first = Math.min(B - 1, batch_index);
    const count = Math.min(B - first, length);
    const rows = range(first, first + count);
    const masks = samples.noise_mask;
    let noiseMask = masks;
    if (masks && masks.shape[0] !== 1) {
      // A mask batch shorter than the latents' is tiled to it first (ComfyUI's repeat, then slice).
      const M = masks.shape[0]!;
      noiseMask = pickRows(masks, range(first, Math.min(first + count, Math.max(M, B))).map((i) => i % M));
    }
    const out: Latent = {
      ...withSamples(samples, pickRows(samples.samples, rows)),
      batch_index: samples.batch_index ? samples.batch_index.slice(first, first + count) : rows,
      ...(noiseMask ? { noise_mask: noiseMask } : {}),
    };
    return [out];
  },
});

export const RepeatLatentBatch = defineNode({
  id: 'RepeatLatentBatch',
  displayName: 'Repeat Latent Batch',
  category: 'latent/batch',
  description:
    'Repeats a batch of latents amount times (a, b becomes a, b, a, b for 2). Each copy gets its own noise: batch indices, where set, continue after the originals\'.',
  inputs: {
    samples: socket('LATENT', { tooltip: 'The batch to repeat.' }),
    amount: int({ default: 1, min: 1, max: 64, tooltip: 'How many copies of the batch.' }),
  },
  outputs: [{ type: 'LATENT', name: 'LATENT', tooltip: 'The repeated batch.' }],
  execute({ samples, amount }) {
    const [B, C, h, w] = latentDims(samples, 'samples');
    checkTensorFits([B * amount, C, h, w], 'amount', 'the repeated latent batch');
    const masks = samples.noise_mask;
    // Each latent keeps its own mask: a shorter mask batch is tiled to the latents' before repeating. (ComfyUI
    // computes that tiling and then repeats the untiled masks, leaving a mask batch that fits no latent batch.)
    const noiseMask = masks && masks.shape[0]! > 1 ? repeat(repeatToBatch(masks, B), [amount, 1, 1, 1]) : masks;
    const indices = samples.batch_index;
    // Copy i of index x is x + i * (the span of the indices), so the copies' noises follow the originals'.
    const offset = indices ? Math.max(...indices) - Math.min(...indices) + 1 : 0;
    const out: Latent = {
      ...withSamples(samples, repeat(samples.samples, [amount, 1, 1, 1])),
      ...(noiseMask ? { noise_mask: noiseMask } : {}),
      ...(indices ? { batch_index: range(0, amount).flatMap((i) => indices.map((x) => x + i * offset)) } : {}),
    };
    return [out];
  },
});

/** One latent of a list, split into its batch rows, each with what goes with it. */
interface Row {
  latent: Latent;
  row: number;
  /** Its noise mask [1, 1, H, W], when the latent has one. */
  mask?: Tensor;
  batchIndex: number;
}

/** The rows of each latent of a list, in order, with batch indices counted on across the list where unset. */
function rowsOf(latents: readonly Latent[]): Row[] {
  const rows: Row[] = [];
  latents.forEach((latent, i) => {
    const [B] = latentDims(latent, `latents[${i}]`);
    const masks = latent.noise_mask ? repeatToBatch(latent.noise_mask, B) : undefined;
    const offset = rows.length;
    for (let r = 0; r < B; r++) {
      rows.push({ latent, row: r, ...(masks ? { mask: pickRows(masks, [r]) } : {}), batchIndex: latent.batch_index?.[r] ?? offset + r });
    }
  });
  return rows;
}

function cat(parts: readonly Tensor[]): Tensor {
  const per = parts[0]!.data.length;
  const data = new Float32Array(per * parts.length);
  parts.forEach((p, i) => data.set(p.data, i * per));
  return { data, shape: [parts.length, ...parts[0]!.shape.slice(1)] };
}

/**
 * The noise masks of a group, or undefined when none of its rows has one. A row without a mask masks nothing
 * (ones, ComfyUI's default at the image size); masks from different latents may differ in size, and are resized
 * to the first row's so they can share a batch (ComfyUI fails there). A batch of ones is dropped, as ComfyUI does.
 */
function groupMask(group: readonly Row[]): Tensor | undefined {
  if (!group.some((r) => r.mask)) return undefined;
  const first = group[0]!;
  const [, , h, w] = first.latent.samples.shape as [number, number, number, number];
  const [mh, mw] = first.mask ? (first.mask.shape.slice(2) as [number, number]) : [h * PIXELS_PER_CELL, w * PIXELS_PER_CELL];
  const ones: Tensor = { data: new Float32Array(mh * mw).fill(1), shape: [1, 1, mh, mw] };
  const mask = cat(group.map((r) => (!r.mask ? ones : r.mask.shape[2] === mh && r.mask.shape[3] === mw ? r.mask : interpolate(r.mask, mw, mh, 'bilinear'))));
  let sum = 0;
  for (const v of mask.data) sum += v;
  return sum / mask.data.length === 1 ? undefined : mask;
}

/** The latent of a group of rows of one size: samples, noise masks, batch indices. */
function batchOf(group: readonly Row[]): Latent {
  const first = group[0]!;
  const everyEmpty = group.every((r) => r.latent.emptyImageSize !== undefined);
  const base: Latent = { samples: first.latent.samples, ...(everyEmpty ? { emptyImageSize: first.latent.emptyImageSize! } : {}) };
  const mask = groupMask(group);
  return {
    ...withSamples(base, cat(group.map((r) => pickRows(r.latent.samples, [r.row])))),
    batch_index: group.map((r) => r.batchIndex),
    ...(mask ? { noise_mask: mask } : {}),
  };
}

export const RebatchLatents = defineNode({
  id: 'RebatchLatents',
  displayName: 'Rebatch Latents',
  category: 'latent/batch',
  description:
    'Regroups latents into batches of batch_size (a list of latents comes out; the nodes after it run once per batch). Latents of different sizes never share a batch. ' +
    'Each latent keeps its noise (batch index) and noise mask.',
  inputIsList: true,
  inputs: {
    latents: socket('LATENT', { tooltip: 'The latents to regroup: one batch, or a list of batches.' }),
    batch_size: int({ default: 1, min: 1, max: 4096, tooltip: 'How many latents per batch (the last batch may have fewer).' }),
  },
  outputs: [{ type: 'LATENT', name: 'LATENT', isList: true, tooltip: 'The latents in batches of batch_size, as a list.' }],
  execute({ latents, batch_size }) {
    const size = batch_size[0];
    if (size === undefined || size < 1) throw new NodeInputError('batch_size must be at least 1', 'batch_size');
    const batches: Latent[] = [];
    let group: Row[] = [];
    const sameSize = (a: Row, b: Row) => a.latent.samples.shape[2] === b.latent.samples.shape[2] && a.latent.samples.shape[3] === b.latent.samples.shape[3];
    for (const row of rowsOf(latents)) {
      if (group.length === size || (group.length > 0 && !sameSize(group[0]!, row))) {
        batches.push(batchOf(group));
        group = [];
      }
      group.push(row);
    }
    if (group.length > 0) batches.push(batchOf(group));
    return [batches];
  },
});
