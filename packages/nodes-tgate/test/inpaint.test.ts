// ComfyUI's inpainting nodes through the pack on the embedded model: the transparent part of a LoadImage is
// the mask, the sampler repaints only there, and the rest of the picture comes back as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, silentLogger, type ExecutionContext } from '@gategraph/core';
import { encodePng, type Tensor } from '@gategraph/diffusion';
import type { Latent } from '../src/types.ts';
import { defaultPrompt, host, noModel, packRegistry, validateAndRun } from './helpers.ts';

/** 64x64 RGBA: a gray picture with a red block at the right; the left half transparent (= the mask). */
function maskedInput(name: string): void {
  const data = new Uint8Array(64 * 64 * 4);
  for (let y = 0; y < 64; y++) {
    for (let x = 0; x < 64; x++) {
      const red = x >= 40 && x < 56 && y >= 20 && y < 44;
      data.set([red ? 220 : 128, red ? 30 : 128, red ? 30 : 128, x < 32 ? 0 : 255], (y * 64 + x) * 4);
    }
  }
  writeFileSync(join(host.paths.input, name), encodePng({ width: 64, height: 64, channels: 4, data }));
}

/** Runs one node of the pack directly (its definition's execute), as the executor would. */
async function run(type: string, inputs: Record<string, unknown>): Promise<unknown[]> {
  const definition = (await packRegistry()).get(type)!;
  const ctx: ExecutionContext = {
    nodeId: type,
    promptId: 'inpaint-test',
    signal: new AbortController().signal,
    throwIfAborted() {},
    progress() {},
    log: silentLogger,
    paths: host.paths,
    graph: () => new GraphBuilder(`${type}.0.0.`),
  };
  return (await definition.execute(inputs as never, ctx)) as unknown[];
}

/** Max |a - b| over the latent columns where `where(x)` holds. */
function latentDiff(a: Tensor, b: Tensor, where: (x: number) => boolean): number {
  const [, C, h, w] = a.shape as [number, number, number, number];
  let most = 0;
  for (let c = 0; c < C; c++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    if (where(x)) most = Math.max(most, Math.abs(a.data[(c * h + y) * w + x]! - b.data[(c * h + y) * w + x]!));
  }
  return most;
}

test('SetLatentNoiseMask and VAEEncodeForInpaint: the sampler repaints only the masked (transparent) half', { skip: noModel }, async () => {
  maskedInput('half-transparent.png');
  const [model, clip, vae] = await run('CheckpointLoaderSimple', { ckpt_name: 'tiny-sd' });
  const [positive] = await run('CLIPTextEncode', { text: 'a blue square on a gray background', clip });
  const [negative] = await run('CLIPTextEncode', { text: '', clip });
  const [pixels, mask] = await run('LoadImage', { image: 'half-transparent.png' });
  const [encoded] = (await run('VAEEncode', { pixels, vae })) as [Latent];
  const sampler = { model, seed: 5, steps: 8, cfg: 6, sampler_name: 'ddim', scheduler: 'normal', positive, negative, denoise: 1 };
  const half = (encoded.samples.shape[3] ?? 0) / 2;

  const [masked] = (await run('SetLatentNoiseMask', { samples: encoded, mask })) as [Latent];
  assert.deepEqual(masked.noise_mask?.shape, [1, 1, 64, 64]);
  const [out] = (await run('KSampler', { ...sampler, latent_image: masked })) as [Latent];
  assert.ok(latentDiff(out.samples, encoded.samples, (x) => x >= half) < 1e-4, 'the opaque half of the latent is kept');
  assert.ok(latentDiff(out.samples, encoded.samples, (x) => x < half) > 0.1, 'the transparent half is repainted');

  const [forInpaint] = (await run('VAEEncodeForInpaint', { pixels, vae, mask, grow_mask_by: 6 })) as [Latent];
  const grown = forInpaint.noise_mask!;
  assert.deepEqual(grown.shape, [1, 1, 64, 64]);
  assert.equal(grown.data[10 * 64 + 31], 1, 'inside the mask');
  assert.equal(grown.data[10 * 64 + 34], 1, 'grown by 3 pixels past the edge (kernel 6, padding 3)');
  assert.equal(grown.data[10 * 64 + 35], 0, 'and no further');
  const [painted] = (await run('KSampler', { ...sampler, latent_image: forInpaint })) as [Latent];
  // The kept cells are the encoding of the greyed-out image; two latent cells (8 pixels) from the seam.
  assert.ok(latentDiff(painted.samples, forInpaint.samples, (x) => x >= half + 2) < 1e-4, 'outside the grown mask the latent is kept');
  assert.ok(latentDiff(painted.samples, forInpaint.samples, (x) => x < half) > 0.1, 'inside it the sampler repaints');
});

test('InpaintModelConditioning on a model without inpainting channels still masks the latent', { skip: noModel }, async () => {
  maskedInput('half-transparent-2.png');
  const prompt = defaultPrompt();
  prompt['10'] = { class_type: 'LoadImage', inputs: { image: 'half-transparent-2.png' } };
  prompt['12'] = { class_type: 'InpaintModelConditioning', inputs: { positive: ['6', 0], negative: ['7', 0], vae: ['4', 2], pixels: ['10', 0], mask: ['10', 1], noise_mask: true } };
  prompt['3']!.inputs.positive = ['12', 0];
  prompt['3']!.inputs.negative = ['12', 1];
  prompt['3']!.inputs.latent_image = ['12', 2];
  prompt['3']!.inputs.steps = 6;
  delete prompt['5'];
  const { result } = await validateAndRun(prompt);
  assert.equal(result.status, 'success', JSON.stringify(result.error));
});
