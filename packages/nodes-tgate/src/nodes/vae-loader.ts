import { combo, defineNode, NodeInputError } from '@gategraph/core';
import { CheckpointError } from '@gategraph/onnx-graph';
import { listVaes } from '../folders.ts';
import { modelFileInput } from '../model-file-input.ts';
import { loadVaeFile, vaeFileProblem } from '../single-file-loading.ts';
import { VaeRef } from '../types.ts';

const vaeInput = modelFileInput('vae', 'vae_name', vaeFileProblem);

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
  validate: ({ vae_name }, context) => vaeInput.validate(vae_name, context),
  fingerprint: ({ vae_name }, context) => vaeInput.fingerprint(vae_name, context),
  async execute({ vae_name }, ctx) {
    const file = vaeInput.resolve(vae_name, ctx.paths.models);
    try {
      return [new VaeRef(await loadVaeFile(file, ctx, vae_name))];
    } catch (error) {
      if (error instanceof CheckpointError) throw new NodeInputError(`vae_name "${vae_name}" cannot be built: ${error.message}`, 'vae_name');
      throw error;
    }
  },
});
