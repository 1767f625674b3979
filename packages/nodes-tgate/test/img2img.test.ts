import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ApiPrompt } from '@gategraph/core';
import { decodePng, encodePng } from '@gategraph/diffusion';
import { defaultPrompt, host, noModel, savedImages, validateAndRun } from './helpers.ts';

/** A flat gray picture of the given size with a red block, as an input file. */
function inputImage(name: string, size: number): void {
  const data = new Uint8Array(size * size * 3).fill(128);
  for (let y = 4; y < 20; y++) for (let x = 4; x < 20; x++) data.set([230, 30, 30], (y * size + x) * 3);
  writeFileSync(join(host.paths.input, name), encodePng({ width: size, height: size, channels: 3, data }));
}

/** The default workflow starting from an encoded image instead of an empty latent. */
function img2img(image: string, denoise: number): ApiPrompt {
  const prompt = defaultPrompt();
  prompt['10'] = { class_type: 'LoadImage', inputs: { image } };
  prompt['5'] = { class_type: 'VAEEncode', inputs: { pixels: ['10', 0], vae: ['4', 2] } };
  prompt['3']!.inputs.denoise = denoise;
  prompt['9']!.inputs.filename_prefix = `img2img-${denoise}`;
  return prompt;
}

test('LoadImage -> VAEEncode -> KSampler (denoise < 1) -> VAEDecode runs image-to-image', { skip: noModel }, async () => {
  inputImage('red-block.png', 66); // not a multiple of 4: centre-cropped to 64x64, as ComfyUI crops to 8
  const { result, events } = await validateAndRun(img2img('red-block.png', 0.5));
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  const [file] = savedImages(result);
  const png = decodePng(readFileSync(join(host.paths.output, file!.filename)));
  assert.deepEqual([png.width, png.height], [64, 64]);
  const steps = events.filter((e) => e.type === 'progress' && e.data.node === '3');
  assert.equal(steps.length, 25, 'denoise 0.5 still runs `steps` steps, starting part-way down the schedule (ComfyUI)');

  const unchanged = await validateAndRun(img2img('red-block.png', 0));
  assert.equal(unchanged.result.status, 'success', JSON.stringify(unchanged.result.error));
  assert.equal(unchanged.events.filter((e) => e.type === 'progress' && e.data.node === '3').length, 0, 'denoise 0 samples nothing');
});

test('VAEEncode refuses an image size the VAE was not exported for', { skip: noModel }, async () => {
  inputImage('big.png', 96);
  const { result } = await validateAndRun(img2img('big.png', 0.5));
  assert.equal(result.error?.node_type, 'VAEEncode');
  assert.equal(result.error?.exception_type, 'NodeInputError');
  assert.match(result.error?.message ?? '', /^pixels is 96x96 pixels, but tiny-sd's VAE was exported for 64x64 images only: resize the image first$/);
});
