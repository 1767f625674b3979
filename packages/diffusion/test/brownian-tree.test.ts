import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createBrownianTreeNoiseSampler } from '../src/index.ts';
import { BrownianTree, roundLikePython, seedSequenceState } from '../src/noise/brownian-tree.ts';

/** JSON has no NaN: the generator writes non-finite numbers as strings. */
type FixtureNumber = number | 'nan' | 'inf' | '-inf';
interface Query { sigma: number; sigmaNext: number; first: FixtureNumber[]; sum: FixtureNumber; sumsq: FixtureNumber; sha256: string }
interface Case { name: string; seed: string | string[]; shape: number[]; sigmaMin: number; sigmaMax: number; queries: Query[] }
const refs = JSON.parse(readFileSync(new URL('./fixtures/brownian_refs.json', import.meta.url), 'utf8')) as {
  torchsde_commit: string;
  comfyui_commit: string;
  cases: Case[];
  seedSequences: { entropy: string; spawnKey: string[]; poolSize: number; state: number[] }[];
  rounds: { x: number; rounded: number }[];
};

function fixtureNumber(v: FixtureNumber): number {
  return typeof v === 'number' ? v : v === 'nan' ? NaN : v === 'inf' ? Infinity : -Infinity;
}

function sha256(data: Float32Array): string {
  const buf = Buffer.alloc(data.length * 4);
  for (let i = 0; i < data.length; i++) buf.writeFloatLE(data[i]!, i * 4);
  return createHash('sha256').update(buf).digest('hex');
}

function close(got: number, want: number, tolerance: number): boolean {
  return Number.isNaN(want) ? Number.isNaN(got) : Math.abs(got - want) <= tolerance;
}

function samplerFor(c: Case) {
  const seed = Array.isArray(c.seed) ? c.seed.map((s) => BigInt(s)) : BigInt(c.seed);
  return createBrownianTreeNoiseSampler({ seed, shape: c.shape, sigmaMin: c.sigmaMin, sigmaMax: c.sigmaMax });
}

const SD_MIN = 0.02916753850877285;
const SD_MAX = 14.614643096923828;

test('fixture comes from the pinned torchsde and ComfyUI commits', () => {
  assert.equal(refs.torchsde_commit, 'eb3a00e31cbd56176270066ed2f62c394cf6acb7');
  assert.equal(refs.comfyui_commit, '618b803d314a525faca8f8163d85eaa9ebc1d774');
  assert.ok(refs.cases.length >= 10);
});

test('numpy SeedSequence.generate_state is reproduced word for word', () => {
  for (const s of refs.seedSequences) {
    const got = seedSequenceState(BigInt(s.entropy), s.spawnKey.map((k) => BigInt(k)), s.poolSize, s.state.length);
    assert.deepEqual(Array.from(got), s.state, `entropy ${s.entropy}, spawn key (${s.spawnKey.join(', ')}), pool ${s.poolSize}`);
  }
});

test("Python's round(x, 6) is reproduced, ties to even included", () => {
  for (const r of refs.rounds) assert.equal(roundLikePython(r.x, 6), r.rounded, `round(${r.x}, 6)`);
});

test('noise equals ComfyUI + torchsde on the CPU for every fixture query (within 1e-6, and bit for bit)', () => {
  for (const c of refs.cases) {
    const noise = samplerFor(c);
    c.queries.forEach((q, k) => {
      const where = `${c.name}, query ${k} (${q.sigma} -> ${q.sigmaNext})`;
      const got = noise(q.sigma, q.sigmaNext);
      assert.deepEqual(got.shape, c.shape, where);
      q.first.forEach((v, i) => {
        const want = fixtureNumber(v);
        assert.ok(close(got.data[i]!, want, 1e-6), `${where}: element ${i} is ${got.data[i]}, torchsde gave ${want}`);
      });
      let sum = 0;
      let sumsq = 0;
      for (const v of got.data) {
        sum += v;
        sumsq += v * v;
      }
      assert.ok(close(sum, fixtureNumber(q.sum), 1e-6 * got.data.length), `${where}: sum ${sum} vs ${q.sum}`);
      assert.ok(close(sumsq, fixtureNumber(q.sumsq), 1e-6 * got.data.length), `${where}: sum of squares ${sumsq} vs ${q.sumsq}`);
      assert.equal(sha256(got.data), q.sha256, `${where}: not bit-identical to torchsde`);
    });
  }
});

test('same seed, shape and sigmas give the same noise whatever the query order', () => {
  const options = { seed: 1234n, shape: [1, 4, 8, 8], sigmaMin: SD_MIN, sigmaMax: SD_MAX };
  const pairs: [number, number][] = [[14.6, 9.1], [9.1, 5.5], [5.5, 0.5], [0.5, 0.03]];
  const forward = createBrownianTreeNoiseSampler(options);
  const first = pairs.map(([a, b]) => forward(a, b).data);
  const backward = createBrownianTreeNoiseSampler(options);
  const second = [...pairs].reverse().map(([a, b]) => backward(a, b).data).reverse();
  pairs.forEach((_, k) => assert.deepEqual(second[k], first[k]));
  // Asking again (from the cache) gives the same values, and a fresh array each time.
  const again = forward(14.6, 9.1);
  assert.deepEqual(again.data, first[0]);
  assert.notEqual(again.data, first[0]);
});

test('different seeds give different noise; the same seed as number, bigint and string agrees', () => {
  const make = (seed: number | bigint | string) => createBrownianTreeNoiseSampler({ seed, shape: [1, 4, 8, 8], sigmaMin: SD_MIN, sigmaMax: SD_MAX })(5, 3).data;
  const a = make(1);
  const b = make(2);
  assert.ok(a.some((v, i) => v !== b[i]));
  assert.deepEqual(make(99), make(99n));
  assert.deepEqual(make('18446744073709551615'), make(18446744073709551615n));
});

test('increments add up: W[a,c] = W[a,b] + W[b,c], i.e. noise scaled by sqrt of the interval lengths', () => {
  const noise = createBrownianTreeNoiseSampler({ seed: 7, shape: [1, 4, 8, 8], sigmaMin: SD_MIN, sigmaMax: SD_MAX });
  const [a, b, c] = [Math.fround(0.2), Math.fround(1.3), Math.fround(7.7)];
  const whole = noise(c, a).data;
  const upper = noise(c, b).data;
  const lower = noise(b, a).data;
  const sAC = Math.sqrt(c - a), sCB = Math.sqrt(c - b), sBA = Math.sqrt(b - a);
  let maxDiff = 0;
  for (let i = 0; i < whole.length; i++) maxDiff = Math.max(maxDiff, Math.abs(whole[i]! * sAC - (upper[i]! * sCB + lower[i]! * sBA)));
  assert.ok(maxDiff < 1e-5, `W[a,c] - (W[a,b] + W[b,c]) up to ${maxDiff}`);
  // Unit variance over the whole latent, and the sign flips with the direction of the query.
  let sumsq = 0;
  for (const v of whole) sumsq += v * v;
  assert.ok(Math.abs(sumsq / whole.length - 1) < 0.25);
  assert.deepEqual(noise(a, c).data, whole.map((v) => -v));
});

test('a tree of one seed per batch item stacks the items, each as a single-item tree', () => {
  const range = { sigmaMin: SD_MIN, sigmaMax: SD_MAX };
  const batched = createBrownianTreeNoiseSampler({ seed: [5, 6], shape: [2, 4, 4, 4], ...range })(3, 2);
  const item0 = createBrownianTreeNoiseSampler({ seed: [5], shape: [1, 4, 4, 4], ...range })(3, 2);
  const item1 = createBrownianTreeNoiseSampler({ seed: [6], shape: [1, 4, 4, 4], ...range })(3, 2);
  assert.deepEqual(batched.data.subarray(0, 64), item0.data);
  assert.deepEqual(batched.data.subarray(64), item1.data);
  assert.throws(() => createBrownianTreeNoiseSampler({ seed: [1, 2, 3], shape: [2, 4, 4, 4], ...range }), /3 seeds/);
});

test('queries finer than the tree resolution (1e-6) never hang; where torchsde recurses forever we return zeros', () => {
  const tree = new BrownianTree({ seed: 1, shape: [1, 1, 2, 2], t0: Math.fround(0.0291675), t1: Math.fround(14.614642) });
  // torchsde raises RecursionError on this one (measured with the fixture generator's setup).
  const w = tree.increment(Math.fround(0.7), Math.fround(0.70000005));
  assert.deepEqual(Array.from(w), [0, 0, 0, 0]);
  // The tree stays usable afterwards; a NaN time is refused rather than searched for forever.
  assert.ok(tree.increment(0.5, 1).some((v) => v !== 0));
  assert.throws(() => tree.increment(0.5, NaN), /must be numbers/);
});
