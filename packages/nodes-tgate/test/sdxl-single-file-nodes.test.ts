// SDXL's single files through the loader nodes, named as ComfyUI's users keep them: sd_xl_base_1.0.safetensors and
// sd_xl_refiner_1.0.safetensors in models/checkpoints, clip_l.safetensors and clip_g.safetensors in
// models/text_encoders (tools/test-checkpoints' sdxl-small, sdxl-refiner-small, clip_l-small, clip_g-small: SDXL's
// key layout and block structure at small widths, float16, built with no overrides as a user's file is).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { validatePrompt, type ApiPrompt } from '@gategraph/core';
import { decodePng } from '@gategraph/diffusion';
import { testCheckpoints } from '../../diffusion/test/fixtures/test-checkpoints.ts';
import { host, packRegistry, savedImages, validateAndRun } from './helpers.ts';

const BASE = 'sd_xl_base_1.0.safetensors';
const REFINER = 'sd_xl_refiner_1.0.safetensors';

before(() => {
  const dir = testCheckpoints();
  const checkpoints = join(host.paths.models, 'checkpoints');
  const textEncoders = join(host.paths.models, 'text_encoders');
  for (const d of [checkpoints, textEncoders]) mkdirSync(d, { recursive: true });
  symlinkSync(join(dir, 'sdxl-small.safetensors'), join(checkpoints, BASE));
  symlinkSync(join(dir, 'sdxl-refiner-small.safetensors'), join(checkpoints, REFINER));
  symlinkSync(join(dir, 'clip_l-small.safetensors'), join(textEncoders, 'clip_l.safetensors'));
  symlinkSync(join(dir, 'clip_g-small.safetensors'), join(textEncoders, 'clip_g.safetensors'));
  // An SD-1.5 LoRA: LoRAs are not applied to SDXL files yet, whichever model they were made for.
  mkdirSync(join(host.paths.models, 'loras'), { recursive: true });
  symlinkSync(join(dir, 'lora-kohya.safetensors'), join(host.paths.models, 'loras', 'style.safetensors'));
});

const SIZES = { width: 64, height: 64, crop_w: 0, crop_h: 0, target_width: 64, target_height: 64 };

/** ComfyUI's SDXL text-to-image graph at 64x64, 4 steps: CLIPTextEncodeSDXL positive, CLIPTextEncode negative. */
function sdxlWorkflow(prefix: string, ckpt = BASE): ApiPrompt {
  return {
    ckpt: { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: ckpt } },
    pos: { class_type: 'CLIPTextEncodeSDXL', inputs: { ...SIZES, text_g: 'a lighthouse at dusk', text_l: 'a lighthouse at dusk', clip: ['ckpt', 1] } },
    neg: { class_type: 'CLIPTextEncode', inputs: { text: 'blurry', clip: ['ckpt', 1] } },
    latent: { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64, batch_size: 1 } },
    sampler: {
      class_type: 'KSampler',
      inputs: { model: ['ckpt', 0], positive: ['pos', 0], negative: ['neg', 0], latent_image: ['latent', 0], seed: 3, steps: 4, cfg: 6, sampler_name: 'euler', scheduler: 'normal', denoise: 1 },
    },
    decode: { class_type: 'VAEDecode', inputs: { samples: ['sampler', 0], vae: ['ckpt', 2] } },
    save: { class_type: 'SaveImage', inputs: { images: ['decode', 0], filename_prefix: prefix } },
  };
}

async function pixels(prompt: ApiPrompt): Promise<Uint8Array> {
  const { result } = await validateAndRun(prompt);
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  const png = decodePng(readFileSync(join(host.paths.output, savedImages(result)[0]!.filename)));
  assert.deepEqual([png.width, png.height], [64, 64]);
  return png.data as Uint8Array;
}

async function nodeErrors(prompt: ApiPrompt): Promise<string[]> {
  const validation = await validatePrompt(prompt, await packRegistry());
  return Object.values(validation.nodeErrors).flatMap((e) => e.errors.map((x) => x.details ?? x.message));
}

test('an SDXL checkpoint file runs ComfyUI\'s SDXL graph, with TGATE\'s SDXL preset too', async () => {
  const plain = await pixels(sdxlWorkflow('sdxl-file'));
  const gated = sdxlWorkflow('sdxl-file-tgate');
  gated.preset = { class_type: 'TGatePreset', inputs: { model: ['ckpt', 0], model_family: 'SDXL', with_deepcache: true } };
  gated.sampler!.inputs.model = ['preset', 0];
  gated.sampler!.inputs.steps = 12;
  assert.ok((await pixels(gated)).some((v, i) => v !== plain[i]));
});

test('DualCLIPLoader (type sdxl): clip_g and clip_l files, in either order, encode as the checkpoint\'s own encoders', async () => {
  const own = await pixels(sdxlWorkflow('sdxl-own-clip'));
  const dual = sdxlWorkflow('sdxl-dual-clip');
  dual.clip = { class_type: 'DualCLIPLoader', inputs: { clip_name1: 'clip_g.safetensors', clip_name2: 'clip_l.safetensors', type: 'sdxl' } };
  dual.pos!.inputs.clip = ['clip', 0];
  dual.neg!.inputs.clip = ['clip', 0];
  assert.deepEqual(await pixels(dual), own);

  const twice = structuredClone(dual);
  twice.clip!.inputs.clip_name1 = 'clip_l.safetensors';
  assert.match((await nodeErrors(twice)).join('\n'), /clip_name2 "clip_l.safetensors": both files are CLIP ViT-L\/14 \(clip_l\); SDXL takes one of each/);
  const single: ApiPrompt = { ...structuredClone(dual), clip: { class_type: 'CLIPLoader', inputs: { clip_name: 'clip_g.safetensors', type: 'stable_diffusion' } } };
  assert.match((await nodeErrors(single)).join('\n'), /SDXL's second text encoder: load it with DualCLIPLoader \(type sdxl\)/);
});

test('the refiner\'s file runs with CLIPTextEncodeSDXLRefiner; LoRAs on SDXL files are refused with why', async () => {
  const refined = sdxlWorkflow('sdxl-refiner-file', REFINER);
  refined.pos = { class_type: 'CLIPTextEncodeSDXLRefiner', inputs: { ascore: 6, width: 64, height: 64, text: 'a lighthouse', clip: ['ckpt', 1] } };
  await pixels(refined);

  const lora = sdxlWorkflow('sdxl-lora');
  lora.lora = { class_type: 'LoraLoaderModelOnly', inputs: { model: ['ckpt', 0], lora_name: 'style.safetensors', strength_model: 1 } };
  lora.sampler!.inputs.model = ['lora', 0];
  const { result } = await validateAndRun(lora);
  assert.equal(result.status, 'error');
  assert.equal(result.error?.node_id, 'lora');
  assert.match(result.error!.message, /SDXL checkpoint: LoRAs are applied to SD-1.x \/ 2.x checkpoints; SDXL LoRAs .* are not supported yet/);
});
