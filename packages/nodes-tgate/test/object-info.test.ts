import { test } from 'node:test';
import assert from 'node:assert/strict';
import { objectInfo } from '@gategraph/core';
import { packRegistry } from './helpers.ts';

// Hand-written from ComfyUI's nodes.py (INPUT_TYPES / RETURN_TYPES): workflows and API clients written for
// ComfyUI address inputs by these names, so they must match exactly, in this order.
const COMFYUI_INPUTS: Record<string, { required: string[]; hidden?: string[]; output: string[] }> = {
  CheckpointLoaderSimple: { required: ['ckpt_name'], output: ['MODEL', 'CLIP', 'VAE'] },
  CheckpointLoader: { required: ['config_name', 'ckpt_name'], output: ['MODEL', 'CLIP', 'VAE'] },
  VAELoader: { required: ['vae_name'], output: ['VAE'] },
  CLIPLoader: { required: ['clip_name', 'type'], output: ['CLIP'] },
  LoraLoader: { required: ['model', 'clip', 'lora_name', 'strength_model', 'strength_clip'], output: ['MODEL', 'CLIP'] },
  LoraLoaderModelOnly: { required: ['model', 'lora_name', 'strength_model'], output: ['MODEL'] },
  CLIPTextEncode: { required: ['text', 'clip'], output: ['CONDITIONING'] },
  EmptyLatentImage: { required: ['width', 'height', 'batch_size'], output: ['LATENT'] },
  KSampler: {
    required: ['model', 'seed', 'steps', 'cfg', 'sampler_name', 'scheduler', 'positive', 'negative', 'latent_image', 'denoise'],
    output: ['LATENT'],
  },
  VAEDecode: { required: ['samples', 'vae'], output: ['IMAGE'] },
  VAEEncode: { required: ['pixels', 'vae'], output: ['LATENT'] },
  LoadImage: { required: ['image'], output: ['IMAGE', 'MASK'] },
  SaveImage: { required: ['images', 'filename_prefix'], hidden: ['prompt', 'extra_pnginfo'], output: [] },
  PreviewImage: { required: ['images'], hidden: ['prompt', 'extra_pnginfo'], output: [] },
};

test('object_info has ComfyUI input names, order and outputs for every base node', async () => {
  const info = objectInfo(await packRegistry());
  for (const [name, expected] of Object.entries(COMFYUI_INPUTS)) {
    const entry = info[name];
    assert.ok(entry, `${name} is registered`);
    assert.deepEqual(entry.input_order.required, expected.required, `${name} inputs`);
    assert.deepEqual(Object.keys(entry.input.required ?? {}), expected.required, `${name} input keys`);
    assert.deepEqual(entry.input_order.hidden ?? [], expected.hidden ?? [], `${name} hidden inputs`);
    assert.deepEqual(entry.output, expected.output, `${name} outputs`);
  }
});

test("KSampler's widgets have ComfyUI's types, defaults and ranges", async () => {
  const ks = objectInfo(await packRegistry()).KSampler!.input.required!;
  assert.deepEqual(ks.model, ['MODEL', { tooltip: ks.model![1]!.tooltip }]);
  const [seedType, seed] = ks.seed as [string, Record<string, unknown>];
  assert.equal(seedType, 'INT');
  assert.deepEqual([seed.default, seed.min, seed.max, seed.control_after_generate], [0, 0, Number.MAX_SAFE_INTEGER, true]);
  assert.match(String(seed.tooltip), /2\^53 - 1/);
  const pick = (spec: unknown, keys: string[]) => keys.map((k) => (spec as [string, Record<string, unknown>])[1][k]);
  assert.deepEqual(pick(ks.steps, ['default', 'min', 'max']), [20, 1, 10000]);
  assert.deepEqual(pick(ks.cfg, ['default', 'min', 'max', 'step', 'round']), [8, 0, 100, 0.1, 0.01]);
  assert.deepEqual(pick(ks.denoise, ['default', 'min', 'max', 'step']), [1, 0, 1, 0.01]);
  // ComfyUI's SAMPLER_NAMES, in its order (the first few and the last, as comfy/samplers.py lists them).
  const samplers = (ks.sampler_name as [string[]])[0];
  assert.deepEqual(samplers.slice(0, 6), ['euler', 'euler_cfg_pp', 'euler_ancestral', 'euler_ancestral_cfg_pp', 'heun', 'heunpp2']);
  assert.deepEqual(samplers.slice(-3), ['ddim', 'uni_pc', 'uni_pc_bh2']);
  assert.ok((ks.scheduler as [string[]])[0].includes('karras'));
  const latent = objectInfo(await packRegistry()).EmptyLatentImage!.input.required!;
  assert.deepEqual(pick(latent.width, ['default', 'min', 'max', 'step']), [512, 16, 16384, 8]);
  assert.deepEqual(pick(latent.batch_size, ['default', 'min', 'max']), [1, 1, 4096]);
  const lora = objectInfo(await packRegistry()).LoraLoader!.input.required!;
  for (const input of ['strength_model', 'strength_clip']) assert.deepEqual(pick(lora[input], ['default', 'min', 'max', 'step']), [1, -100, 100, 0.01]);
  const load = objectInfo(await packRegistry()).LoadImage!.input.required!;
  assert.equal((load.image as [string[], Record<string, unknown>])[1].image_upload, true);
});
