import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  betaScheduleSigmas,
  createScheduler,
  inverseRegularizedIncompleteBeta,
  klOptimalSigmas,
  linearQuadraticSigmas,
  noiseLevels,
  regularizedIncompleteBeta,
  resolveSchedulerConfig,
  scheduleSigmas,
  SCHEDULER_NAMES,
  assertScheduleName,
} from '../src/index.ts';
import { logGamma } from '../src/schedulers/incomplete-beta.ts';

/** From test/fixtures/make_k_sampler_refs.py: mpmath's incomplete beta and ComfyUI's schedule formulas. */
const refs = JSON.parse(readFileSync(new URL('./fixtures/k_sampler_refs.json', import.meta.url), 'utf8')) as {
  scheduler_sigmas: Record<string, number[]>;
  inverse_beta: [number, number, number, number][];
};

const levels = noiseLevels(resolveSchedulerConfig());

function closeArray(actual: readonly number[], expected: readonly number[], rel: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const tol = rel * Math.max(1e-300, Math.abs(expected[i]!));
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

test('logGamma: factorials and Gamma(1/2)', () => {
  for (let n = 1; n <= 20; n++) {
    let f = 1;
    for (let k = 2; k < n; k++) f *= k;
    assert.ok(Math.abs(logGamma(n) - Math.log(f)) <= 1e-13 * Math.max(1, Math.log(f)), `Gamma(${n})`);
  }
  assert.ok(Math.abs(logGamma(0.5) - 0.5 * Math.log(Math.PI)) < 1e-14);
  assert.ok(Math.abs(logGamma(0.1) - Math.log(9.513507698668732)) < 1e-13);
});

test('regularised incomplete beta: closed forms', () => {
  for (const x of [1e-8, 0.01, 0.3, 0.5, 0.77, 0.999]) {
    // a = b = 1/2: the arcsine distribution, (2/pi) asin(sqrt x).
    assert.ok(Math.abs(regularizedIncompleteBeta(x, 0.5, 0.5) - (2 / Math.PI) * Math.asin(Math.sqrt(x))) < 1e-14, `arcsine at ${x}`);
    // a = 1: 1 - (1 - x)^b; b = 1: x^a.
    assert.ok(Math.abs(regularizedIncompleteBeta(x, 1, 3.5) - (1 - (1 - x) ** 3.5)) < 1e-14, `a = 1 at ${x}`);
    assert.ok(Math.abs(regularizedIncompleteBeta(x, 2.5, 1) - x ** 2.5) < 1e-14, `b = 1 at ${x}`);
  }
  assert.equal(regularizedIncompleteBeta(0, 0.6, 0.6), 0);
  assert.equal(regularizedIncompleteBeta(1, 0.6, 0.6), 1);
  assert.throws(() => regularizedIncompleteBeta(0.5, 0, 1), /a and b must be finite and > 0/);
});

test('inverse regularised incomplete beta: closed forms and mpmath values', () => {
  for (const p of [1e-9, 1e-3, 0.2, 0.5, 0.8, 0.999, 1 - 1e-9]) {
    const arcsine = Math.sin((Math.PI * p) / 2) ** 2;
    closeArray([inverseRegularizedIncompleteBeta(p, 0.5, 0.5)], [arcsine], 1e-12, `arcsine quantile ${p}`);
    closeArray([inverseRegularizedIncompleteBeta(p, 1, 3)], [-Math.expm1(Math.log1p(-p) / 3)], 1e-12, `a = 1 quantile ${p}`);
    closeArray([inverseRegularizedIncompleteBeta(p, 4, 1)], [p ** 0.25], 1e-12, `b = 1 quantile ${p}`);
  }
  for (const [a, b, p, x] of refs.inverse_beta) {
    const got = inverseRegularizedIncompleteBeta(p, a, b);
    // Relative in x, and in 1 - x near 1, where the quantile's information is.
    const err = Math.min(Math.abs(got - x) / x, Math.abs(got - x) / Math.max(1 - x, 1e-300));
    assert.ok(err <= 1e-11 || Math.abs(got - x) <= 1e-15, `Beta(${a}, ${b}) quantile ${p}: ${got} vs ${x}`);
  }
  assert.equal(inverseRegularizedIncompleteBeta(0.5, 0.6, 0.6), 0.5);
  assert.equal(inverseRegularizedIncompleteBeta(0, 0.6, 0.6), 0);
  assert.equal(inverseRegularizedIncompleteBeta(1, 0.6, 0.6), 1);
  assert.throws(() => inverseRegularizedIncompleteBeta(1.5, 0.6, 0.6), /p must be in \[0, 1\]/);
});

test('beta, linear_quadratic and kl_optimal give the reference sigmas', () => {
  for (const steps of [1, 2, 10, 25, 33]) {
    closeArray(betaScheduleSigmas(levels, steps), refs.scheduler_sigmas[`beta_${steps}`]!, 1e-11, `beta ${steps}`);
    closeArray(linearQuadraticSigmas(levels, steps), refs.scheduler_sigmas[`linear_quadratic_${steps}`]!, 1e-11, `linear_quadratic ${steps}`);
    closeArray(klOptimalSigmas(steps, levels.sigmaMin, levels.sigmaMax), refs.scheduler_sigmas[`kl_optimal_${steps}`]!, 1e-11, `kl_optimal ${steps}`);
    for (const name of ['beta', 'linear_quadratic', 'kl_optimal'] as const) {
      closeArray(scheduleSigmas(name, levels, steps), refs.scheduler_sigmas[`${name}_${steps}`]!, 1e-11, `scheduleSigmas ${name} ${steps}`);
    }
  }
});

test('the new schedules are ComfyUI names, ordered as in its list, and drive the Schedulers', () => {
  assert.deepEqual(SCHEDULER_NAMES.slice(-3), ['beta', 'linear_quadratic', 'kl_optimal']);
  for (const name of ['beta', 'linear_quadratic', 'kl_optimal']) {
    assert.equal(assertScheduleName(name), name);
    const s = createScheduler('euler', {}, 12, { schedule: assertScheduleName(name) });
    assert.equal(s.sigmas.at(-1), 0);
    assert.ok(s.sigmas.slice(0, -1).every((v, i) => v > s.sigmas[i + 1]!), `${name} decreases`);
  }
  assert.throws(() => assertScheduleName('AYS'), /ComfyUI's "AYS" is not implemented here yet/);
});

test('beta starts at the top of the training schedule and crowds both ends (alpha = beta = 0.6)', () => {
  const s = betaScheduleSigmas(levels, 20);
  assert.equal(s[0], levels.sigmaMax);
  const logGaps = s.slice(0, -2).map((v, i) => Math.log(v) - Math.log(s[i + 1]!));
  assert.ok(logGaps[0]! < logGaps[9]!, 'small first steps');
});
