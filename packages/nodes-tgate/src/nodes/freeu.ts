/**
 * ComfyUI's FreeU and FreeU_V2 (comfy_extras/nodes_freelunch.py): in the UNet's up path, the backbone features
 * are amplified (b1, b2) and the low frequencies of the skip features damped (s1, s2), at the levels with 4 x and
 * 2 x the first level's channels. ComfyUI patches the UNet's forward; here the same operations are written into
 * the UNet's ONNX graph (@gategraph/onnx-graph freeu.ts: the Fourier filter as matrix products, no DFT op), once
 * per model and settings, and cached. The weights are shared with the model, not copied.
 */
import { defineNode, float, socket, type ExecutionContext } from '@gategraph/core';
import { freeURecipe, type FreeUSpec } from '@gategraph/diffusion';
import { ModelRef } from '../types.ts';
import { loadUnetVariant } from '../unet-variants.ts';

const factor = (value: number, tooltip: string) => float({ default: value, min: 0.0, max: 10.0, step: 0.01, tooltip });

const B1 = 'Backbone factor at the deepest levels (4 x the first level\'s channels; SD-1.x: 1280): above 1 strengthens the denoising backbone.';
const B2 = 'Backbone factor at the middle levels (2 x the first level\'s channels; SD-1.x: 640).';
const S1 = 'Skip factor at the deepest levels: the lowest frequencies of the skip features are multiplied by it; below 1 lets the backbone dominate.';
const S2 = 'Skip factor at the middle levels.';

async function applyFreeU(model: ModelRef, spec: FreeUSpec, ctx: ExecutionContext): Promise<[ModelRef]> {
  if (spec.b1 === 1 && spec.b2 === 1 && spec.s1 === 1 && spec.s2 === 1) return [model];
  try {
    const patched = await loadUnetVariant(model.model, await freeURecipe(model.model, spec), ctx, 'model');
    // The MODEL's patches (TGATE, DeepCache, the sampling override) apply to the patched UNet as to any.
    return [new ModelRef(patched, model.patches)];
  } catch (error) {
    if ((error as Error).name !== 'UnetUnchangedError') throw error;
    ctx.log.warn((error as Error).message);
    return [model];
  }
}

const DESCRIPTION =
  'the UNet\'s up path amplifies its backbone features and damps the low frequencies of its skip features, which often gives ' +
  'cleaner detail and structure at no cost. Applied at the up layers whose input has 4 x (b1, s1) or 2 x (b2, s2) the first level\'s ' +
  'channels, as ComfyUI applies it. The changed UNet graph is built once per model and settings (weights shared) and cached; ' +
  'TGATE and DeepCache patches still apply.';

export const FreeU = defineNode({
  id: 'FreeU',
  displayName: 'FreeU',
  category: 'model_patches/unet',
  description: `FreeU (Si et al. 2023): ${DESCRIPTION} The first half of the backbone's channels is multiplied by b.`,
  inputs: {
    model: socket('MODEL', { tooltip: 'The model whose UNet gets FreeU.' }),
    b1: factor(1.1, B1),
    b2: factor(1.2, B2),
    s1: factor(0.9, S1),
    s2: factor(0.2, S2),
  },
  outputs: [{ type: 'MODEL', name: 'MODEL', tooltip: 'The model with FreeU in its UNet.' }],
  execute({ model, b1, b2, s1, s2 }, ctx) {
    return applyFreeU(model, { version: 1, b1, b2, s1, s2 }, ctx);
  },
});

export const FreeU_V2 = defineNode({
  id: 'FreeU_V2',
  displayName: 'FreeU_V2',
  category: 'model_patches/unet',
  description:
    `FreeU version 2: ${DESCRIPTION} The first half of the backbone's channels is multiplied by 1 + (b - 1) x the feature map's channel mean ` +
    '(scaled to 0..1 per image), so the amplification follows the image\'s structure.',
  inputs: {
    model: socket('MODEL', { tooltip: 'The model whose UNet gets FreeU_V2.' }),
    b1: factor(1.3, B1),
    b2: factor(1.4, B2),
    s1: factor(0.9, S1),
    s2: factor(0.2, S2),
  },
  outputs: [{ type: 'MODEL', name: 'MODEL', tooltip: 'The model with FreeU_V2 in its UNet.' }],
  execute({ model, b1, b2, s1, s2 }, ctx) {
    return applyFreeU(model, { version: 2, b1, b2, s1, s2 }, ctx);
  },
});
