// SDXL through the pack's nodes, on the SDXL-shaped test models (tools/test-models `sdxl` and `sdxl-refiner`):
// CLIPTextEncodeSDXL's sizes and texts and CLIPTextEncodeSDXLRefiner's aesthetic score reach the UNet; each refuses
// the CLIP of another kind of model with a message on its clip input.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ApiPrompt } from '@gategraph/core';
import { decodePng } from '@gategraph/diffusion';
import { publishedTestModels } from '../../diffusion/test/fixtures/published-models.ts';
import { host, runUnvalidated, savedImages, validateAndRun } from './helpers.ts';

let paths: typeof host.paths;
before(() => {
  paths = { ...host.paths, models: publishedTestModels() };
});

/** loader -> (positive encoder) + CLIPTextEncode negative -> KSampler -> VAEDecode -> SaveImage, 64 px, 4 steps. */
function prompt(ckpt: string, positive: { class_type: string; inputs: Record<string, unknown> }, prefix: string): ApiPrompt {
  return {
    ckpt: { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: ckpt } },
    pos: { class_type: positive.class_type, inputs: { ...positive.inputs, clip: ['ckpt', 1] } },
    neg: { class_type: 'CLIPTextEncode', inputs: { text: '', clip: ['ckpt', 1] } },
    latent: { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64, batch_size: 1 } },
    sampler: {
      class_type: 'KSampler',
      inputs: { model: ['ckpt', 0], positive: ['pos', 0], negative: ['neg', 0], latent_image: ['latent', 0], seed: 7, steps: 4, cfg: 5, sampler_name: 'euler', scheduler: 'normal', denoise: 1 },
    },
    decode: { class_type: 'VAEDecode', inputs: { samples: ['sampler', 0], vae: ['ckpt', 2] } },
    save: { class_type: 'SaveImage', inputs: { images: ['decode', 0], filename_prefix: prefix } },
  };
}

async function image(p: ApiPrompt): Promise<Uint8Array> {
  const { result } = await validateAndRun(p, { paths });
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  return decodePng(readFileSync(join(host.paths.output, savedImages(result)[0]!.filename))).data;
}

const differ = (a: Uint8Array, b: Uint8Array) => a.some((v, i) => v !== b[i]);

test('CLIPTextEncodeSDXL: its sizes and its two texts reach the UNet; CLIPTextEncode on the same CLIP uses the latent\'s size', async () => {
  const sizes = { width: 64, height: 64, crop_w: 0, crop_h: 0, target_width: 64, target_height: 64 };
  const sdxl = (inputs: Record<string, unknown>) => prompt('sdxl', { class_type: 'CLIPTextEncodeSDXL', inputs: { ...sizes, text_g: 'a cat', text_l: 'a cat', ...inputs } }, 'sdxl-nodes');
  const same = await image(sdxl({}));
  const plain = await image(prompt('sdxl', { class_type: 'CLIPTextEncode', inputs: { text: 'a cat' } }, 'sdxl-nodes'));
  assert.deepEqual(plain, same, 'CLIPTextEncode = CLIPTextEncodeSDXL with the latent\'s size, no crop and one text');
  assert.ok(differ(await image(sdxl({ crop_w: 32, crop_h: 16 })), same), 'the crop changes the image');
  assert.ok(differ(await image(sdxl({ text_l: 'a dog' })), same), 'text_l reaches the first encoder');
});

test('CLIPTextEncodeSDXLRefiner: the aesthetic score reaches the refiner\'s UNet', async () => {
  const refined = (ascore: number) => prompt('sdxl-refiner', { class_type: 'CLIPTextEncodeSDXLRefiner', inputs: { ascore, width: 64, height: 64, text: 'a cat' } }, 'sdxl-refiner-nodes');
  const six = await image(refined(6));
  assert.deepEqual(await image(prompt('sdxl-refiner', { class_type: 'CLIPTextEncode', inputs: { text: 'a cat' } }, 'sdxl-refiner-nodes')), six, 'ComfyUI\'s default score for a positive prompt is 6');
  assert.ok(differ(await image(refined(2)), six));
});

test('the SDXL encoders refuse a CLIP of another kind of model on their clip input', async () => {
  for (const [ckpt, node, inputs] of [
    ['tiny-sd', 'CLIPTextEncodeSDXL', { width: 64, height: 64, crop_w: 0, crop_h: 0, target_width: 64, target_height: 64, text_g: 'a', text_l: 'a' }],
    ['sdxl', 'CLIPTextEncodeSDXLRefiner', { ascore: 6, width: 64, height: 64, text: 'a' }],
  ] as const) {
    const p = prompt(ckpt, { class_type: node, inputs }, 'refused');
    const { result } = await runUnvalidated(p, ['save'], { paths: ckpt === 'tiny-sd' ? host.paths : paths });
    assert.equal(result.status, 'error');
    assert.equal(result.error?.node_id, 'pos');
    assert.match(result.error!.message, /^clip: /);
  }
});

test('LCM-SDXL with TGatePreset in its LCM mode (guidance-free, gate 1) samples with the lcm sampler and reuses the cached attention', async () => {
  const p = prompt('lcm-sdxl', { class_type: 'CLIPTextEncode', inputs: { text: 'a cat' } }, 'lcm-sdxl-tgate');
  p.preset = { class_type: 'TGatePreset', inputs: { model: ['ckpt', 0], model_family: 'LCM', with_deepcache: false } };
  Object.assign(p.sampler!.inputs, { model: ['preset', 0], sampler_name: 'lcm', scheduler: 'sgm_uniform', cfg: 8, steps: 4 });
  const gated = await image(p);
  const plain = await image(prompt('lcm-sdxl', { class_type: 'CLIPTextEncode', inputs: { text: 'a cat' } }, 'lcm-sdxl-plain'));
  assert.ok(differ(gated, plain), 'after the gate the cached cross-attention is reused: the image differs from the plain run');
});
