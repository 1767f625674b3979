/**
 * rescale_betas_zero_snr: true (zero terminal SNR). The reference values are written out here in float64 from
 * the formulas (Lin et al. 2023, arXiv 2305.08891, Algorithm 1 as diffusers' rescale_zero_terminal_snr applies it
 * to betas; ComfyUI's ModelSamplingDiscrete with zsnr for the sigmas; Karras et al. 2022 eq. 5; DDIM eq. 12 with
 * v = sqrt(abar) eps - sqrt(1 - abar) x0), never through the code under test; spot values from numpy.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  axpby,
  betasOf,
  createNoiseGenerator,
  createScheduler,
  maxAbsDiff,
  noiseLevels,
  randn,
  resolveSchedulerConfig,
  SAMPLER_NAMES,
  SCHEDULER_NAMES,
  tensor,
  zeros,
  type Scheduler,
  type Tensor,
} from '../src/index.ts';

/** A zero-SNR SD-2.x-style config as such models publish it. */
const ZSNR = { prediction_type: 'v_prediction', timestep_spacing: 'trailing', rescale_betas_zero_snr: true } as const;
const T = 1000;
/** comfy/model_sampling.py, rescale_zero_terminal_snr_sigmas: alphas_bar[-1]. */
const COMFY_TERMINAL_ABAR = 4.8973451890853435e-8;

/**
 * diffusers' route, transcribed: SD's scaled_linear betas -> abar -> sqrt, shifted so the last is 0 and scaled
 * so the first is kept -> squared -> back to betas (alpha_t = abar_t / abar_{t-1}, alpha_0 = abar_0) -> cumprod
 * again, as the scheduler does with the betas it stores.
 */
function referenceSchedule(betaStart = 0.00085, betaEnd = 0.012, scaled = true): { betas: number[]; abar: number[] } {
  const abar: number[] = [];
  let prod = 1;
  for (let t = 0; t < T; t++) {
    const beta = scaled ? (Math.sqrt(betaStart) + (t / (T - 1)) * (Math.sqrt(betaEnd) - Math.sqrt(betaStart))) ** 2 : betaStart + (t / (T - 1)) * (betaEnd - betaStart);
    prod *= 1 - beta;
    abar.push(prod);
  }
  const root = abar.map(Math.sqrt);
  const r0 = root[0]!;
  const rT = root[T - 1]!;
  const rescaled = root.map((r) => ((r - rT) * r0) / (r0 - rT)).map((r) => r * r);
  const betas = rescaled.map((a, t) => 1 - (t === 0 ? a : a / rescaled[t - 1]!));
  const again: number[] = [];
  prod = 1;
  for (const b of betas) {
    prod *= 1 - b;
    again.push(prod);
  }
  return { betas, abar: again };
}

const ref = referenceSchedule();
/** ComfyUI's sigmas: sqrt((1 - abar) / abar), the last abar replaced by its constant. */
const refSigmas = ref.abar.map((a, t) => (t === T - 1 ? Math.sqrt((1 - COMFY_TERMINAL_ABAR) / COMFY_TERMINAL_ABAR) : Math.sqrt((1 - a) / a)));

function close(actual: number, expected: number, rel: number, what: string): void {
  const tol = rel * Math.max(1e-300, Math.abs(expected));
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs expected ${expected} (relative tolerance ${rel})`);
}

function allFinite(t: Tensor): boolean {
  return t.data.every(Number.isFinite);
}

test('zero-SNR rescale: abar as diffusers computes it, the first unchanged (0.99915), the last exactly 0; betas end at 1', () => {
  const levels = noiseLevels(resolveSchedulerConfig(ZSNR));
  assert.equal(levels.alphasCumprod[T - 1], 0);
  close(levels.alphasCumprod[0]!, 1 - 0.00085, 1e-15, 'abar_0 = 1 - beta_start, as without the rescale');
  for (let t = 0; t < T - 1; t++) close(levels.alphasCumprod[t]!, ref.abar[t]!, 1e-11, `abar[${t}]`);
  // numpy float64, same formula: the values just below the end and in the middle
  close(levels.alphasCumprod[998]!, 1.9678880566212916e-7, 1e-9, 'abar[998] (numpy)');
  close(levels.alphasCumprod[500]!, 0.24101878275731575, 1e-12, 'abar[500] (numpy)');
  const betas = betasOf(resolveSchedulerConfig(ZSNR));
  assert.equal(betas[T - 1], 1, 'the last beta is 1 (diffusers: alphas_bar[-1] / alphas_bar[-2] = 0)');
  for (let t = 0; t < T; t++) close(betas[t]!, ref.betas[t]!, 1e-9, `beta[${t}]`);
  // without the key, or with false, the SD schedule is untouched
  assert.deepEqual(noiseLevels(resolveSchedulerConfig({ rescale_betas_zero_snr: false })), noiseLevels(resolveSchedulerConfig()));
});

test('zero-SNR sigmas are ComfyUI\'s: the last from its constant 4.8973451890853435e-08 (sigma_max ~ 4518.76), the rest unchanged in form', () => {
  const levels = noiseLevels(resolveSchedulerConfig(ZSNR));
  close(levels.sigmaMax, 4518.7636986558555, 1e-14, 'sigma_max (python: sqrt((1 - c) / c))');
  close(levels.sigmaMin, 0.029167158151720367, 1e-12, 'sigma_min, as for SD (numpy)');
  close(levels.sigmas[998]!, 2254.2379783369956, 1e-9, 'sigma[998] (numpy)');
  for (let t = 0; t < T; t++) close(levels.sigmas[t]!, refSigmas[t]!, 1e-11, `sigma[${t}]`);
  for (let t = 1; t < T; t++) assert.ok(levels.sigmas[t]! > levels.sigmas[t - 1]!, `sigmas increase at t = ${t}`);
  assert.ok(levels.sigmas.every(Number.isFinite));
});

test('a schedule ComfyUI never rescales (DDPM linear 1e-4..0.02) keeps increasing sigmas: the terminal abar is extrapolated instead', () => {
  const levels = noiseLevels(resolveSchedulerConfig({ ...ZSNR, beta_schedule: 'linear', beta_start: 0.0001, beta_end: 0.02 }));
  const lin = referenceSchedule(0.0001, 0.02, false).abar;
  assert.ok(lin[998]! < COMFY_TERMINAL_ABAR, 'here the constant is above abar[998] (4.2e-9)');
  const extrapolated = lin[998]! ** 2 / lin[997]!;
  close(levels.sigmaMax, Math.sqrt((1 - extrapolated) / extrapolated), 1e-9, 'sigma_max from abar[998]^2 / abar[997]');
  close(levels.sigmaMax, 30952.73391119229, 1e-8, 'sigma_max (numpy)');
  for (let t = 1; t < T; t++) assert.ok(levels.sigmas[t]! > levels.sigmas[t - 1]!, `sigmas increase at t = ${t}`);
});

/** sigma at a fractional timestep, log-linear between the reference levels (ComfyUI's ModelSamplingDiscrete.sigma). */
function refSigmaAt(t: number): number {
  const lo = Math.floor(t);
  const hi = Math.ceil(t);
  const w = t - lo;
  return Math.exp((1 - w) * Math.log(refSigmas[lo]!) + w * Math.log(refSigmas[hi]!));
}

test('karras, normal and sgm_uniform sigmas on a zero-SNR schedule match their formulas; the top step feeds t = 999', () => {
  const steps = 8;
  const rho = 7;
  const lo = refSigmas[0]! ** (1 / rho);
  const hi = refSigmas[T - 1]! ** (1 / rho);
  const karras = [...Array.from({ length: steps }, (_, i) => (hi + (i / (steps - 1)) * (lo - hi)) ** rho), 0];
  const normal = [...Array.from({ length: steps }, (_, i) => refSigmaAt((T - 1) * (1 - i / (steps - 1)))), 0];
  const sgm = [...Array.from({ length: steps }, (_, i) => refSigmaAt((T - 1) * (1 - i / steps))), 0];
  for (const [schedule, expected] of [['karras', karras], ['normal', normal], ['sgm_uniform', sgm]] as const) {
    const s = createScheduler('euler', ZSNR, steps, { schedule });
    assert.equal(s.sigmas.length, steps + 1);
    s.sigmas.forEach((v, i) => (expected[i] === 0 ? assert.equal(v, 0) : close(v, expected[i]!, 1e-11, `${schedule} sigma[${i}]`)));
    assert.equal(s.timesteps[0], 999, `${schedule} starts at the last training timestep`);
    close(s.initNoiseSigma, Math.sqrt(1 + refSigmas[T - 1]! ** 2), 1e-12, `${schedule}: full-strength start noise * sqrt(1 + sigma_max^2)`);
  }
});

const SHAPE = [1, 4, 1, 2];
const NOISE = [0.3, -1.2, 0.8, 2.1, -0.5, 0.05, -1.7, 1.1];
const V = [0.2, -0.9, 1.4, 0.6, -0.3, 0.75, -1.1, 0.4];

test('Euler, v-prediction, first step from pure noise at the zero-SNR end: finite, and the transcribed step', () => {
  const s = createScheduler('euler', ZSNR, 10, { schedule: 'karras' });
  const x = s.addNoise(zeros(SHAPE), tensor(NOISE, SHAPE));
  const input = s.scaleModelInput(x, 0);
  NOISE.forEach((n, k) => close(input.data[k]!, n, 1e-6, 'the UNet sees unit noise'));
  const x1 = s.step(tensor(V, SHAPE), 0, x);
  assert.ok(allFinite(x1));
  const sigma = refSigmas[T - 1]!;
  const next = s.sigmas[1]!;
  NOISE.forEach((n, k) => {
    const xk = n * Math.sqrt(1 + sigma * sigma);
    // denoised of a v model in VE units (ComfyUI V_PREDICTION.calculate_denoised, sigma_data 1), then Karras' Euler step
    const d = xk / (sigma * sigma + 1) - (V[k]! * sigma) / Math.sqrt(sigma * sigma + 1);
    const expected = xk + ((next - sigma) * (xk - d)) / sigma;
    close(x1.data[k]!, expected, 2e-6, `x1[${k}]`);
  });
});

test('DDIM with diffusers\' trailing timesteps starts at abar = 0: the first v-prediction step is finite and as transcribed', () => {
  const s = createScheduler('ddim', ZSNR, 10);
  assert.deepEqual(s.timesteps, [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]);
  assert.equal(s.sigmas[0], Infinity, 'the true noise level at abar = 0');
  const x = s.addNoise(zeros(SHAPE), tensor(NOISE, SHAPE));
  assert.deepEqual(Array.from(x.data), NOISE.map(Math.fround), 'the start is the noise itself');
  const x1 = s.step(tensor(V, SHAPE), 0, x);
  assert.ok(allFinite(x1));
  const aPrev = ref.abar[899]!;
  NOISE.forEach((n, k) => {
    // abar_t = 0: x0^ = sqrt(0) x - sqrt(1) v = -v, eps^ = sqrt(0) v + sqrt(1) x = x (DDIM eq. 12, eta 0)
    const expected = Math.sqrt(aPrev) * -V[k]! + Math.sqrt(1 - aPrev) * n;
    close(x1.data[k]!, expected, 2e-6, `x1[${k}]`);
  });
  const denoised = s.denoised(tensor(V, SHAPE), 0, x);
  V.forEach((v, k) => close(denoised.data[k]!, -v, 1e-7, `x0^[${k}] = -v`));
});

/** A perfect v model for x0: the v its VP input implies at the step's noise level (abar = 1 / (1 + sigma^2)). */
function oracle(x0: Tensor) {
  return (s: Scheduler, i: number, x: Tensor): Tensor => {
    const input = s.scaleModelInput(x, i);
    const sigma = s.sigmas[i]!;
    const a = 1 / (1 + sigma * sigma); // sigma = Infinity (diffusers' DDIM at t = 999): a = 0
    const eps = axpby(1 / Math.sqrt(1 - a), input, -Math.sqrt(a) / Math.sqrt(1 - a), x0);
    return axpby(Math.sqrt(a), eps, -Math.sqrt(1 - a), x0);
  };
}

function run(s: Scheduler, model: (s: Scheduler, i: number, x: Tensor) => Tensor, start: Tensor): Tensor[] {
  const stepNoise = createNoiseGenerator(5, 'philox'); // for euler_ancestral and lcm
  const xs = [start];
  for (let i = 0; i < s.timesteps.length; i++) xs.push(s.step(model(s, i, xs[i]!), i, xs[i]!, stepNoise));
  return xs;
}

const BIG = [1, 4, 8, 8];
const x0 = randn(BIG, 21, 'philox');
const noise = randn(BIG, 22);

for (const sampler of SAMPLER_NAMES) {
  for (const schedule of [...SCHEDULER_NAMES, undefined]) {
    if (schedule === undefined && sampler !== 'ddim') continue;
    test(`${sampler} / ${schedule ?? 'diffusers trailing'} on a zero-SNR v-prediction config: finite at every step, a perfect model leads back to x0`, () => {
      const config = schedule === undefined ? { ...ZSNR, set_alpha_to_one: true } : ZSNR;
      const s = createScheduler(sampler, config, 12, schedule === undefined ? {} : { schedule });
      const xs = run(s, oracle(x0), s.addNoise(zeros(BIG), noise));
      xs.forEach((x, i) => assert.ok(allFinite(x), `sample after step ${i - 1} is finite`));
      const err = maxAbsDiff(xs.at(-1)!, x0);
      assert.ok(err < 1e-4, `max |x - x0| = ${err}`);
    });
  }
}

test('DDIM on a ComfyUI schedule follows Euler\'s trajectory on a zero-SNR schedule too (ComfyUI runs ddim as euler)', () => {
  const model = (s: Scheduler, i: number, x: Tensor): Tensor => {
    const input = s.scaleModelInput(x, i);
    const out = zeros(input.shape);
    for (let k = 0; k < out.data.length; k++) out.data[k] = 0.6 * input.data[k]! - 0.2 * Math.cos(k + s.timesteps[i]! / 50);
    return out;
  };
  for (const schedule of ['normal', 'karras', 'sgm_uniform'] as const) {
    const euler = createScheduler('euler', ZSNR, 9, { schedule });
    const ddim = createScheduler('ddim', ZSNR, 9, { schedule });
    const a = run(euler, model, euler.addNoise(zeros(BIG), noise)).at(-1)!;
    const b = run(ddim, model, ddim.addNoise(zeros(BIG), noise)).at(-1)!;
    assert.ok(allFinite(a) && allFinite(b));
    assert.ok(maxAbsDiff(a, b) < 1e-4, `${schedule}: ${maxAbsDiff(a, b)}`);
  }
});

test('zero SNR with an epsilon model is refused (and a non-boolean flag), with what to change', () => {
  assert.throws(
    () => createScheduler('euler', { rescale_betas_zero_snr: true }, 10),
    /rescale_betas_zero_snr = true needs prediction_type "v_prediction" \(got "epsilon"\): at zero terminal SNR an epsilon prediction cannot recover the image/,
  );
  assert.throws(() => resolveSchedulerConfig({ ...ZSNR, prediction_type: 'epsilon' }), /If the model predicts v, set prediction_type/);
  assert.throws(() => resolveSchedulerConfig({ ...ZSNR, rescale_betas_zero_snr: 'yes' }), /rescale_betas_zero_snr = "yes" must be true or false/);
  assert.throws(() => resolveSchedulerConfig({ ...ZSNR, num_train_timesteps: 2 }), /needs at least 3 training timesteps/);
});
