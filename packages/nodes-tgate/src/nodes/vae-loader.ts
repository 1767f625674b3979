import { combo, defineNode, NodeInputError } from '@gategraph/core';
import { CheckpointError } from '@gategraph/onnx-graph';
import { listVaes, resolveModelFile } from '../folders.ts';
import { fileStamp } from './checkpoint-loader.ts';
import { loadVaeFile, vaeFileProblem } from '../single-file-loading.ts';
import { VaeRef } from '../types.ts';

/**
 * ComfyUI's VAELoader: a standalone VAE file (such as SD's ft-MSE VAE) in models/vae/, used instead of a
 * checkpoint's own VAE by wiring it into VAEDecode / VAEEncode.
 */
export const VAELoader = defineNode({
  id: 'VAELoader',
  displayName: 'Load VAE',
  category: 'loaders',
  description:
    'Loads a VAE file (.safetensors with the LDM VAE keys, as SD-1.x/2.x VAEs such as vae-ft-mse-840000 are published) from models/vae/. ' +
    'Its ONNX graphs are built on first use and cached.',
  inputs: {
    vae_name: combo(listVaes, { tooltip: 'A VAE file in models/vae/ (or the vae folders extra_model_paths.yaml adds).' }),
  },
  outputs: [{ type: 'VAE', name: 'VAE', tooltip: 'The VAE, for VAEDecode and VAEEncode.' }],
  validate({ vae_name }, context) {
    if (vae_name === undefined) return true;
    const { file } = resolveModelFile('vae', vae_name, context.paths?.models);
    if (!file) return true; // the combo check named it
    const problem = vaeFileProblem(file);
    return problem ? `vae_name "${vae_name}": ${problem}` : true;
  },
  fingerprint({ vae_name }) {
    const found = vae_name === undefined ? undefined : resolveModelFile('vae', vae_name, undefined).file;
    return found ? `${found}|${fileStamp(found)}` : 'missing';
  },
  async execute({ vae_name }, ctx) {
    const { file, searched } = resolveModelFile('vae', vae_name, ctx.paths.models);
    if (!file) throw new NodeInputError(`vae_name "${vae_name}": no such file in ${searched.join(', ')}`, 'vae_name');
    const problem = vaeFileProblem(file);
    if (problem) throw new NodeInputError(`vae_name "${vae_name}": ${problem}`, 'vae_name');
    try {
      return [new VaeRef(await loadVaeFile(file, ctx, vae_name))];
    } catch (error) {
      if (error instanceof CheckpointError) throw new NodeInputError(`vae_name "${vae_name}" cannot be built: ${error.message}`, 'vae_name');
      throw error;
    }
  },
});
