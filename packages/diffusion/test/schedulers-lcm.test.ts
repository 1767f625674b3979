/**
 * ComfyUI's `lcm` sampler. The "model" here is a closed-form function of the UNet input and timestep: the real
 * interface the scheduler is driven through (its output goes to step()), not a stand-in for a component. The
 * expected samples are computed here in float64 from sample_lcm's rule (comfy/k_diffusion/sampling.py):
 * D = denoised(x, sigma); x' = D + sigma' z if sigma' > 0 else D, with the schedule's sigmas written out
 * independently (SD's scaled_linear training schedule, ComfyUI's sgm_uniform / karras).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  createAncestralNoiseGenerator,
  createScheduler,
  SAMPLER_NAMES,
  schedulerForKSampler,
  tensor,
  zeros,
  type NoiseGenerator,
  type PredictionType,
  type Scheduler,
  type Tensor,
} from '../src/index.ts';

const T = 1000;
/** SD's training sigmas: betas = linspace(sqrt(0.00085), sqrt(0.012))^2, abar = cumprod(1 - beta). */
const SD_SIGMAS: number[] = (() => {
  const out: number[] = [];
  let abar = 1;
  for (let t = 0; t < T; t++) {
    abar *= 1 - (Math.sqrt(0.00085) + (t / (T - 1)) * (Math.sqrt(0.012) - Math.sqrt(0.00085))) ** 2;
    out.push(Math.sqrt((1 - abar) / abar));
  }
  return out;
})();

/** ComfyUI's sgm_uniform: timesteps linspace(T - 1, 0, steps + 1) without the last, sigma log-interpolated; then 0. */
function sgmUniform(steps: number): number[] {
  const sigmaAt = (t: number): number => {
    const lo = Math.floor(t);
    const w = t - lo;
    return Math.exp((1 - w) * Math.log(SD_SIGMAS[lo]!) + w * Math.log(SD_SIGMAS[Math.ceil(t)]!));
  };
  return [...Array.from({ length: steps }, (_, i) => sigmaAt((T - 1) * (1 - i / steps))), 0];
}

/** The "UNet": a smooth nonlinear function of its (variance-preserving) input and the timestep. */
function unet(input: number, t: number, k: number): number {
  return 0.7 * Math.tanh(input) + 0.15 * Math.sin(0.3 * k + t / 97);
}

function modelOutput(s: Scheduler, i: number, x: Tensor): Tensor {
  const input = s.scaleModelInput(x, i);
  const out = zeros(input.shape);
  for (let k = 0; k < out.data.length; k++) out.data[k] = unet(input.data[k]!, s.timesteps[i]!, k);
  return out;
}

/** sample_lcm in float64, with the noise draws given (one per step that ends above sigma 0). */
function referenceLcm(sigmas: number[], timesteps: number[], start: number[], draws: Float32Array[], prediction: PredictionType): number[][] {
  const xs = [start];
  let used = 0;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i]!;
    const next = sigmas[i + 1]!;
    const x = xs[i]!;
    const d = x.map((v, k) => {
      const m = unet(v / Math.sqrt(s * s + 1), timesteps[i]!, k);
      // ComfyUI EPS / V_PREDICTION calculate_denoised (sigma_data 1)
      return prediction === 'epsilon' ? v - m * s : v / (s * s + 1) - (m * s) / Math.sqrt(s * s + 1);
    });
    if (next > 0) {
      const z = draws[used++]!;
      xs.push(d.map((v, k) => v + next * z[k]!));
    } else {
      xs.push(d);
    }
  }
  assert.equal(used, draws.length, 'every noise draw was used');
  return xs;
}

function runScheduler(s: Scheduler, start: Tensor, noise: NoiseGenerator): Tensor[] {
  const xs = [start];
  for (let i = 0; i < s.timesteps.length; i++) xs.push(s.step(modelOutput(s, i, xs[i]!), i, xs[i]!, noise));
  return xs;
}

function closeSamples(actual: Tensor, expected: number[], what: string): void {
  assert.equal(actual.data.length, expected.length);
  expected.forEach((e, k) => {
    const a = actual.data[k]!;
    assert.ok(Number.isFinite(a), `${what}[${k}] is finite`);
    assert.ok(Math.abs(a - e) <= 2e-6 * Math.max(1, Math.abs(e)), `${what}[${k}]: ${a} vs expected ${e}`);
  });
}

const SHAPE = [1, 4, 2, 2];
const START_NOISE = Array.from({ length: 16 }, (_, k) => Math.sin(1.7 * k + 0.4) * 1.3);

test('lcm is a sampler, in ComfyUI\'s place (after dpmpp_2m, before ddim)', () => {
  assert.deepEqual(SAMPLER_NAMES, ['euler', 'euler_ancestral', 'dpmpp_2m', 'lcm', 'ddim']);
  const s = schedulerForKSampler({ sampler_name: 'lcm', scheduler: 'sgm_uniform', steps: 4 });
  assert.equal(s.sampler, 'lcm');
  assert.equal(s.schedule, 'sgm_uniform');
  assert.equal(s.stochastic, true);
});

test('lcm / sgm_uniform, 4 steps, epsilon: every step is sample_lcm\'s, with the seeded per-step noise', () => {
  const steps = 4;
  const seed = 1234;
  const s = createScheduler('lcm', {}, steps, { schedule: 'sgm_uniform' });
  const sigmas = sgmUniform(steps);
  s.sigmas.forEach((v, i) => assert.ok(Math.abs(v - sigmas[i]!) <= 1e-12 * Math.max(1, sigmas[i]!), `sigma[${i}] ${v} vs ${sigmas[i]}`));
  // the UNet is fed the training timestep nearest each level: t = 999 (1 - i / steps) rounded either way
  // (499.5 sits exactly between two levels in log sigma)
  s.timesteps.forEach((t, i) => assert.ok(Math.abs(t - (T - 1) * (1 - i / steps)) <= 0.5, `timestep ${i}: ${t}`));
  assert.equal(s.timesteps[0], 999);

  const start = s.addNoise(zeros(SHAPE), tensor(START_NOISE, SHAPE));
  const xs = runScheduler(s, start, createAncestralNoiseGenerator(seed));
  // the same generator, fresh: the draws sample_lcm makes, one per step that ends above 0 (steps - 1 of them)
  const gen = createAncestralNoiseGenerator(seed);
  const draws = Array.from({ length: steps - 1 }, () => gen.randn(SHAPE).data);
  const expected = referenceLcm(sigmas, s.timesteps, Array.from(start.data), draws, 'epsilon');
  for (let i = 1; i <= steps; i++) closeSamples(xs[i]!, expected[i]!, `x after step ${i - 1}`);
});

test('lcm / karras, v-prediction on a zero-SNR schedule: the first step from pure noise is finite and sample_lcm\'s', () => {
  const config = { prediction_type: 'v_prediction', timestep_spacing: 'trailing', rescale_betas_zero_snr: true };
  const s = createScheduler('lcm', config, 3, { schedule: 'karras' });
  assert.ok(Math.abs(s.sigmas[0]! - 4518.7636986558555) < 1e-9, 'ComfyUI\'s zero-SNR sigma_max');
  const start = s.addNoise(zeros(SHAPE), tensor(START_NOISE, SHAPE));
  const xs = runScheduler(s, start, createAncestralNoiseGenerator(7));
  const gen = createAncestralNoiseGenerator(7);
  const draws = [gen.randn(SHAPE).data, gen.randn(SHAPE).data];
  const expected = referenceLcm([...s.sigmas], s.timesteps, Array.from(start.data), draws, 'v_prediction');
  for (let i = 1; i <= 3; i++) closeSamples(xs[i]!, expected[i]!, `x after step ${i - 1}`);
});

/** torch.randn draws recorded by test/fixtures/make_noise_refs.py (PyTorch on the CPU). */
function torchDraw(seed: string, index: number): { shape: number[]; data: Float32Array } {
  const refs = JSON.parse(readFileSync(new URL('./fixtures/noise_refs.json', import.meta.url), 'utf8')) as {
    cases: { seed: string; draws: { shape: number[]; float32_b64?: string }[] }[];
  };
  const draw = refs.cases.find((c) => c.seed === seed)!.draws[index]!;
  const buf = Buffer.from(draw.float32_b64!, 'base64');
  const data = new Float32Array(buf.length / 4);
  for (let i = 0; i < data.length; i++) data[i] = buf.readFloatLE(i * 4);
  return { shape: draw.shape, data };
}

test('lcm\'s step noise for seed 6 is ComfyUI\'s: torch.randn(x.size(), generator=manual_seed(6 + 1)) on the CPU', () => {
  const torch = torchDraw('7', 0); // [1, 4, 5, 7], the first draw of a generator seeded 7
  const s = createScheduler('lcm', {}, 2, { schedule: 'sgm_uniform' });
  const start = s.addNoise(zeros(torch.shape), tensor(Array.from({ length: 140 }, (_, k) => Math.cos(k)), torch.shape));
  const [, x1] = runScheduler(s, start, createAncestralNoiseGenerator(6));
  const expected = referenceLcm(sgmUniform(2), s.timesteps, Array.from(start.data), [torch.data], 'epsilon');
  closeSamples(x1!, expected[1]!, 'x after step 0');
});

test('lcm draws noise only for steps that end above sigma 0: a window that leaves noise draws at its last step too', () => {
  const seed = 99;
  const s = createScheduler('lcm', {}, 5, { schedule: 'sgm_uniform' });
  const gen = createAncestralNoiseGenerator(seed);
  runScheduler(s, s.addNoise(zeros(SHAPE), tensor(START_NOISE, SHAPE)), gen);
  // 4 draws were taken: the generator's next draw is the fifth of a fresh one
  const fresh = createAncestralNoiseGenerator(seed);
  for (let k = 0; k < 4; k++) fresh.randn(SHAPE);
  assert.deepEqual(gen.randn(SHAPE).data, fresh.randn(SHAPE).data);

  const window = createScheduler('lcm', {}, 5, { schedule: 'sgm_uniform', endStep: 3 });
  assert.equal(window.sigmas.at(-1)! > 0, true);
  const g2 = createAncestralNoiseGenerator(seed);
  const xs = runScheduler(window, window.addNoise(zeros(SHAPE), tensor(START_NOISE, SHAPE)), g2);
  const f2 = createAncestralNoiseGenerator(seed);
  const draws = [0, 1, 2].map(() => f2.randn(SHAPE).data);
  const expected = referenceLcm([...window.sigmas], window.timesteps, Array.from(xs[0]!.data), draws, 'epsilon');
  closeSamples(xs[3]!, expected[3]!, 'the leftover-noise latent after the window');

  const one = createScheduler('lcm', {}, 1, { schedule: 'sgm_uniform' });
  assert.equal(one.stochastic, false, 'one step to sigma 0 draws nothing');
  const x = one.addNoise(zeros(SHAPE), tensor(START_NOISE, SHAPE));
  const d = one.step(modelOutput(one, 0, x), 0, x);
  assert.deepEqual(d.data, one.denoised(modelOutput(one, 0, x), 0, x).data, 'the last step returns the denoised estimate');
});

test('lcm without step noise says what to pass', () => {
  const s = createScheduler('lcm', {}, 4, { schedule: 'sgm_uniform' });
  const x = zeros(SHAPE);
  assert.throws(() => s.step(x, 0, x), /lcm needs fresh noise at step 0: pass a NoiseGenerator \(e\.g\. createAncestralNoiseGenerator\(seed\)\)/);
});
