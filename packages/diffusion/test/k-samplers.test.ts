import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  K_SAMPLER_NAMES,
  K_SAMPLERS,
  createScheduler,
  kSampler,
  kSamplerInfo,
  noiseLevels,
  percentToSigma,
  resolveSchedulerConfig,
  tensor,
  type Denoiser,
  type ModelCall,
  type ModelSampling,
  type NoiseSampler,
  type KSamplerOptions as SamplerOptions,
  type SamplerRun,
  type Tensor,
} from '../src/index.ts';
import { integrate } from '../src/k-samplers/quadrature.ts';
import { lmsCoefficient } from '../src/k-samplers/lms.ts';
import { deisCoefficients } from '../src/k-samplers/deis.ts';
import { stochasticAdamsCoefficients } from '../src/k-samplers/sa-solver.ts';

/** Reference trajectories from test/fixtures/make_k_sampler_refs.py (numpy float64 transcriptions). */
interface Case {
  sampler: string;
  schedule: string;
  options: Record<string, number | string | boolean>;
  x: number[];
  calls: number[];
  draws: number;
}
const refs = JSON.parse(readFileSync(new URL('./fixtures/k_sampler_refs.json', import.meta.url), 'utf8')) as {
  schedules_input: Record<string, number[]>;
  start: number[];
  cases: Case[];
  sa_solver_tau_interval: [number, number];
};

const SHAPE = [1, 2, 2, 2];
// The toy model of the reference script: per element the posterior mean of Gaussian data, for a positive and a
// negative prompt, mixed with CFG 2.5.
const MU_POS = [0.3, -0.5, 1.2, 0.0, -1.1, 0.7, 0.25, -0.8];
const VAR_POS = [0.5, 1.0, 0.3, 2.0, 0.8, 1.5, 0.6, 1.1];
const MU_NEG = [0.1, -0.2, 0.6, 0.4, -0.6, 0.2, -0.3, -0.1];
const VAR_NEG = [0.9, 0.7, 0.6, 1.2, 1.0, 0.8, 0.9, 0.6];
const CFG = 2.5;

const levels = noiseLevels(resolveSchedulerConfig());
const modelSampling: ModelSampling = { sigmaMin: levels.sigmaMin, sigmaMax: levels.sigmaMax, alphasCumprod: levels.alphasCumprod };

interface Recorder {
  calls: { sigma: number; call: ModelCall }[];
  draws: number;
  model: Denoiser;
  noise: NoiseSampler;
}

function toy(withUncond = true): Recorder {
  const rec: Recorder = {
    calls: [],
    draws: 0,
    model: async (x, sigma, call) => {
      rec.calls.push({ sigma, call });
      const denoised = new Float32Array(8);
      const uncond = new Float32Array(8);
      for (let k = 0; k < 8; k++) {
        const v = x.data[k]!;
        const neg = (VAR_NEG[k]! * v + sigma * sigma * MU_NEG[k]!) / (VAR_NEG[k]! + sigma * sigma);
        const pos = (VAR_POS[k]! * v + sigma * sigma * MU_POS[k]!) / (VAR_POS[k]! + sigma * sigma);
        uncond[k] = neg;
        denoised[k] = neg + CFG * (pos - neg);
      }
      return withUncond ? { denoised: tensor(denoised, SHAPE), uncond: tensor(uncond, SHAPE) } : { denoised: tensor(denoised, SHAPE) };
    },
    noise: (sigma, next) => {
      const z = new Float32Array(8);
      for (let k = 0; k < 8; k++) z[k] = Math.sin(1.3 + 2.1 * k + 3.7 * sigma + 5.9 * next + 0.77 * rec.draws) * 1.2;
      rec.draws++;
      return tensor(z, SHAPE);
    },
  };
  return rec;
}

/** The reference script's option names to ours. */
function optionsOf(c: Case): SamplerOptions {
  const o: SamplerOptions = {};
  for (const [key, value] of Object.entries(c.options)) {
    switch (key) {
      case 'eta': o.eta = value as number; break;
      case 's_noise': o.sNoise = value as number; break;
      case 'r': o.r = value as number; break;
      case 'solver_type': o.solverType = value as SamplerOptions['solverType']; break;
      case 'order': o.order = value as number; break;
      case 'max_stage': o.maxStage = value as number; break;
      case 'ge_gamma': o.geGamma = value as number; break;
      case 'predictor_order': o.predictorOrder = value as number; break;
      case 'corrector_order': o.correctorOrder = value as number; break;
      case 'simple_order_2': o.simpleOrder2 = value as boolean; break;
      case 'reverse_time_eta': o.noiseScaler = (l) => l ** ((value as number) + 1); break;
      default: throw new Error(`unmapped reference option ${key}`);
    }
  }
  return o;
}

function startFor(sigmas: readonly number[]): Tensor {
  const scale = sigmas.at(-1) === 0 ? Math.sqrt(1 + sigmas[0]! ** 2) : sigmas[0]!;
  return tensor(refs.start.map((v) => v * scale), SHAPE);
}

function run(rec: Recorder, sigmas: readonly number[], options: SamplerOptions = {}, withNoise = true): SamplerRun {
  return { model: rec.model, sigmas, ...(withNoise ? { noise: rec.noise } : {}), modelSampling, options };
}

/** Largest |a - b| relative to the reference vector's scale (max |b|, at least 1). */
function relativeError(actual: ArrayLike<number>, expected: readonly number[]): number {
  const scale = Math.max(1, ...expected.map(Math.abs));
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / scale);
  return Number.isNaN(worst) || actual.length !== expected.length ? Infinity : worst;
}

function label(c: Case): string {
  const o = Object.keys(c.options).length ? ` ${JSON.stringify(c.options)}` : '';
  return `${c.sampler} on ${c.schedule}${o}`;
}

// Stored in float32, a sample picks up one rounding per operation; over ten steps that stays below 1e-6.
const TOLERANCE = 1e-6;
// dpm_adaptive chooses its steps from the difference of two float32 samples, so its step sizes (and the sigmas it
// calls the model at) carry that rounding, about 1e-5 relative, and so does its result; with eta > 0 the test's
// noise, a function of the sigmas, moves with them.
const ADAPTIVE_TOLERANCE = 1e-5;
const ADAPTIVE_CALL_TOLERANCE = 1e-4;
const ADAPTIVE_NOISY_TOLERANCE = 1e-3;

for (const c of refs.cases) {
  test(`matches the reference transcription: ${label(c)}`, async () => {
    const sigmas = refs.schedules_input[c.schedule]!;
    const rec = toy();
    const x = startFor(sigmas);
    const before = Array.from(x.data);
    const out = await kSampler(c.sampler)(x, run(rec, sigmas, optionsOf(c)));
    assert.deepEqual(Array.from(x.data), before, 'the input sample is not modified');
    assert.notEqual(out, x, 'a new tensor comes back');
    assert.deepEqual(out.shape, SHAPE);
    const adaptive = c.sampler === 'dpm_adaptive';
    const err = relativeError(out.data, c.x);
    assert.ok(err <= (adaptive ? (c.options['eta'] ? ADAPTIVE_NOISY_TOLERANCE : ADAPTIVE_TOLERANCE) : TOLERANCE), `final sample off by ${err} (relative)\n  got      ${Array.from(out.data).join(', ')}\n  expected ${c.x.join(', ')}`);
    assert.equal(rec.calls.length, c.calls.length, 'number of model calls');
    const callErr = relativeError(rec.calls.map((r) => r.sigma), c.calls);
    assert.ok(callErr <= (adaptive ? ADAPTIVE_CALL_TOLERANCE : 1e-6), `model called at other sigmas (relative ${callErr}): ${rec.calls.map((r) => r.sigma).join(', ')}`);
    assert.equal(rec.draws, c.draws, 'noise draws (ComfyUI draws even where it weights the noise by 0)');
  });
}

test('every sampler name has a reference case with default options on three schedules', () => {
  for (const name of K_SAMPLER_NAMES) {
    const own = name === 'ddim' ? 'euler' : name.replace(/_gpu$/, '');
    for (const schedule of ['karras10', 'exp7', 'window']) {
      assert.ok(
        refs.cases.some((c) => c.sampler === own && c.schedule === schedule && Object.keys(c.options).length === 0),
        `${name} (${own}) on ${schedule}`,
      );
    }
  }
});

test('K_SAMPLER_NAMES is ComfyUI\'s SAMPLER_NAMES, in its order', () => {
  // comfy/samplers.py: KSAMPLER_NAMES + ["ddim", "uni_pc", "uni_pc_bh2"]
  assert.deepEqual(
    [...K_SAMPLER_NAMES],
    [
      'euler', 'euler_cfg_pp', 'euler_ancestral', 'euler_ancestral_cfg_pp', 'heun', 'heunpp2', 'exp_heun_2_x0', 'exp_heun_2_x0_sde',
      'dpm_2', 'dpm_2_ancestral', 'lms', 'dpm_fast', 'dpm_adaptive', 'dpmpp_2s_ancestral', 'dpmpp_2s_ancestral_cfg_pp', 'dpmpp_sde',
      'dpmpp_sde_gpu', 'dpmpp_2m', 'dpmpp_2m_cfg_pp', 'dpmpp_2m_sde', 'dpmpp_2m_sde_gpu', 'dpmpp_2m_sde_heun', 'dpmpp_2m_sde_heun_gpu',
      'dpmpp_3m_sde', 'dpmpp_3m_sde_gpu', 'ddpm', 'lcm', 'ipndm', 'ipndm_v', 'deis', 'res_multistep', 'res_multistep_cfg_pp',
      'res_multistep_ancestral', 'res_multistep_ancestral_cfg_pp', 'gradient_estimation', 'gradient_estimation_cfg_pp', 'er_sde',
      'seeds_2', 'seeds_3', 'sa_solver', 'sa_solver_pece', 'ddim', 'uni_pc', 'uni_pc_bh2',
    ],
  );
  assert.deepEqual(K_SAMPLERS.map((d) => d.name), [...K_SAMPLER_NAMES]);
});

test('an unknown name is a RangeError that lists the valid names', () => {
  assert.throws(() => kSampler('euler_a'), (e: unknown) => e instanceof RangeError && /Unknown k-sampler "euler_a"; valid sampler names are: euler, euler_cfg_pp, .*uni_pc_bh2$/.test(e.message));
  assert.throws(() => kSamplerInfo(''), RangeError);
});

test('descriptors: Brownian noise for the DPM-Solver++ SDE family, _gpu variants share their function, ddim is euler', () => {
  const brownian = K_SAMPLERS.filter((d) => d.brownianNoise).map((d) => d.name);
  assert.deepEqual(brownian, [
    'dpmpp_sde', 'dpmpp_sde_gpu', 'dpmpp_2m_sde', 'dpmpp_2m_sde_gpu', 'dpmpp_2m_sde_heun', 'dpmpp_2m_sde_heun_gpu', 'dpmpp_3m_sde', 'dpmpp_3m_sde_gpu',
  ]);
  for (const d of K_SAMPLERS) {
    if (d.name.endsWith('_gpu')) assert.equal(d.sample, kSampler(d.name.slice(0, -4)), d.name);
    if (d.brownianNoise) assert.ok(d.needsNoise, d.name);
  }
  assert.equal(kSampler('ddim'), kSampler('euler'));
  assert.ok(kSamplerInfo('ddim').randomInpaintNoise);
  assert.deepEqual(K_SAMPLERS.filter((d) => d.cfgPp).map((d) => d.name), K_SAMPLER_NAMES.filter((n) => n.includes('cfg_pp')));
  assert.deepEqual(K_SAMPLERS.filter((d) => d.discardPenultimateSigma).map((d) => d.name), ['dpm_2', 'dpm_2_ancestral', 'uni_pc', 'uni_pc_bh2']);
  assert.deepEqual(K_SAMPLERS.filter((d) => d.ownSteps).map((d) => d.name), ['dpm_fast', 'dpm_adaptive']);
});

test('needsNoise: those that draw refuse to start without run.noise, before any model call; the others run without it', async () => {
  const sigmas = refs.schedules_input['karras10']!;
  for (const d of K_SAMPLERS) {
    const rec = toy();
    if (d.needsNoise) {
      await assert.rejects(d.sample(startFor(sigmas), run(rec, sigmas, {}, false)), (e: unknown) => e instanceof Error && e.message.includes(`"${d.name.replace(/_gpu$/, '')}`) && /no noise sampler: pass run\.noise/.test(e.message), d.name);
      assert.equal(rec.calls.length, 0, `${d.name}: no model call before the error`);
    } else {
      const out = await d.sample(startFor(sigmas), run(rec, sigmas, {}, false));
      assert.ok(Array.from(out.data).every(Number.isFinite), d.name);
    }
  }
  // Options that switch the noise off make a noisy sampler run without a noise sampler, and vice versa.
  const rec = toy();
  await kSampler('euler_ancestral')(startFor(sigmas), run(rec, sigmas, { eta: 0 }, false));
  await assert.rejects(kSampler('dpm_fast')(startFor(sigmas), run(toy(), sigmas, { eta: 0.5 }, false)), /no noise sampler/);
});

test('cfg++ samplers steer by the negative prompt\'s estimate; the others ignore it', async () => {
  const sigmas = refs.schedules_input['karras10']!;
  for (const d of K_SAMPLERS) {
    const withUncond = await d.sample(startFor(sigmas), run(toy(true), sigmas));
    const without = await d.sample(startFor(sigmas), run(toy(false), sigmas));
    const same = relativeError(withUncond.data, Array.from(without.data)) === 0;
    assert.equal(same, !d.cfgPp, `${d.name}: uncond ${d.cfgPp ? 'must' : 'must not'} change the result`);
  }
});

test('model calls carry the step and the call within it; one report per step', async () => {
  const sigmas = refs.schedules_input['exp7']!;
  const rec = toy();
  const reports: number[] = [];
  await kSampler('heun')(startFor(sigmas), { ...run(rec, sigmas), callback: (info) => reports.push(info.step) });
  assert.deepEqual(rec.calls.map((c) => [c.call.step, c.call.call]), [[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1], [3, 0], [3, 1], [4, 0], [4, 1], [5, 0], [5, 1], [6, 0]]);
  assert.deepEqual(reports, [0, 1, 2, 3, 4, 5, 6]);
  const seeds = toy();
  await kSampler('seeds_3')(startFor(sigmas), run(seeds, sigmas));
  assert.deepEqual(seeds.calls.slice(0, 4).map((c) => [c.call.step, c.call.call]), [[0, 0], [0, 1], [0, 2], [1, 0]]);
  const uni = toy();
  await kSampler('uni_pc')(startFor(sigmas), run(uni, sigmas));
  assert.deepEqual(uni.calls.map((c) => c.call.step), [0, 1, 2, 3, 4, 5, 6], 'UniPC: the corrector call is the next step\'s estimate');
  for (const d of K_SAMPLERS.filter((k) => !k.ownSteps)) {
    const seen: number[] = [];
    await d.sample(startFor(sigmas), { ...run(toy(), sigmas), callback: (info) => seen.push(info.step) });
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6], `${d.name} reports`);
  }
});

test('no step (one sigma or none) gives the input back, as a copy', async () => {
  for (const d of K_SAMPLERS) {
    for (const sigmas of [[], [3]]) {
      const x = startFor([3, 0]);
      const rec = toy();
      const out = await d.sample(x, run(rec, sigmas));
      assert.notEqual(out, x, d.name);
      assert.deepEqual(Array.from(out.data), Array.from(x.data), d.name);
      assert.equal(rec.calls.length, 0, d.name);
    }
  }
});

// ---- the same update as the one-call-per-step Scheduler implementations --------------------------------------

/** Runs a Scheduler (eps in, as the UNet gives it) on the toy model and the k-sampler on the same inputs. */
async function againstScheduler(name: 'euler' | 'euler_ancestral' | 'dpmpp_2m' | 'lcm', schedule: 'karras' | 'normal' | 'sgm_uniform'): Promise<number> {
  const scheduler = createScheduler(name, {}, 9, { schedule });
  const sigmas = scheduler.sigmas;
  const start = startFor(sigmas);
  // k-sampler, recording the noise it is given per step.
  const kRec = toy();
  const stepNoise: Tensor[] = [];
  const noise: NoiseSampler = (s, n) => {
    const z = kRec.noise(s, n);
    stepNoise.push(z);
    return z;
  };
  const kOut = await kSampler(name)(start, { ...run(kRec, sigmas), noise });
  // Scheduler: eps = (x - D) / sigma, and the same noise for the same step.
  const sRec = toy();
  let x = start;
  let drawn = 0;
  for (let i = 0; i < scheduler.timesteps.length; i++) {
    const sigma = sigmas[i]!;
    const { denoised } = await sRec.model(x, sigma, { step: i, call: 0 });
    const eps = tensor(x.data.map((v, k) => (v - denoised.data[k]!) / sigma), SHAPE);
    const needs = scheduler.stochastic && sigmas[i + 1]! > 0;
    x = scheduler.step(eps, i, x, needs ? stepNoise[drawn++] : undefined);
  }
  return relativeError(kOut.data, Array.from(x.data));
}

for (const name of ['euler', 'euler_ancestral', 'dpmpp_2m', 'lcm'] as const) {
  test(`${name} in k-form equals the ${name} Scheduler on the same inputs`, async () => {
    for (const schedule of ['karras', 'normal', 'sgm_uniform'] as const) {
      const err = await againstScheduler(name, schedule);
      assert.ok(err <= 1e-6, `${schedule}: relative difference ${err}`);
    }
  });
}

// ---- coefficients ----------------------------------------------------------------------------------------------

test('adaptive Gauss-Kronrod quadrature: closed forms to 1e-10', () => {
  const cases: [string, (x: number) => number, number, number, number][] = [
    ['x^20 on [0, 1]', (x) => x ** 20, 0, 1, 1 / 21],
    ['exp on [-2, 3]', Math.exp, -2, 3, Math.exp(3) - Math.exp(-2)],
    ['1/(1+x^2) on [-50, 50]', (x) => 1 / (1 + x * x), -50, 50, 2 * Math.atan(50)],
    ['sqrt on [0, 4]', Math.sqrt, 0, 4, 16 / 3],
    ['sin(10x) on [0, pi]', (x) => Math.sin(10 * x), 0, Math.PI, 0],
    ['log on [1e-6, 1]', Math.log, 1e-6, 1, -1 - (1e-6 * Math.log(1e-6) - 1e-6)],
    ['reversed bounds: exp on [3, -2]', Math.exp, 3, -2, Math.exp(-2) - Math.exp(3)],
  ];
  for (const [what, f, a, b, exact] of cases) {
    const got = integrate(f, a, b);
    assert.ok(Math.abs(got - exact) <= 1e-10 * Math.max(1, Math.abs(exact)), `${what}: ${got} vs ${exact}`);
  }
  assert.equal(integrate(Math.exp, 1, 1), 0);
  assert.throws(() => integrate((x) => 1 / x, -1, 1), /not finite/);
});

test('lms coefficients: closed forms of the Lagrange integrals', () => {
  const t = [10, 6, 3.5, 2, 1.1, 0.4];
  // Order 1: the Euler step.
  assert.ok(Math.abs(lmsCoefficient(1, t, 2, 0) - (t[3]! - t[2]!)) < 1e-13);
  // Order 2 at step i: c0 = int (tau - t_i-1) / (t_i - t_i-1), c1 = int (tau - t_i) / (t_i-1 - t_i) over [t_i, t_i+1].
  const [a, b, c] = [t[2]!, t[1]!, t[3]!];
  const c0 = ((c - b) ** 2 - (a - b) ** 2) / (2 * (a - b));
  const c1 = (c - a) ** 2 / (2 * (b - a));
  assert.ok(Math.abs(lmsCoefficient(2, t, 2, 0) - c0) < 1e-12, `${lmsCoefficient(2, t, 2, 0)} vs ${c0}`);
  assert.ok(Math.abs(lmsCoefficient(2, t, 2, 1) - c1) < 1e-12, `${lmsCoefficient(2, t, 2, 1)} vs ${c1}`);
  // The basis sums to 1, so the coefficients of any order sum to the step.
  for (const order of [3, 4, 5]) {
    const sum = Array.from({ length: order }, (_, j) => lmsCoefficient(order, t, 4, j)).reduce((s, v) => s + v, 0);
    assert.ok(Math.abs(sum - (t[5]! - t[4]!)) < 1e-12, `order ${order}: ${sum}`);
  }
  assert.throws(() => lmsCoefficient(4, t, 2, 0), /order 4 is too high for step 2/);
});

test('deis coefficients sum to the step (the Lagrange basis sums to 1) and order 1 is Euler', () => {
  const sigmas = refs.schedules_input['karras10']!;
  for (const order of [2, 3, 4]) {
    for (let i = order - 1; i < sigmas.length - 2; i++) {
      const c = deisCoefficients(sigmas, i, order);
      const sum = c.reduce((s, v) => s + v, 0);
      assert.ok(Math.abs(sum - (sigmas[i + 1]! - sigmas[i]!)) < 1e-10 * sigmas[i]!, `order ${order} step ${i}: ${sum}`);
    }
  }
});

test('sa_solver: tau interval from the training schedule, coefficients sum to 1 - e^-((1 + tau^2) h)', () => {
  const [start, end] = refs.sa_solver_tau_interval;
  assert.ok(Math.abs(percentToSigma(modelSampling, 0.2) - start) <= 1e-12 * start);
  assert.ok(Math.abs(percentToSigma(modelSampling, 0.8) - end) <= 1e-12 * end);
  assert.equal(percentToSigma(modelSampling, 0), 999999999.9);
  assert.equal(percentToSigma(modelSampling, 1), 0);
  const nodes = [-2.1, -1.4, -0.6, 0.1];
  for (const tau of [0, 0.5, 1]) {
    for (let n = 1; n <= 4; n++) {
      const used = nodes.slice(4 - n);
      const b = stochasticAdamsCoefficients(used, 0.1, 0.9, tau);
      const sum = b.reduce((s, v) => s + v, 0);
      assert.ok(Math.abs(sum + Math.expm1(-(1 + tau * tau) * 0.8)) < 1e-13, `tau ${tau} order ${n}: ${sum}`);
    }
  }
});

test('sampler options are checked', async () => {
  const sigmas = refs.schedules_input['karras10']!;
  await assert.rejects(kSampler('euler_ancestral')(startFor(sigmas), run(toy(), sigmas, { eta: -1 })), /euler_ancestral: option eta must be a finite number >= 0/);
  await assert.rejects(kSampler('lms')(startFor(sigmas), run(toy(), sigmas, { order: 0 })), /lms: option order must be a finite number and a whole number from 1 to 100/);
  await assert.rejects(kSampler('dpmpp_2m_sde')(startFor(sigmas), run(toy(), sigmas, { solverType: 'phi_1' })), /solverType must be 'midpoint' or 'heun'/);
  await assert.rejects(kSampler('dpm_adaptive')(startFor(sigmas), run(toy(), sigmas, { order: 4 })), /whole number from 2 to 3/);
  await assert.rejects(kSampler('euler')(startFor(sigmas), run(toy(), [1, -1])), /sigmas must be finite and >= 0/);
});
