import { combo, defineNode, NodeInputError } from '@gategraph/core';
import { UnsupportedModelError } from '@gategraph/diffusion';
import { CheckpointError } from '@gategraph/onnx-graph';
import { listTextEncoders, resolveModelFile } from '../folders.ts';
import { fileStamp } from './checkpoint-loader.ts';
import { loadTextEncoderFile, textEncoderFileProblem } from '../single-file-loading.ts';
import { ClipRef } from '../types.ts';

/** ComfyUI's CLIPLoader types this engine runs: SD-1.x's CLIP ViT-L/14 and SD-2.x's OpenCLIP ViT-H/14. */
const TYPES = ['stable_diffusion'] as const;

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
  validate({ clip_name }, context) {
    if (clip_name === undefined) return true;
    const { file } = resolveModelFile('text_encoders', clip_name, context.paths?.models);
    if (!file) return true; // the combo check named it
    const problem = textEncoderFileProblem(file);
    return problem ? `clip_name "${clip_name}": ${problem}` : true;
  },
  fingerprint({ clip_name }) {
    const found = clip_name === undefined ? undefined : resolveModelFile('text_encoders', clip_name, undefined).file;
    return found ? `${found}|${fileStamp(found)}` : 'missing';
  },
  async execute({ clip_name }, ctx) {
    const { file, searched } = resolveModelFile('text_encoders', clip_name, ctx.paths.models);
    if (!file) throw new NodeInputError(`clip_name "${clip_name}": no such file in ${searched.join(', ')}`, 'clip_name');
    try {
      return [new ClipRef(await loadTextEncoderFile(file, ctx, clip_name))];
    } catch (error) {
      if (error instanceof UnsupportedModelError) throw new NodeInputError(`clip_name "${clip_name}": ${error.reason}`, 'clip_name');
      if (error instanceof CheckpointError) throw new NodeInputError(`clip_name "${clip_name}" cannot be built: ${error.message}`, 'clip_name');
      throw error;
    }
  },
});
