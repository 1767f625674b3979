import { combo, defineNode, NodeInputError, type ExecutionContext } from '@gategraph/core';
import { checkSupportedModel, detectCheckpoint, ModelFolderError, UnsupportedModelError, type DiffusionModel } from '@gategraph/diffusion';
import { CheckpointError } from '@gategraph/onnx-graph';
import { statSync } from 'node:fs';
import { listCheckpoints, listConfigs, resolveModelFile, resolveModelFolder } from '../folders.ts';
import { LdmConfigError, readLdmConfig } from '../ldm-config.ts';
import { fileStamp } from '../model-file-input.ts';
import { loadModel, modelFolderStamp } from '../model-cache.ts';
import { checkpointFamily, isSafetensorsFile, loadSingleFileModel, type SingleFileProvenance } from '../single-file-loading.ts';
import { ClipRef, ModelRef, VaeRef } from '../types.ts';
import { checkpointWeightsProblem, weightsProblem } from '../memory.ts';

/**
 * Loads a Stable Diffusion 1.x / 2.x / SDXL checkpoint: an ONNX folder (diffusers / optimum layout) or a single-file
 * .safetensors checkpoint as ComfyUI keeps them (LDM keys), whose ONNX graphs are built once and cached.
 */
export const CheckpointLoaderSimple = defineNode({
  id: 'CheckpointLoaderSimple',
  displayName: 'Load Checkpoint',
  category: 'loaders',
  description:
    'Loads a Stable Diffusion 1.x / 2.x / SDXL checkpoint: a single-file .safetensors checkpoint as ComfyUI keeps them in models/checkpoints/ (its ONNX graphs are built on first use, seconds to minutes, and cached next to it), ' +
    'or an ONNX model folder (as optimum-cli or diffusers export it; fp16 folders are converted to float32 once). ' +
    'Its sessions are shared: loading the same checkpoint twice opens it once. See docs/models.md for what works.',
  inputs: {
    ckpt_name: combo(listCheckpoints, {
      tooltip:
        'A single-file SD-1.x / 2.x / SDXL checkpoint (.safetensors) in models/checkpoints/, or an ONNX model folder under models/, models/checkpoints/ or models/diffusers/ (and the folders GATEGRAPH_MODELS and extra_model_paths.yaml add). .ckpt / .pt pickles are listed but never opened.',
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
    // A single file that checkSupportedModel has no word for (.pt2, .pkl ...): refused here, never opened.
    if (isFile(dir) && !isSafetensorsFile(dir)) return `ckpt_name "${ckpt_name}": ${UNKNOWN_FILE}`;
    const tooBig = isFile(dir) ? checkpointWeightsProblem(dir) : weightsProblem(dir);
    if (tooBig) return `ckpt_name "${ckpt_name}": ${tooBig}`;
    return true;
  },
  // The folder's files can change under the same name (re-exported, retrained): load again when they do.
  fingerprint({ ckpt_name }, context) {
    if (ckpt_name === undefined) return '';
    const { dir } = resolveModelFolder(ckpt_name, context.paths?.models);
    if (!dir) return 'missing';
    return `${dir}|${isFile(dir) ? fileStamp(dir) : modelFolderStamp(dir)}`;
  },
  async execute({ ckpt_name }, ctx) {
    const { dir, searched } = resolveModelFolder(ckpt_name, ctx.paths.models);
    if (!dir) {
      throw new NodeInputError(
        `ckpt_name "${ckpt_name}": no such model folder in ${searched.join(', ')}; put the model folder there or pick another one`,
        'ckpt_name',
      );
    }
    const model = isSafetensorsFile(dir) ? await loadCheckpointFile(dir, ckpt_name, ctx) : await loadCheckpointFolder(dir, ckpt_name);
    for (const warning of model.warnings) ctx.log.warn(`${ckpt_name}: ${warning}`);
    return [new ModelRef(model), new ClipRef(model), new VaeRef(model)];
  },
});

async function loadCheckpointFolder(dir: string, ckptName: string): Promise<DiffusionModel> {
  try {
    return await loadModel(dir);
  } catch (error) {
    if (error instanceof ModelFolderError) throw new NodeInputError(`ckpt_name "${ckptName}" cannot be loaded. ${error.message}`, 'ckpt_name');
    throw error;
  }
}

/** A single-file checkpoint: its family from its keys, its graphs built on first use (progress and log say so). */
async function loadCheckpointFile(file: string, ckptName: string, ctx: Pick<ExecutionContext, 'log' | 'progress' | 'paths'>): Promise<DiffusionModel> {
  const detected = checkpointFamily(file);
  if ('refusal' in detected) throw new NodeInputError(`ckpt_name "${ckptName}": ${detected.refusal}`, 'ckpt_name');
  return buildCheckpointFile({ checkpoint: file, family: detected.family, unetLoras: [], textLoras: [] }, ckptName, ctx);
}

async function buildCheckpointFile(provenance: SingleFileProvenance, ckptName: string, ctx: Pick<ExecutionContext, 'log' | 'progress' | 'paths'>): Promise<DiffusionModel> {
  try {
    return await loadSingleFileModel(provenance, ctx, ckptName);
  } catch (error) {
    if (error instanceof CheckpointError || error instanceof ModelFolderError) {
      throw new NodeInputError(`ckpt_name "${ckptName}" cannot be loaded. ${error.message}`, 'ckpt_name');
    }
    throw error;
  }
}

/** config_name's file, and why it cannot be used with ckpt_name's (undefined when it can). */
function configProblem(configName: string, ckptName: string, hostModels: string | undefined): { config?: ReturnType<typeof readLdmConfig>; file?: string; problem?: string } {
  const { dir } = resolveModelFolder(ckptName, hostModels);
  if (!dir) return {}; // ckpt_name's own check names it
  if (!isSafetensorsFile(dir)) {
    return { problem: `ckpt_name "${ckptName}" is not a single-file .safetensors checkpoint: a config describes single files (an ONNX folder carries its own); use CheckpointLoaderSimple` };
  }
  const detected = detectCheckpoint(dir);
  if ('refusal' in detected) return { problem: `ckpt_name "${ckptName}": ${detected.refusal}` };
  if (detected.family.text === 'sdxl' || detected.family.text === 'sdxl-refiner') {
    return { problem: `ckpt_name "${ckptName}" is an SDXL checkpoint, whose file says everything an LDM config would: load it with CheckpointLoaderSimple` };
  }
  const { file } = resolveModelFile('configs', configName, hostModels);
  if (!file) return { file: dir }; // the combo check names it
  try {
    return { config: readLdmConfig(file, detected.info), file: dir };
  } catch (error) {
    if (error instanceof LdmConfigError) return { problem: `config_name "${configName}": ${error.message}` };
    throw error;
  }
}

/**
 * ComfyUI's CheckpointLoader (deprecated there, kept for old workflows): a single-file checkpoint read with an LDM
 * config (models/configs/*.yaml), which decides what the file's tensors do not say: v-prediction or epsilon, the
 * attention heads, the VAE's scale factor. The config is checked against the checkpoint (text encoder, widths).
 */
export const CheckpointLoader = defineNode({
  id: 'CheckpointLoader',
  displayName: 'Load Checkpoint With Config (DEPRECATED)',
  category: 'advanced/loaders',
  deprecated: true,
  description:
    'Loads a single-file SD-1.x / 2.x checkpoint as its LDM config (models/configs/*.yaml, e.g. v1-inference.yaml, v2-inference-v.yaml) describes it: ' +
    'prediction type, attention heads and latent scale from the config, checked against the file. CheckpointLoaderSimple detects these from the file itself.',
  inputs: {
    config_name: combo(listConfigs, { tooltip: 'An LDM inference config (.yaml) in models/configs/ (ComfyUI ships v1-inference.yaml, v2-inference-v.yaml, ... there).' }),
    ckpt_name: combo(listCheckpoints, { tooltip: 'A single-file SD-1.x / 2.x checkpoint (.safetensors) in models/checkpoints/.' }),
  },
  outputs: [
    { type: 'MODEL', name: 'MODEL', tooltip: 'The denoising UNet, used by the samplers.' },
    { type: 'CLIP', name: 'CLIP', tooltip: 'The tokenizer and text encoder, for encoding prompts.' },
    { type: 'VAE', name: 'VAE', tooltip: 'The VAE, to turn latents into images and back.' },
  ],
  validate({ config_name, ckpt_name }, context) {
    if (config_name === undefined || ckpt_name === undefined) return true;
    const { problem } = configProblem(config_name, ckpt_name, context.paths?.models);
    return problem ?? true;
  },
  fingerprint({ config_name, ckpt_name }, context) {
    if (config_name === undefined || ckpt_name === undefined) return '';
    const ckpt = resolveModelFolder(ckpt_name, context.paths?.models).dir;
    const config = resolveModelFile('configs', config_name, context.paths?.models).file;
    return `${ckpt ?? 'missing'}|${ckpt ? fileStamp(ckpt) : ''}|${config ?? 'missing'}|${config ? fileStamp(config) : ''}`;
  },
  async execute({ config_name, ckpt_name }, ctx) {
    const { config, file, problem } = configProblem(config_name, ckpt_name, ctx.paths.models);
    if (problem) throw new NodeInputError(problem, problem.startsWith('config_name') ? 'config_name' : 'ckpt_name');
    if (!file) throw new NodeInputError(`ckpt_name "${ckpt_name}": no such checkpoint in the checkpoints folders`, 'ckpt_name');
    if (!config) throw new NodeInputError(`config_name "${config_name}": no such file in the configs folders`, 'config_name');
    const model = await buildCheckpointFile({ checkpoint: file, family: config.family, unetLoras: [], textLoras: [], overrides: config.overrides }, ckpt_name, ctx);
    for (const warning of model.warnings) ctx.log.warn(`${ckpt_name}: ${warning}`);
    return [new ModelRef(model), new ClipRef(model), new VaeRef(model)];
  },
});

const UNKNOWN_FILE =
  'gategraph loads single-file checkpoints in the safetensors format (.safetensors, .sft) and ONNX model folders; ' +
  'a PyTorch checkpoint (pickled or archived) can run code when it is loaded, so it is never opened: convert it to .safetensors with a trusted Python';

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
