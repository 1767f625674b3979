import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  axpby,
  createNoiseGenerator,
  createScheduler,
  maxAbsDiff,
  noiseLevels,
  randn,
  resolveSchedulerConfig,
  SAMPLER_NAMES,
  SCHEDULER_NAMES,
  zeros,
  type PredictionType,
  type Scheduler,
  type Tensor,
} from '../src/index.ts';

const SHAPE = [1, 4, 8, 8];

/**
 * A perfect model: knows the clean latent x0 and answers with the eps (or v) that the current UNet input
 * implies. The input is the variance-preserving sample at noise level sigma_i: abar = 1 / (1 + sigma^2).
 */
function oracle(x0: Tensor, prediction: PredictionType) {
  return (s: Scheduler, i: number, x: Tensor): Tensor => {
    const input = s.scaleModelInput(x, i);
    const sigma = s.sigmas[i]!;
    const a = 1 / (1 + sigma * sigma);
    const eps = axpby(1 / Math.sqrt(1 - a), input, -Math.sqrt(a) / Math.sqrt(1 - a), x0);
    if (prediction === 'epsilon') return eps;
    return axpby(Math.sqrt(a), eps, -Math.sqrt(1 - a), x0); // v = sqrt(abar) eps - sqrt(1 - abar) x0
  };
}

function run(s: Scheduler, model: (s: Scheduler, i: number, x: Tensor) => Tensor, start: Tensor, seed = 3): Tensor {
  const stepNoise = createNoiseGenerator(seed, 'philox');
  let x = start;
  for (let i = 0; i < s.timesteps.length; i++) x = s.step(model(s, i, x), i, x, stepNoise);
  return x;
}

const x0 = randn(SHAPE, 11, 'philox');
const noise = randn(SHAPE, 12, 'torch-cpu');

for (const prediction of ['epsilon', 'v_prediction'] as const) {
  for (const sampler of SAMPLER_NAMES) {
    for (const schedule of SCHEDULER_NAMES) {
      test(`${sampler} / ${schedule} / ${prediction}: a perfect model leads back to x0`, () => {
        const s = createScheduler(sampler, { prediction_type: prediction }, 20, { schedule });
        const out = run(s, oracle(x0, prediction), s.addNoise(zeros(SHAPE), noise));
        const err = maxAbsDiff(out, x0);
        assert.ok(err < 1e-4, `max |x - x0| = ${err}`);
      });
    }
  }
}

test('img2img (denoise 0.5): every sampler recovers the latent it started from', () => {
  for (const sampler of SAMPLER_NAMES) {
    const s = createScheduler(sampler, {}, 12, { schedule: 'karras', denoise: 0.5 });
    const out = run(s, oracle(x0, 'epsilon'), s.addNoise(x0, noise));
    assert.ok(maxAbsDiff(out, x0) < 1e-4, `${sampler}: ${maxAbsDiff(out, x0)}`);
  }
});

test('diffusers DDIM: with set_alpha_to_one false the result keeps sqrt(1 - abar_0) of the noise; true gives x0', () => {
  const levels = noiseLevels(resolveSchedulerConfig());
  const a0 = levels.alphasCumprod[0]!;
  const s = createScheduler('ddim', {}, 25);
  // start on the forward process of x0 (sqrt(abar) x0 + sqrt(1 - abar) noise): deterministic DDIM then keeps
  // the oracle's eps equal to that noise at every step, so it ends at abar_0's level of it
  const out = run(s, oracle(x0, 'epsilon'), s.addNoise(x0, noise));
  const expected = axpby(Math.sqrt(a0), x0, Math.sqrt(1 - a0), noise);
  assert.ok(maxAbsDiff(out, expected) < 1e-4, `${maxAbsDiff(out, expected)}`);
  assert.ok(maxAbsDiff(out, x0) > 0.01, 'some noise is left, as in diffusers');
  const one = createScheduler('ddim', { set_alpha_to_one: true }, 25);
  const clean = run(one, oracle(x0, 'epsilon'), one.addNoise(zeros(SHAPE), noise));
  assert.ok(maxAbsDiff(clean, x0) < 1e-4);
});

test('DDIM (eta 0) on a ComfyUI schedule follows the same trajectory as Euler (ComfyUI runs ddim as euler)', () => {
  // an imperfect, nonlinear "model" of the UNet input and timestep only
  const model = (s: Scheduler, i: number, x: Tensor): Tensor => {
    const input = s.scaleModelInput(x, i);
    const t = s.timesteps[i]!;
    const out = zeros(input.shape);
    for (let k = 0; k < out.data.length; k++) out.data[k] = 0.8 * input.data[k]! + 0.05 * Math.sin(k + t / 100);
    return out;
  };
  for (const schedule of ['normal', 'karras', 'ddim_uniform'] as const) {
    const euler = createScheduler('euler', {}, 15, { schedule });
    const ddim = createScheduler('ddim', {}, 15, { schedule });
    assert.deepEqual(ddim.timesteps, euler.timesteps);
    const a = run(euler, model, euler.addNoise(zeros(SHAPE), noise));
    const b = run(ddim, model, ddim.addNoise(zeros(SHAPE), noise));
    assert.ok(maxAbsDiff(a, b) < 1e-4, `${schedule}: ${maxAbsDiff(a, b)}`);
  }
});

test('euler_ancestral draws step noise only for steps that add noise (all but the last), like ComfyUI', () => {
  const s = createScheduler('euler_ancestral', {}, 6);
  const model = oracle(x0, 'epsilon');
  const fromGenerator = run(s, model, s.addNoise(zeros(SHAPE), noise), 77);
  // the same run with explicit tensors taken from an identical generator, one per non-final step
  const gen = createNoiseGenerator(77, 'philox');
  const s2 = createScheduler('euler_ancestral', {}, 6);
  let x = s2.addNoise(zeros(SHAPE), noise);
  for (let i = 0; i < 6; i++) x = s2.step(model(s2, i, x), i, x, i < 5 ? gen.randn(SHAPE) : undefined);
  assert.deepEqual(fromGenerator.data, x.data);
});

test('ancestral noise changes the trajectory but not the endpoint of a perfect model; deterministic samplers ignore it', () => {
  const a = createScheduler('euler_ancestral', {}, 8);
  const model = (s: Scheduler, i: number, x: Tensor): Tensor => {
    const input = s.scaleModelInput(x, i);
    const out = zeros(input.shape);
    for (let k = 0; k < out.data.length; k++) out.data[k] = 0.5 * input.data[k]!;
    return out;
  };
  const r1 = run(a, model, a.addNoise(zeros(SHAPE), noise), 1);
  const r2 = run(createScheduler('euler_ancestral', {}, 8), model, a.addNoise(zeros(SHAPE), noise), 2);
  assert.ok(maxAbsDiff(r1, r2) > 1e-3, 'different step noise, different image');
  const e = createScheduler('euler', {}, 8);
  assert.deepEqual(run(e, model, e.addNoise(zeros(SHAPE), noise), 1).data, run(createScheduler('euler', {}, 8), model, e.addNoise(zeros(SHAPE), noise), 2).data);
});

test('euler_ancestral with eta 0 is plain Euler and needs no noise', () => {
  const model = (s: Scheduler, i: number, x: Tensor): Tensor => {
    const input = s.scaleModelInput(x, i);
    const out = zeros(input.shape);
    for (let k = 0; k < out.data.length; k++) out.data[k] = 0.3 * input.data[k]! - 0.1;
    return out;
  };
  const a = createScheduler('euler_ancestral', {}, 7, { eta: 0 });
  const e = createScheduler('euler', {}, 7);
  assert.equal(a.stochastic, false);
  let xa = a.addNoise(zeros(SHAPE), noise);
  let xe = e.addNoise(zeros(SHAPE), noise);
  for (let i = 0; i < 7; i++) {
    xa = a.step(model(a, i, xa), i, xa);
    xe = e.step(model(e, i, xe), i, xe);
  }
  assert.ok(maxAbsDiff(xa, xe) < 1e-5);
});
