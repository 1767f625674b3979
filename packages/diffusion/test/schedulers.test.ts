import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  createScheduler,
  diffusersDdimTimesteps,
  denoisedScheduleSigmas,
  karrasSigmas,
  noiseLevels,
  resolveSchedulerConfig,
  SAMPLER_NAMES,
  SCHEDULER_NAMES,
  scheduleSigmas,
  schedulerForKSampler,
  windowSigmas,
  SD_SCHEDULER_CONFIG,
  tensor,
  type ScheduleName,
  type Tensor,
} from '../src/index.ts';

/** Reference values computed by test/fixtures/make_scheduler_refs.py (numpy, formulas from the papers). */
const refs = JSON.parse(readFileSync(new URL('./fixtures/scheduler_refs.json', import.meta.url), 'utf8')) as {
  alphas_cumprod: Record<string, number>;
  sigmas: Record<string, number>;
  sigma_min: number;
  sigma_max: number;
  schedules: Record<string, { sigmas: number[]; timesteps: number[] }>;
  denoise: Record<string, number[]>;
  ddim_timesteps: Record<string, number[]>;
  input: { x: number[]; m0: number[]; m1: number[]; z: number[] };
  steps: Record<string, number[][]>;
};

const levels = noiseLevels(resolveSchedulerConfig());

function close(actual: number, expected: number, rel: number, what: string): void {
  const tol = rel * Math.max(1, Math.abs(expected));
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs expected ${expected} (tolerance ${tol})`);
}

function closeArray(actual: ArrayLike<number>, expected: readonly number[], rel: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) close(actual[i]!, expected[i]!, rel, `${what}[${i}]`);
}

test('SD training schedule: hand-checkable values', () => {
  assert.equal(levels.alphasCumprod[0], 1 - 0.00085); // the first beta is beta_start
  close(levels.alphasCumprod[999]!, 0.0046, 0.001, 'alphas_cumprod[999] ~ 0.0046');
  close(levels.sigmaMax, 14.6146, 1e-5, 'sigma_max'); // the familiar SD 1.x values
  close(levels.sigmaMin, 0.0292, 1e-3, 'sigma_min');
});

test('SD training schedule matches the numpy reference', () => {
  for (const [t, v] of Object.entries(refs.alphas_cumprod)) close(levels.alphasCumprod[Number(t)]!, v, 1e-12, `alphas_cumprod[${t}]`);
  for (const [t, v] of Object.entries(refs.sigmas)) close(levels.sigmas[Number(t)]!, v, 1e-12, `sigma[${t}]`);
  close(levels.sigmaMin, refs.sigma_min, 1e-12, 'sigma_min');
  close(levels.sigmaMax, refs.sigma_max, 1e-12, 'sigma_max');
});

test('DDIM timesteps: 25 steps, leading + steps_offset 1 = [961, 921, ..., 1]; other spacings as diffusers', () => {
  const expected = Array.from({ length: 25 }, (_, k) => 961 - 40 * k);
  assert.deepEqual(diffusersDdimTimesteps(resolveSchedulerConfig(), 25), expected);
  assert.deepEqual(createScheduler('ddim', {}, 25).timesteps, expected);
  assert.deepEqual(refs.ddim_timesteps['leading_25'], expected);
  assert.deepEqual(diffusersDdimTimesteps(resolveSchedulerConfig(), 10), refs.ddim_timesteps['leading_10']);
  assert.deepEqual(diffusersDdimTimesteps(resolveSchedulerConfig({ timestep_spacing: 'trailing' }), 10), refs.ddim_timesteps['trailing_10']);
  assert.deepEqual(diffusersDdimTimesteps(resolveSchedulerConfig({ timestep_spacing: 'linspace' }), 10), refs.ddim_timesteps['linspace_10']);
});

test('every ComfyUI scheduler gives the reference sigmas and UNet timesteps', () => {
  // beta, linear_quadratic and kl_optimal have their own references (schedulers-extra.test.ts).
  for (const name of SCHEDULER_NAMES.filter((n) => !['beta', 'linear_quadratic', 'kl_optimal'].includes(n))) {
    for (const steps of [10, 25]) {
      const ref = refs.schedules[`${name}_${steps}`]!;
      const sigmas = scheduleSigmas(name, levels, steps);
      closeArray(sigmas, ref.sigmas, 1e-9, `${name} ${steps} sigmas`);
      const s = createScheduler('euler', {}, steps, { schedule: name });
      closeArray(s.sigmas, ref.sigmas, 1e-9, `${name} ${steps} scheduler.sigmas`);
      assert.deepEqual(s.timesteps, ref.timesteps, `${name} ${steps} timesteps`);
    }
  }
});

test('Karras sigmas start at sigma_max, end at sigma_min then 0 (eq. 5 endpoints)', () => {
  const s = karrasSigmas(12, levels.sigmaMin, levels.sigmaMax);
  assert.equal(s.length, 13);
  close(s[0]!, levels.sigmaMax, 1e-13, 'first');
  close(s[11]!, levels.sigmaMin, 1e-13, 'last non-zero');
  assert.equal(s[12], 0);
  assert.deepEqual(createScheduler('dpmpp_2m', {}, 12, { karras: true }).sigmas, s);
});

test('ddim_uniform at 25 steps feeds the same timesteps as DDIM leading spacing; at 30 steps it runs 31, like ComfyUI', () => {
  assert.deepEqual(createScheduler('euler', {}, 25, { schedule: 'ddim_uniform' }).timesteps, refs.ddim_timesteps['leading_25']);
  const s30 = createScheduler('euler', {}, 30, { schedule: 'ddim_uniform' });
  assert.equal(s30.timesteps.length, 31);
  closeArray(s30.sigmas, refs.schedules['ddim_uniform_30']!.sigmas, 1e-9, 'ddim_uniform 30');
});

test('denoise < 1 keeps the last steps + 1 sigmas of a floor(steps / denoise) schedule (ComfyUI KSampler)', () => {
  for (const [key, expected] of Object.entries(refs.denoise)) {
    const [name, steps, dn] = key.split('_') as [ScheduleName, string, string];
    const sigmas = denoisedScheduleSigmas(name, levels, Number(steps), Number(dn));
    closeArray(sigmas, expected, 1e-9, key);
    const s = createScheduler('euler', {}, Number(steps), { schedule: name, denoise: Number(dn) });
    assert.equal(s.timesteps.length, Number(steps));
    assert.ok(s.sigmas[0]! < levels.sigmaMax);
    assert.equal(s.initNoiseSigma, s.sigmas[0], 'img2img starts at latent + sigma_0 * noise');
  }
  assert.deepEqual(createScheduler('euler', {}, 10, { denoise: 0 }).timesteps, []);
});

// One and two steps on a fixed tiny input, compared with the reference script's transcription of the papers.
function twoSteps(name: string, schedule: ScheduleName | undefined, options: Record<string, unknown> = {}, config = {}): number[][] {
  const s = createScheduler(name, config, name === 'ddim' && !schedule ? 25 : 10, { ...(schedule ? { schedule } : {}), ...options });
  const shape = [1, 4, 1, 1];
  const z = tensor(refs.input.z, shape);
  const x0: Tensor = tensor(refs.input.x, shape);
  const x1 = s.step(tensor(refs.input.m0, shape), 0, x0, z);
  const x2 = s.step(tensor(refs.input.m1, shape), 1, x1, z);
  assert.deepEqual(Array.from(x0.data), refs.input.x.map(Math.fround), 'step() must not modify its input');
  return [Array.from(x1.data), Array.from(x2.data)];
}

const stepCases: [string, () => number[][]][] = [
  ['euler_normal_10', () => twoSteps('euler', 'normal')],
  ['euler_karras_10', () => twoSteps('euler', 'karras')],
  ['euler_normal_10_v', () => twoSteps('euler', 'normal', {}, { prediction_type: 'v_prediction' })],
  ['euler_ancestral_normal_10', () => twoSteps('euler_ancestral', 'normal')],
  ['euler_ancestral_normal_10_eta0.5', () => twoSteps('euler_ancestral', 'normal', { eta: 0.5 })],
  ['dpmpp_2m_normal_10', () => twoSteps('dpmpp_2m', 'normal')],
  ['dpmpp_2m_karras_10', () => twoSteps('dpmpp_2m', 'karras')],
  ['ddim_diffusers_25', () => twoSteps('ddim', undefined)],
  ['ddim_diffusers_25_v', () => twoSteps('ddim', undefined, {}, { prediction_type: 'v_prediction' })],
  ['ddim_diffusers_25_eta0.5', () => twoSteps('ddim', undefined, { eta: 0.5 })],
];
for (const [key, run] of stepCases) {
  test(`step outputs match the reference: ${key}`, () => {
    const [a, b] = run();
    const ref = refs.steps[key]!;
    closeArray(a!, ref[0]!, 2e-6, `${key} step 0`);
    closeArray(b!, ref[1]!, 2e-6, `${key} step 1`);
  });
}

test('scaleModelInput gives the variance-preserving UNet input; DDIM samples already are', () => {
  const x = tensor([1, -2, 3, 4], [1, 4, 1, 1]);
  const e = createScheduler('euler', {}, 10);
  const k = 1 / Math.sqrt(e.sigmas[3]! ** 2 + 1);
  closeArray(e.scaleModelInput(x, 3).data, [k, -2 * k, 3 * k, 4 * k], 1e-7, 'euler input');
  assert.deepEqual(createScheduler('ddim', {}, 10).scaleModelInput(x, 3).data, x.data);
});

test('a full-strength start is noise * sqrt(1 + sigma_max^2) (ComfyUI max_denoise)', () => {
  const s = createScheduler('euler', {}, 20);
  close(s.initNoiseSigma, Math.sqrt(1 + levels.sigmaMax ** 2), 1e-12, 'initNoiseSigma');
  const noise = tensor([1, -1, 0.5, 2], [1, 4, 1, 1]);
  const latent = tensor([0.1, 0.2, 0.3, 0.4], [1, 4, 1, 1]);
  const start = s.addNoise(latent, noise);
  closeArray(start.data, [0.1, 0.2, 0.3, 0.4].map((l, i) => l + [1, -1, 0.5, 2][i]! * s.initNoiseSigma), 1e-6, 'addNoise at step 0');
  const mid = s.addNoise(latent, noise, 5);
  closeArray(mid.data, [0.1, 0.2, 0.3, 0.4].map((l, i) => l + [1, -1, 0.5, 2][i]! * s.sigmas[5]!), 1e-6, 'addNoise at step 5');
});

test('the KSampler widgets map to schedulers by ComfyUI name', () => {
  assert.deepEqual(SAMPLER_NAMES, ['euler', 'euler_ancestral', 'dpmpp_2m', 'lcm', 'ddim']);
  assert.deepEqual(SCHEDULER_NAMES, ['normal', 'karras', 'exponential', 'sgm_uniform', 'simple', 'ddim_uniform', 'beta', 'linear_quadratic', 'kl_optimal']);
  for (const sampler_name of SAMPLER_NAMES) {
    for (const scheduler of SCHEDULER_NAMES) {
      const s = schedulerForKSampler({ sampler_name, scheduler, steps: 12, denoise: 1 }, SD_SCHEDULER_CONFIG);
      assert.equal(s.sampler, sampler_name);
      assert.equal(s.schedule, scheduler);
      assert.equal(s.sigmas.at(-1), 0, `${sampler_name}/${scheduler} ends at sigma 0`);
      assert.equal(s.sigmas.length, s.timesteps.length + 1);
    }
  }
});

test('a diffusers scheduler_config.json is read as is (unknown keys ignored, v-prediction honoured)', () => {
  const sd2 = {
    _class_name: 'DDIMScheduler', _diffusers_version: '0.8.0', beta_end: 0.012, beta_schedule: 'scaled_linear',
    beta_start: 0.00085, clip_sample: false, num_train_timesteps: 1000, prediction_type: 'v_prediction',
    set_alpha_to_one: false, skip_prk_steps: true, steps_offset: 1, trained_betas: null,
  };
  const s = createScheduler('ddim', sd2, 50);
  assert.equal(s.predictionType, 'v_prediction');
  assert.equal(s.timesteps[0], 981);
  assert.equal(s.timesteps.at(-1), 1);
});

test('unknown names and bad settings are refused with messages that list the valid choices', () => {
  assert.throws(() => createScheduler('eulr', {}, 10), /Unknown sampler "eulr"; valid Scheduler names are: euler, euler_ancestral, dpmpp_2m, lcm, ddim/);
  assert.throws(() => createScheduler('uni_pc', {}, 10), /ComfyUI's "uni_pc" runs as a k-diffusion sampler: kSampler\("uni_pc"\)\); valid Scheduler names are: euler/);
  assert.throws(
    () => createScheduler('euler', {}, 10, { schedule: 'karas' as never }),
    /Unknown scheduler "karas"; valid scheduler names are: normal, karras, exponential, sgm_uniform, simple, ddim_uniform/,
  );
  assert.throws(() => createScheduler('euler', {}, 10, { schedule: 'simple', karras: true }), /conflicts with schedule "simple"/);
  assert.throws(() => createScheduler('euler', {}, 0), /steps must be a whole number >= 1/);
  assert.throws(() => createScheduler('euler', {}, 10, { denoise: 1.5 }), /denoise must be between 0 and 1/);
  assert.throws(() => createScheduler('euler', { beta_schedule: 'squaredcos_cap_v2' }, 10), /beta_schedule = "squaredcos_cap_v2" is not supported; use one of: scaled_linear, linear/);
  assert.throws(() => createScheduler('euler', { steps_offset: -1 }, 10), /steps_offset = -1 must be a non-negative integer/);
  assert.throws(() => createScheduler('euler', { trained_betas: [0.1] }, 10), /trained_betas must be null or 1000 numbers in \(0, 1\)/);
  assert.throws(() => createScheduler('euler', { rescale_betas_zero_snr: true }, 10), /rescale_betas_zero_snr = true needs prediction_type "v_prediction"/);
  assert.throws(() => createScheduler('ddim', {}, 2000), /2000 steps is more than the model's 1000 training timesteps/);
  const x = tensor([0, 0, 0, 0], [1, 4, 1, 1]);
  assert.throws(() => createScheduler('euler', {}, 10).step(x, 10, x), /step index 10 is outside this schedule's 10 step\(s\)/);
  assert.throws(() => createScheduler('euler_ancestral', {}, 10).step(x, 0, x), /euler_ancestral needs fresh noise at step 0: pass a NoiseGenerator/);
  const dpm = createScheduler('dpmpp_2m', {}, 10);
  dpm.step(x, 0, x);
  assert.throws(() => dpm.step(x, 2, x), /multistep method: steps must run in order.*got step 2, expected 1/);
});

test('KSamplerAdvanced windows cut the levels as ComfyUI\'s KSampler.sample does (end first, then start)', () => {
  const s = [14.6, 8, 4, 2, 1, 0.5, 0]; // 6 steps
  assert.deepEqual(windowSigmas(s, {}), s, 'no window: unchanged');
  assert.deepEqual(windowSigmas(s, { endStep: 3 }), [14.6, 8, 4, 2], 'end 3 keeps levels 0..3: three steps, noise left at level 2');
  assert.deepEqual(windowSigmas(s, { endStep: 3, forceFullDenoise: true }), [14.6, 8, 4, 0], 'forced: the third step goes to 0');
  assert.deepEqual(windowSigmas(s, { endStep: 6, forceFullDenoise: true }), s, 'an end at or past the last step cuts nothing (force has no effect)');
  assert.deepEqual(windowSigmas(s, { startStep: 2 }), [4, 2, 1, 0.5, 0]);
  assert.deepEqual(windowSigmas(s, { startStep: 2, endStep: 4 }), [4, 2, 1], 'steps 2 and 3');
  assert.deepEqual(windowSigmas(s, { startStep: 6 }), [], 'a start at the last level leaves no step');
  assert.deepEqual(windowSigmas(s, { startStep: 3, endStep: 3 }), [], 'an empty window');
  assert.throws(() => windowSigmas(s, { startStep: -1 }), /startStep must be a whole number >= 0/);
  const euler = createScheduler('euler', {}, 6, { schedule: 'normal', startStep: 2, endStep: 4 });
  assert.equal(euler.timesteps.length, 2);
  assert.equal(euler.sigmas.length, 3);
  assert.throws(() => createScheduler('ddim', {}, 6, { startStep: 2 }), /needs a schedule/);
});
