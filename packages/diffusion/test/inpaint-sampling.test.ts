// Sampling with ComfyUI's noise mask on real sessions of the embedded model: outside the mask the result is
// the original latent, inside it the model repaints, for every sampler.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  OnnxUnetRunner,
  SessionPool,
  createAncestralNoiseGenerator,
  createScheduler,
  encodePrompt,
  openModelFolder,
  randn,
  sample,
  type DiffusionModel,
  type EncodedPrompt,
  type Tensor,
} from '../src/index.ts';
import { requireTestModel } from './fixtures/test-model.ts';

const pool = new SessionPool();
let model: DiffusionModel;
let pos: EncodedPrompt;
let neg: EncodedPrompt;

before(async () => {
  model = await openModelFolder(requireTestModel(), { pool });
  pos = await encodePrompt(model, 'a red circle on a blue background');
  neg = await encodePrompt(model, '');
});
after(async () => {
  await model.release();
  await pool.freeAll();
});

/** Max |a - b| over the latent cells where `where(x)` holds (x = column). */
function maxDiff(a: Tensor, b: Tensor, where: (x: number) => boolean): number {
  const [, C, h, w] = a.shape as [number, number, number, number];
  let most = 0;
  for (let c = 0; c < C; c++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    if (!where(x)) continue;
    const i = (c * h + y) * w + x;
    most = Math.max(most, Math.abs(a.data[i]! - b.data[i]!));
  }
  return most;
}

test('a noise mask keeps the latent outside it and repaints inside it, with every sampler', async () => {
  const shape = [1, model.io.unet.latentChannels, 16, 16];
  const original = randn(shape, 7);
  const w = 16;
  // Left half repainted (1), right half kept (0).
  const mask: Tensor = { data: Float32Array.from({ length: 16 * 16 }, (_, i) => (i % w < w / 2 ? 1 : 0)), shape: [1, 1, 16, 16] };
  const left = (x: number) => x < w / 2;
  const right = (x: number) => x >= w / 2;
  for (const sampler of ['euler', 'euler_ancestral', 'dpmpp_2m', 'lcm', 'ddim'] as const) {
    const run = (denoiseMask?: Tensor) => {
      const scheduler = createScheduler(sampler, model.schedulerConfig, 8, { schedule: 'normal' });
      return sample({
        unet: OnnxUnetRunner.forModel(model),
        scheduler,
        positive: pos.hiddenStates,
        negative: neg.hiddenStates,
        cfg: 6,
        latent: original,
        noise: randn(shape, 3),
        ...(scheduler.stochastic ? { stepNoise: createAncestralNoiseGenerator(3) } : {}),
        ...(denoiseMask ? { denoiseMask } : {}),
      });
    };
    const masked = await run(mask);
    assert.ok(maxDiff(masked.latent, original, right) < 1e-4, `${sampler}: outside the mask the latent is kept (${maxDiff(masked.latent, original, right)})`);
    assert.ok(maxDiff(masked.latent, original, left) > 0.1, `${sampler}: inside the mask the model repaints`);
    const plain = await run();
    assert.ok(maxDiff(plain.latent, original, right) > 0.1, `${sampler}: without a mask the whole latent changes`);
  }
});
