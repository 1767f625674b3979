import { combo, defineNode, NodeInputError } from '@gategraph/core';
import { checkSupportedModel, ModelFolderError, UnsupportedModelError } from '@gategraph/diffusion';
import { statSync } from 'node:fs';
import { extname } from 'node:path';
import { listCheckpoints, resolveModelFolder } from '../folders.ts';
import { loadModel, modelFolderStamp } from '../model-cache.ts';
import { ClipRef, ModelRef, VaeRef } from '../types.ts';

/**
 * Loads an ONNX Stable Diffusion folder (diffusers / optimum layout) from the models folder. The name is
 * ComfyUI's; a "checkpoint" here is a folder (`models/<name>/unet/model.onnx`, ...), not a .safetensors file.
 */
export const CheckpointLoaderSimple = defineNode({
  id: 'CheckpointLoaderSimple',
  displayName: 'Load Checkpoint',
  category: 'loaders',
  description:
    'Loads a Stable Diffusion 1.x / 2.x ONNX model folder (as optimum-cli or diffusers export it: text_encoder, unet, vae_decoder, optional vae_encoder, tokenizer; fp16 folders are converted to float32 once) from the models folder. ' +
    'Its sessions are shared: loading the same folder twice opens it once. See docs/models.md for what works.',
  inputs: {
    ckpt_name: combo(listCheckpoints, {
      tooltip:
        'An ONNX model folder (model_index.json and the ONNX components) under models/, models/checkpoints/ or models/diffusers/ (or the folders GATEGRAPH_MODELS and extra_model_paths.yaml add). Single-file checkpoints (.safetensors ...) in models/checkpoints/ are listed but not loaded yet.',
    }),
  },
  outputs: [
    { type: 'MODEL', name: 'MODEL', tooltip: 'The denoising UNet, used by the samplers.' },
    { type: 'CLIP', name: 'CLIP', tooltip: 'The tokenizer and text encoder, for encoding prompts.' },
    { type: 'VAE', name: 'VAE', tooltip: 'The VAE, to turn latents into images and back.' },
  ],
  // A model of a kind this engine does not run (SDXL, SD3, a GPU-optimized export, a .ckpt...) is refused when
  // the prompt is queued, with what it is, instead of failing when the sampler first runs it.
  validate({ ckpt_name }, context) {
    if (ckpt_name === undefined) return true;
    const { dir } = resolveModelFolder(ckpt_name, context.paths?.models);
    if (!dir) return true; // the combo check already named the missing value
    try {
      checkSupportedModel(dir);
    } catch (error) {
      if (error instanceof UnsupportedModelError) return `ckpt_name "${ckpt_name}": ${error.reason}`;
      throw error;
    }
    // A single file that checkSupportedModel has no word for (.sft, .pt2, .pkl ...): refused here, never opened.
    if (isFile(dir)) return `ckpt_name "${ckpt_name}": ${singleFileRefusal(dir)}`;
    return true;
  },
  // The folder's files can change under the same name (re-exported, retrained): load again when they do.
  fingerprint({ ckpt_name }) {
    if (ckpt_name === undefined) return '';
    const { dir } = resolveModelFolder(ckpt_name, undefined);
    return dir ? `${dir}|${modelFolderStamp(dir)}` : 'missing';
  },
  async execute({ ckpt_name }, ctx) {
    const { dir, searched } = resolveModelFolder(ckpt_name, ctx.paths.models);
    if (!dir) {
      throw new NodeInputError(
        `ckpt_name "${ckpt_name}": no such model folder in ${searched.join(', ')}; put the model folder there or pick another one`,
        'ckpt_name',
      );
    }
    let model;
    try {
      model = await loadModel(dir);
    } catch (error) {
      if (error instanceof ModelFolderError) {
        throw new NodeInputError(`ckpt_name "${ckpt_name}" cannot be loaded. ${error.message}`, 'ckpt_name');
      }
      throw error;
    }
    for (const warning of model.warnings) ctx.log.warn(`${ckpt_name}: ${warning}`);
    return [new ModelRef(model), new ClipRef(model), new VaeRef(model)];
  },
});

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Why a checkpoint file is refused (the engine does not build graphs from single files yet). */
function singleFileRefusal(path: string): string {
  const ext = extname(path).toLowerCase();
  if (ext === '.safetensors' || ext === '.sft') {
    return 'single-file checkpoints are not supported yet: gategraph runs Stable Diffusion 1.x and 2.x ONNX folders (docs/models.md says how to export one)';
  }
  return (
    'this is a PyTorch checkpoint file (pickled or archived), which can run code when it is loaded, so gategraph never opens one: ' +
    'convert it to .safetensors (e.g. with a trusted Python: torch.load, then safetensors.torch.save_file) or use an ONNX folder of the model'
  );
}
