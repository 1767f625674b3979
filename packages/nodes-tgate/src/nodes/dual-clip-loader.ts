import { combo, defineNode, NodeInputError } from '@gategraph/core';
import { detectSdxlTextEncoderFile, UnsupportedModelError } from '@gategraph/diffusion';
import { CheckpointError } from '@gategraph/onnx-graph';
import { listTextEncoders } from '../folders.ts';
import { resolveModelFile } from '../model-paths.ts';
import { modelFileInput } from '../model-file-input.ts';
import { loadSdxlTextEncoderFiles, sdxlTextEncoderFileProblem } from '../single-file-loading.ts';
import { ClipRef } from '../types.ts';

/** ComfyUI's DualCLIPLoader types this engine runs: SDXL's CLIP ViT-L/14 + OpenCLIP ViT-bigG/14. */
const TYPES = ['sdxl'] as const;

const first = modelFileInput('text_encoders', 'clip_name1', sdxlTextEncoderFileProblem);
const second = modelFileInput('text_encoders', 'clip_name2', sdxlTextEncoderFileProblem);

/** The role ('l' or 'g') of a named file, when it can be told; undefined otherwise (its own check says why). */
function roleOf(name: string | undefined, models: string | undefined): 'l' | 'g' | undefined {
  if (name === undefined) return undefined;
  const { file } = resolveModelFile('text_encoders', name, models);
  if (!file) return undefined;
  const detected = detectSdxlTextEncoderFile(file);
  return 'role' in detected ? detected.role : undefined;
}

/**
 * ComfyUI's DualCLIPLoader, type sdxl: SDXL's two text encoders from standalone files (models/text_encoders,
 * clip_l.safetensors and clip_g.safetensors, in either order), as the CLIP of an SDXL checkpoint: for
 * CLIPTextEncode and CLIPTextEncodeSDXL with another text encoder than the checkpoint's own.
 */
export const DualCLIPLoader = defineNode({
  id: 'DualCLIPLoader',
  displayName: 'DualCLIPLoader',
  category: 'advanced/loaders',
  description:
    'Loads SDXL\'s two text encoders from models/text_encoders/: a CLIP ViT-L/14 file (clip_l) and an OpenCLIP ViT-bigG/14 file with its text projection (clip_g), in either order, ' +
    'in transformers\' or OpenCLIP\'s names. Their ONNX graphs are built on first use and cached; CLIP\'s tokenizer ships with gategraph.',
  inputs: {
    clip_name1: combo(listTextEncoders, { tooltip: 'One of SDXL\'s text encoder files in models/text_encoders/ (or models/clip/): clip_l or clip_g.' }),
    clip_name2: combo(listTextEncoders, { tooltip: 'The other one.' }),
    type: combo([...TYPES], { tooltip: 'The model family the pair belongs to; gategraph runs sdxl (SD3, Flux and others need text encoders it does not run).' }),
    device: combo(['default', 'cpu'], { optional: true, advanced: true, tooltip: 'Where the text encoders run; gategraph runs everything on the CPU.' }),
  },
  outputs: [{ type: 'CLIP', name: 'CLIP', tooltip: 'SDXL\'s text encoders, for CLIPTextEncode and CLIPTextEncodeSDXL.' }],
  validate: ({ clip_name1, clip_name2 }, context) => {
    const each = first.validate(clip_name1, context);
    if (each !== true) return each;
    const other = second.validate(clip_name2, context);
    if (other !== true) return other;
    const [a, b] = [roleOf(clip_name1, context.paths?.models), roleOf(clip_name2, context.paths?.models)];
    if (a !== undefined && a === b) {
      return `clip_name2 "${clip_name2}": both files are ${a === 'l' ? 'CLIP ViT-L/14 (clip_l)' : 'OpenCLIP ViT-bigG/14 (clip_g)'}; SDXL takes one of each`;
    }
    return true;
  },
  fingerprint: ({ clip_name1, clip_name2 }, context) => `${first.fingerprint(clip_name1, context)}|${second.fingerprint(clip_name2, context)}`,
  async execute({ clip_name1, clip_name2 }, ctx) {
    const files = [first.resolve(clip_name1, ctx.paths.models), second.resolve(clip_name2, ctx.paths.models)] as const;
    try {
      return [new ClipRef(await loadSdxlTextEncoderFiles(files, ctx, `${clip_name1} + ${clip_name2}`))];
    } catch (error) {
      if (error instanceof UnsupportedModelError) throw new NodeInputError(`clip_name "${basenameOf(error.path)}": ${error.reason}`, 'clip_name1');
      if (error instanceof CheckpointError) throw new NodeInputError(`the text encoders ${clip_name1} + ${clip_name2} cannot be built: ${error.message}`, 'clip_name1');
      throw error;
    }
  },
});

function basenameOf(path: string): string {
  return path.split(/[\\/]/).pop() ?? path;
}
