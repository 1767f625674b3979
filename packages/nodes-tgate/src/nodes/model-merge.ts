/**
 * ComfyUI's ModelMergeSimple (comfy_extras/nodes_model_merging.py): the UNet weights of model1 * ratio + model2 *
 * (1 - ratio). ComfyUI adds model2's weights to model1 as patches in memory; here the merged weights are a UNet
 * file of their own (written once per pair of models and ratio, and cached), opened like any model. The rest
 * of model1 (its patches, its ModelSamplingDiscrete override, its scheduler config) is kept, as ComfyUI keeps
 * model1's ModelPatcher; model2 gives its UNet weights only.
 */
import { defineNode, float, NodeInputError, socket } from '@gategraph/core';
import { mergeRecipe, unetMergeProblem } from '@gategraph/diffusion';
import { realpathSync } from 'node:fs';
import { ModelRef } from '../types.ts';
import { loadUnetVariant } from '../unet-variants.ts';

export const ModelMergeSimple = defineNode({
  id: 'ModelMergeSimple',
  displayName: 'ModelMergeSimple',
  category: 'advanced/model_merging',
  description:
    'Blends the UNet weights of two models of one architecture: model1 * ratio + model2 * (1 - ratio). ' +
    'The merged weights are written once per pair of models and ratio (a full copy of the UNet\'s weights: gigabytes for SD; the last few merges are kept) and reused by later runs. ' +
    'model1\'s TGATE / DeepCache patches and sampling settings are kept.',
  inputs: {
    model1: socket('MODEL', { tooltip: 'The first model: its patches and sampling settings are the result\'s.' }),
    model2: socket('MODEL', { tooltip: 'The second model, of the same architecture (both .safetensors checkpoints of one family, or ONNX folders from one exporter).' }),
    ratio: float({
      default: 1.0,
      min: 0.0,
      max: 1.0,
      step: 0.01,
      tooltip: 'The share of model1 in every weight: 1 = model1 as it is, 0 = model2\'s weights, 0.5 = the average.',
    }),
  },
  outputs: [{ type: 'MODEL', name: 'MODEL', tooltip: 'The merged model.' }],
  async execute({ model1, model2, ratio }, ctx) {
    const a = model1.model;
    const b = model2.model;
    // The same weights on both sides (one checkpoint twice): every weight merges to itself.
    if (a === b || realpathSync(a.unet.path) === realpathSync(b.unet.path)) return [model1];
    if (ratio === 1) {
      // model1 as it is, as ComfyUI's merge leaves it at ratio 1; the pair is still checked, so a graph that works
      // at 1 does not fail at 0.99.
      const problem = await unetMergeProblem(a, b);
      if (problem) throw new NodeInputError(`model2: ${problem}`, 'model2');
      return [model1];
    }
    // Different architectures are told apart from the opened models, without reading a graph.
    const different = await unetMergeProblem(a, b, false);
    if (different) throw new NodeInputError(`model2: ${different}`, 'model2');
    const merged = await loadUnetVariant(a, await mergeRecipe(a, b, ratio), ctx, 'model2');
    return [new ModelRef(merged, model1.patches)];
  },
});
