// The tensor work of inpainting and LCM, checked against recorded PyTorch values and the formulas.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blendMasked, concatChannels, resizeBilinear } from '../src/inpaint.ts';
import { guidanceScaleEmbedding } from '../src/lcm-embedding.ts';
import { createScheduler, randn, type Tensor } from '../src/index.ts';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tolerance: number, what: string) => {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tolerance, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

test('resizeBilinear equals torch.nn.functional.interpolate(mode="bilinear", align_corners=False)', () => {
  const data = Float32Array.from({ length: 15 }, (_, i) => i * 0.1);
  data[7] = 3;
  const x: Tensor = { data, shape: [1, 1, 3, 5] };
  // Recorded from PyTorch 1.13 on this input.
  const up = [0.0, 0.057143, 0.128571, 0.2, 0.271429, 0.342857, 0.4, 0.3125, 0.369643, 0.851786, 1.95, 0.994643, 0.655357, 0.7125, 0.6875, 0.744643, 1.226786, 2.325, 1.369643, 1.030357, 1.0875, 1.0, 1.057143, 1.128571, 1.2, 1.271429, 1.342857, 1.4];
  const down = [0.2, 0.45, 0.95, 1.2];
  close(resizeBilinear(x, 4, 7).data, up, 1e-5, 'up');
  close(resizeBilinear(x, 2, 2).data, down, 1e-5, 'down');
  assert.equal(resizeBilinear(x, 3, 5), x, 'same size: unchanged');
});

test('blendMasked broadcasts a one-channel, one-item mask; concatChannels appends channels per item', () => {
  const inside: Tensor = { data: Float32Array.from({ length: 2 * 2 * 2 }, (_, i) => i + 1), shape: [2, 2, 1, 2] };
  const outside: Tensor = { data: new Float32Array(4).fill(-1), shape: [1, 2, 1, 2] };
  const mask: Tensor = { data: Float32Array.from([1, 0.25]), shape: [1, 1, 1, 2] };
  const blended = blendMasked(inside, outside, mask);
  assert.deepEqual([...blended.data], [1, 2 * 0.25 - 0.75, 3, 4 * 0.25 - 0.75, 5, 6 * 0.25 - 0.75, 7, 8 * 0.25 - 0.75]);
  const extra: Tensor = { data: Float32Array.from([10, 11, 12, 13, 14, 15]), shape: [1, 3, 1, 2] };
  const joined = concatChannels(inside, extra);
  assert.deepEqual(joined.shape, [2, 5, 1, 2]);
  assert.deepEqual([...joined.data], [1, 2, 3, 4, 10, 11, 12, 13, 14, 15, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15]);
  assert.throws(() => blendMasked(inside, outside, { data: new Float32Array(3), shape: [1, 1, 1, 3] }), /does not fit the latent/);
});

test('every scheduler inverts its clean-latent estimate, and noises a latent to its step\'s level', () => {
  const x = randn([1, 4, 3, 3], 1);
  const out = randn([1, 4, 3, 3], 2);
  const latent = randn([1, 4, 3, 3], 3);
  const noise = randn([1, 4, 3, 3], 4);
  for (const prediction of ['epsilon', 'v_prediction'] as const) {
    for (const sampler of ['euler', 'euler_ancestral', 'dpmpp_2m', 'lcm', 'ddim'] as const) {
      const scheduler = createScheduler(sampler, { prediction_type: prediction }, 6, { schedule: 'karras' });
      for (const i of [0, 3, 5]) {
        const d = scheduler.denoised(out, i, x);
        close(scheduler.modelOutputFor(d, i, x).data, out.data, 2e-4, `${sampler} ${prediction} step ${i}`);
        const sigma = scheduler.sigmas[i]!;
        const expected = sampler === 'ddim'
          ? latent.data.map((v, k) => (v + sigma * noise.data[k]!) / Math.sqrt(1 + sigma * sigma)) // the same point in DDIM's VP units
          : latent.data.map((v, k) => v + sigma * noise.data[k]!);
        close(scheduler.noised(latent, noise, i).data, expected, 1e-4, `${sampler} noised step ${i}`);
      }
    }
  }
});

test('the LCM guidance embedding is diffusers\' get_guidance_scale_embedding of (w - 1) * 1000', () => {
  const e = guidanceScaleEmbedding(8.5, 256);
  assert.deepEqual(e.shape, [1, 256]);
  const w = 7.5 * 1000;
  const step = Math.log(10000) / 127;
  for (const k of [0, 1, 64, 127]) {
    assert.ok(Math.abs(e.data[k]! - Math.sin(w * Math.exp(-step * k))) < 2e-3, `sin ${k}`);
    assert.ok(Math.abs(e.data[128 + k]! - Math.cos(w * Math.exp(-step * k))) < 2e-3, `cos ${k}`);
  }
  assert.deepEqual([...guidanceScaleEmbedding(1, 4).data], [0, 0, 1, 1], 'w = 1: sin 0, cos 0');
});
