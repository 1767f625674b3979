import { combo, defineNode, NodeInputError } from '@gategraph/core';
import { UnsupportedModelError } from '@gategraph/diffusion';
import { CheckpointError } from '@gategraph/onnx-graph';
import { listTextEncoders } from '../folders.ts';
import { modelFileInput } from '../model-file-input.ts';
import { loadTextEncoderFile, textEncoderFileProblem } from '../single-file-loading.ts';
import { ClipRef } from '../types.ts';

/** ComfyUI's CLIPLoader types this engine runs: SD-1.x's CLIP ViT-L/14 and SD-2.x's OpenCLIP ViT-H/14. */
const TYPES = ['stable_diffusion'] as const;

const clipInput = modelFileInput('text_encoders', 'clip_name', textEncoderFileProblem);

/**
 * ComfyUI's CLIPLoader: a standalone text encoder file (models/text_encoders, e.g. clip_l.safetensors) as a CLIP,
 * for prompts encoded with another text encoder than the checkpoint's own.
 */
export const CLIPLoader = defineNode({
  id: 'CLIPLoader',
  displayName: 'Load CLIP',
  category: 'advanced/loaders',
  description:
    'Loads a text encoder file (.safetensors: CLIP ViT-L/14 for SD-1.x, OpenCLIP ViT-H/14 for SD-2.x, in transformers\' or OpenCLIP\'s names) from models/text_encoders/. ' +
    'Its ONNX graph is built on first use and cached; CLIP\'s tokenizer ships with gategraph.',
  inputs: {
    clip_name: combo(listTextEncoders, { tooltip: 'A text encoder file in models/text_encoders/ (or models/clip/).' }),
    type: combo([...TYPES], { tooltip: 'The model family the text encoder belongs to; gategraph runs stable_diffusion (SD-1.x and SD-2.x).' }),
    device: combo(['default', 'cpu'], { optional: true, advanced: true, tooltip: 'Where the text encoder runs; gategraph runs everything on the CPU.' }),
  },
  outputs: [{ type: 'CLIP', name: 'CLIP', tooltip: 'The text encoder, for CLIPTextEncode.' }],
  validate: ({ clip_name }, context) => clipInput.validate(clip_name, context),
  fingerprint: ({ clip_name }, context) => clipInput.fingerprint(clip_name, context),
  async execute({ clip_name }, ctx) {
    const file = clipInput.resolve(clip_name, ctx.paths.models);
    try {
      return [new ClipRef(await loadTextEncoderFile(file, ctx, clip_name))];
    } catch (error) {
      if (error instanceof UnsupportedModelError) throw new NodeInputError(`clip_name "${clip_name}": ${error.reason}`, 'clip_name');
      if (error instanceof CheckpointError) throw new NodeInputError(`clip_name "${clip_name}" cannot be built: ${error.message}`, 'clip_name');
      throw error;
    }
  },
});
