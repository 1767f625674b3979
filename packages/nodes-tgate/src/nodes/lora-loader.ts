import { combo, defineNode, float, NodeInputError, socket, type ExecutionContext } from '@gategraph/core';
import { unetVariantOf, type DiffusionModel } from '@gategraph/diffusion';
import { CheckpointError } from '@gategraph/onnx-graph';
import { listLoras } from '../folders.ts';
import { modelFileInput } from '../model-file-input.ts';
import { loadSingleFileModel, loraFileProblem, provenanceOf, type SingleFileProvenance } from '../single-file-loading.ts';
import { ClipRef, ModelRef } from '../types.ts';

// ComfyUI's strength range (nodes.py LoraLoader): negative strengths subtract the LoRA.
const strength = (tooltip: string) => float({ default: 1.0, min: -100, max: 100, step: 0.01, tooltip });

const LORA_TOOLTIP = 'A LoRA file (.safetensors, kohya / LDM / diffusers naming) in models/loras/.';


/** The model a LoRA is applied to must have been built from a single file: its weights are rebuilt with the LoRA. */
function singleFileOf(model: Pick<DiffusionModel, 'name' | 'index'>, input: string): SingleFileProvenance {
  const provenance = provenanceOf(model);
  const variant = unetVariantOf(model);
  if (!provenance && variant) {
    throw new NodeInputError(
      `${input}: this MODEL's UNet was changed by ${variant.kind === 'merge' ? 'ModelMergeSimple' : 'FreeU'} (from ${variant.baseName}); apply the LoRA to the model before that node`,
      input,
    );
  }
  if (!provenance) {
    // A text encoder of CLIPLoader has its own folder with a model_index.json of its kind.
    const what = model.index._gategraph_text_encoder ? 'a text encoder loaded by CLIPLoader' : 'an ONNX model folder';
    throw new NodeInputError(
      `${input}: ${model.name} is ${what}; LoRAs are applied to single-file checkpoints (models/checkpoints/*.safetensors), whose weights gategraph builds itself. Load the model's .safetensors file instead`,
      input,
    );
  }
  return provenance;
}

const loraInput = modelFileInput('loras', 'lora_name', loraFileProblem);


async function rebuild(provenance: SingleFileProvenance, ctx: Pick<ExecutionContext, 'log' | 'progress' | 'paths'>, label: string): Promise<DiffusionModel> {
  try {
    return await loadSingleFileModel(provenance, ctx, label);
  } catch (error) {
    if (error instanceof CheckpointError) throw new NodeInputError(`lora_name: ${error.message}`, 'lora_name');
    throw error;
  }
}

/**
 * ComfyUI's LoraLoader: the LoRA's low-rank updates are added to the UNet's and the text encoder's weights
 * (W + strength * alpha / rank * up @ down), in a rebuilt copy of the model cached by (checkpoint, LoRAs,
 * strengths); the MODEL and CLIP that came in are unchanged. Stacking LoraLoaders stacks the LoRAs.
 */
export const LoraLoader = defineNode({
  id: 'LoraLoader',
  displayName: 'Load LoRA',
  category: 'loaders',
  description:
    'Applies a LoRA to a model loaded from a single-file checkpoint: its updates are added to the UNet (strength_model) and text encoder (strength_clip) weights. ' +
    'The patched weights are built once per checkpoint, LoRAs and strengths and cached on disk (a UNet takes seconds to a minute); later runs reuse them.',
  inputs: {
    model: socket('MODEL', { tooltip: 'The diffusion model the LoRA is applied to.' }),
    clip: socket('CLIP', { tooltip: 'The CLIP model the LoRA is applied to.' }),
    lora_name: combo(listLoras, { tooltip: LORA_TOOLTIP }),
    strength_model: strength('How strongly the UNet is modified; negative values subtract the LoRA.'),
    strength_clip: strength('How strongly the text encoder is modified; negative values subtract the LoRA.'),
  },
  outputs: [
    { type: 'MODEL', name: 'MODEL', tooltip: 'The modified diffusion model.' },
    { type: 'CLIP', name: 'CLIP', tooltip: 'The modified CLIP model.' },
  ],
  validate: ({ lora_name }, context) => loraInput.validate(lora_name, context),
  fingerprint: ({ lora_name }, context) => loraInput.fingerprint(lora_name, context),
  async execute({ model, clip, lora_name, strength_model, strength_clip }, ctx) {
    if (strength_model === 0 && strength_clip === 0) return [model, clip];
    const path = loraInput.resolve(lora_name, ctx.paths.models);
    const fromModel = singleFileOf(model.model, 'model');
    const fromClip = singleFileOf(clip.model, 'clip');
    const label = `${model.model.name} + ${lora_name}`;
    // MODEL and CLIP may carry different LoRAs already (LoraLoaderModelOnly before this node), or come from
    // different checkpoints: each side keeps its own and gets this LoRA at its strength.
    const unetLoras = strength_model === 0 ? fromModel.unetLoras : [...fromModel.unetLoras, { path, strength: strength_model }];
    const textLoras = strength_clip === 0 ? fromClip.textLoras : [...fromClip.textLoras, { path, strength: strength_clip }];
    const sameFiles = fromModel.checkpoint === fromClip.checkpoint && fromModel.vae === fromClip.vae;
    const forModel = await rebuild({ ...fromModel, unetLoras, textLoras: sameFiles ? textLoras : fromModel.textLoras }, ctx, label);
    const forClip = sameFiles ? forModel : await rebuild({ ...fromClip, textLoras }, ctx, label);
    return [new ModelRef(forModel, model.patches), new ClipRef(forClip, clip.stopAtClipLayer)];
  },
});

/** ComfyUI's LoraLoaderModelOnly: LoraLoader for the UNet alone. */
export const LoraLoaderModelOnly = defineNode({
  id: 'LoraLoaderModelOnly',
  displayName: 'LoraLoaderModelOnly',
  category: 'loaders',
  description: 'Applies a LoRA to the UNet of a model loaded from a single-file checkpoint (see Load LoRA); the text encoder is left as it is.',
  inputs: {
    model: socket('MODEL', { tooltip: 'The diffusion model the LoRA is applied to.' }),
    lora_name: combo(listLoras, { tooltip: LORA_TOOLTIP }),
    strength_model: strength('How strongly the UNet is modified; negative values subtract the LoRA.'),
  },
  outputs: [{ type: 'MODEL', name: 'MODEL', tooltip: 'The modified diffusion model.' }],
  validate: ({ lora_name }, context) => loraInput.validate(lora_name, context),
  fingerprint: ({ lora_name }, context) => loraInput.fingerprint(lora_name, context),
  async execute({ model, lora_name, strength_model }, ctx) {
    if (strength_model === 0) return [model];
    const path = loraInput.resolve(lora_name, ctx.paths.models);
    const from = singleFileOf(model.model, 'model');
    const built = await rebuild({ ...from, unetLoras: [...from.unetLoras, { path, strength: strength_model }] }, ctx, `${model.model.name} + ${lora_name}`);
    return [new ModelRef(built, model.patches)];
  },
});
