/**
 * ComfyUI's conditioning nodes (nodes.py): lists of prompts, areas, masks, strengths and timestep ranges. They
 * only edit CONDITIONING values; the sampler evaluates them (conditioning-regions.ts and the engine's
 * regional-conditioning.ts). Ids, inputs, defaults and ranges are ComfyUI's, so workflows load unchanged.
 */
import { combo, defineNode, float, int, NodeInputError, socket } from '@gategraph/core';
import { zeros, type Tensor } from '@gategraph/diffusion';
import { MAX_RESOLUTION } from '../latent.ts';
import type { Conditioning, ConditioningEntry } from '../types.ts';


/** Every entry with some values set (ComfyUI's node_helpers.conditioning_set_values). */
function withValues(conditioning: Conditioning, values: Partial<ConditioningEntry>): Conditioning {
  return conditioning.map((entry) => ({ ...entry, ...values }));
}

function firstOf(conditioning: Conditioning, input: string): ConditioningEntry {
  const entry = conditioning[0];
  if (!entry) throw new NodeInputError(`${input} is an empty CONDITIONING; connect a CLIPTextEncode`, input);
  return entry;
}

export const ConditioningCombine = defineNode({
  id: 'ConditioningCombine',
  displayName: 'Conditioning (Combine)',
  category: 'conditioning',
  description:
    'Both conditionings as one list: the sampler denoises with each at every step and averages the results by their areas, masks and strengths ' +
    '(each entry costs a UNet pass of its own, batched where they fit). With TGATE / DeepCache each group of entries keeps its own cache, ' +
    'and the guided passes continue after the gate (no single-branch pass).',
  inputs: {
    conditioning_1: socket('CONDITIONING'),
    conditioning_2: socket('CONDITIONING'),
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  execute({ conditioning_1, conditioning_2 }) {
    return [[...conditioning_1, ...conditioning_2]];
  },
});

/** `to` padded with zero tokens or cut to `length` tokens, [1, length, D]. */
function fitTokens(t: Tensor, length: number): Tensor {
  const [, l, d] = t.shape as [number, number, number];
  if (l === length) return t;
  const out = new Float32Array(length * d);
  out.set(t.data.subarray(0, Math.min(l, length) * d));
  return { data: out, shape: [1, length, d] };
}

function mixed(a: Tensor, wa: number, b: Tensor, wb: number): Tensor {
  const out = new Float32Array(a.data.length);
  for (let k = 0; k < out.length; k++) out[k] = a.data[k]! * wa + b.data[k]! * wb;
  return { data: out, shape: [...a.shape] };
}

export const ConditioningAverage = defineNode({
  id: 'ConditioningAverage',
  displayName: 'Conditioning (Average)',
  category: 'conditioning',
  description:
    'Blends the token embeddings (and SDXL pooled outputs) of conditioning_to with the first entry of conditioning_from: ' +
    'to * strength + from * (1 - strength). conditioning_from is cut or padded with zeros to the length of each entry of conditioning_to.',
  inputs: {
    conditioning_to: socket('CONDITIONING'),
    conditioning_from: socket('CONDITIONING'),
    conditioning_to_strength: float({ default: 1.0, min: 0.0, max: 1.0, step: 0.01, tooltip: 'Weight of conditioning_to; the rest is conditioning_from.' }),
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  execute({ conditioning_to, conditioning_from, conditioning_to_strength: s }, ctx) {
    if (conditioning_from.length > 1) ctx.log.warn('ConditioningAverage: conditioning_from holds more than one entry; only the first is used, as in ComfyUI');
    const from = firstOf(conditioning_from, 'conditioning_from');
    return [
      conditioning_to.map((to) => {
        const t0 = fitTokens(from.hiddenStates, to.hiddenStates.shape[1]!);
        if (t0.shape[2] !== to.hiddenStates.shape[2]) {
          throw new NodeInputError(`conditioning_from is ${t0.shape[2]} wide and conditioning_to ${to.hiddenStates.shape[2]}: average the prompts of one text encoder`, 'conditioning_from');
        }
        const toPooled = to.pooled ?? from.pooled;
        const pooled = from.pooled && toPooled ? mixed(toPooled, s, from.pooled, 1 - s) : from.pooled;
        return { ...to, hiddenStates: mixed(to.hiddenStates, s, t0, 1 - s), ...(pooled ? { pooled } : {}) };
      }),
    ];
  },
});

export const ConditioningConcat = defineNode({
  id: 'ConditioningConcat',
  displayName: 'Conditioning (Concat)',
  category: 'conditioning',
  description:
    'Appends the tokens of the first entry of conditioning_from to each entry of conditioning_to (one longer prompt the UNet attends to at once, ' +
    'unlike Combine, which runs the prompts apart).',
  inputs: {
    conditioning_to: socket('CONDITIONING'),
    conditioning_from: socket('CONDITIONING'),
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  execute({ conditioning_to, conditioning_from }, ctx) {
    if (conditioning_from.length > 1) ctx.log.warn('ConditioningConcat: conditioning_from holds more than one entry; only the first is used, as in ComfyUI');
    const from = firstOf(conditioning_from, 'conditioning_from').hiddenStates;
    return [
      conditioning_to.map((to) => {
        const [, l, d] = to.hiddenStates.shape as [number, number, number];
        if (from.shape[2] !== d) throw new NodeInputError(`conditioning_from is ${from.shape[2]} wide and conditioning_to ${d}: concatenate the prompts of one text encoder`, 'conditioning_from');
        const data = new Float32Array((l + from.shape[1]!) * d);
        data.set(to.hiddenStates.data.subarray(0, l * d));
        data.set(from.data.subarray(0, from.shape[1]! * d), l * d);
        return { ...to, hiddenStates: { data, shape: [1, l + from.shape[1]!, d] } };
      }),
    ];
  },
});

const strengthInput = (tooltip: string) => float({ default: 1.0, min: 0.0, max: 10.0, step: 0.01, tooltip });

export const ConditioningSetArea = defineNode({
  id: 'ConditioningSetArea',
  displayName: 'Conditioning (Set Area)',
  category: 'conditioning',
  description:
    'Limits the conditioning to a rectangle of the image, in pixels (area composition: combine it with other prompts by ConditioningCombine). ' +
    "The rectangle's inner edges fade over 8 latent cells.",
  inputs: {
    conditioning: socket('CONDITIONING'),
    width: int({ default: 64, min: 64, max: MAX_RESOLUTION, step: 8, tooltip: 'Width of the area in pixels.' }),
    height: int({ default: 64, min: 64, max: MAX_RESOLUTION, step: 8, tooltip: 'Height of the area in pixels.' }),
    x: int({ default: 0, min: 0, max: MAX_RESOLUTION, step: 8, tooltip: 'Left edge of the area in pixels.' }),
    y: int({ default: 0, min: 0, max: MAX_RESOLUTION, step: 8, tooltip: 'Top edge of the area in pixels.' }),
    strength: strengthInput('Weight of this prompt where it overlaps others.'),
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  execute({ conditioning, width, height, x, y, strength }) {
    return [withValues(conditioning, { area: { unit: 'pixels', width, height, x, y }, strength, setAreaToBounds: false })];
  },
});

export const ConditioningSetAreaPercentage = defineNode({
  id: 'ConditioningSetAreaPercentage',
  displayName: 'Conditioning (Set Area with Percentage)',
  category: 'conditioning',
  description: 'Limits the conditioning to a rectangle given as fractions of the image size (0..1), whatever the image size.',
  inputs: {
    conditioning: socket('CONDITIONING'),
    width: float({ default: 1.0, min: 0, max: 1.0, step: 0.01, tooltip: 'Width as a fraction of the image width.' }),
    height: float({ default: 1.0, min: 0, max: 1.0, step: 0.01, tooltip: 'Height as a fraction of the image height.' }),
    x: float({ default: 0, min: 0, max: 1.0, step: 0.01, tooltip: 'Left edge as a fraction of the image width.' }),
    y: float({ default: 0, min: 0, max: 1.0, step: 0.01, tooltip: 'Top edge as a fraction of the image height.' }),
    strength: strengthInput('Weight of this prompt where it overlaps others.'),
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  execute({ conditioning, width, height, x, y, strength }) {
    return [withValues(conditioning, { area: { unit: 'fraction', width, height, x, y }, strength, setAreaToBounds: false })];
  },
});

export const ConditioningSetAreaStrength = defineNode({
  id: 'ConditioningSetAreaStrength',
  displayName: 'Conditioning (Set Area Strength)',
  category: 'conditioning',
  description: 'Sets the weight of the conditioning beside the others it is combined with.',
  inputs: {
    conditioning: socket('CONDITIONING'),
    strength: strengthInput('Weight of this prompt where it overlaps others.'),
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  execute({ conditioning, strength }) {
    return [withValues(conditioning, { strength })];
  },
});

export const ConditioningSetMask = defineNode({
  id: 'ConditioningSetMask',
  displayName: 'Conditioning (Set Mask)',
  category: 'conditioning',
  description:
    'Limits the conditioning to a mask (any size: resized to the latent). "mask bounds" runs the prompt on the mask\'s bounding box only, ' +
    'which is faster for small masks and gives the prompt the whole UNet at that size.',
  inputs: {
    conditioning: socket('CONDITIONING'),
    mask: socket('MASK', { tooltip: 'Where the prompt applies (1) and where not (0).' }),
    strength: strengthInput('Multiplies the mask: the weight of this prompt where it overlaps others.'),
    set_cond_area: combo(['default', 'mask bounds'] as const, { tooltip: 'default: the prompt sees the whole image; mask bounds: only the mask\'s bounding box.' }),
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  execute({ conditioning, mask, strength, set_cond_area }) {
    const shaped = mask.shape.length < 3 ? { data: mask.data, shape: [1, ...mask.shape] } : mask;
    return [withValues(conditioning, { mask: shaped, setAreaToBounds: set_cond_area !== 'default', maskStrength: strength })];
  },
});

export const ConditioningZeroOut = defineNode({
  id: 'ConditioningZeroOut',
  displayName: 'ConditioningZeroOut',
  category: 'advanced/conditioning',
  description: 'The same conditioning with every value 0 (tokens and pooled output): the "empty" negative some models are trained with.',
  inputs: { conditioning: socket('CONDITIONING') },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  execute({ conditioning }) {
    return [
      conditioning.map((entry) => ({
        ...entry,
        hiddenStates: zeros(entry.hiddenStates.shape),
        ...(entry.pooled ? { pooled: zeros(entry.pooled.shape) } : {}),
      })),
    ];
  },
});

export const ConditioningSetTimestepRange = defineNode({
  id: 'ConditioningSetTimestepRange',
  displayName: 'ConditioningSetTimestepRange',
  category: 'advanced/conditioning',
  description:
    'Uses the conditioning only during part of the sampling: start and end as fractions of the schedule (0 = the noisiest step, 1 = the end). ' +
    'Combine two of them to switch prompts mid-way.',
  inputs: {
    conditioning: socket('CONDITIONING'),
    start: float({ default: 0.0, min: 0.0, max: 1.0, step: 0.001, tooltip: 'Where the prompt starts being used (0 = from the first step).' }),
    end: float({ default: 1.0, min: 0.0, max: 1.0, step: 0.001, tooltip: 'Where it stops (1 = to the last step).' }),
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  execute({ conditioning, start, end }) {
    return [withValues(conditioning, { timestepRange: { start, end } })];
  },
});

export const conditioningNodes = [
  ConditioningCombine,
  ConditioningAverage,
  ConditioningConcat,
  ConditioningSetArea,
  ConditioningSetAreaPercentage,
  ConditioningSetAreaStrength,
  ConditioningSetMask,
  ConditioningZeroOut,
  ConditioningSetTimestepRange,
] as const;
