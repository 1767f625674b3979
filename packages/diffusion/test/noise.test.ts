import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  createAncestralNoiseGenerator,
  createNoiseGenerator,
  NOISE_KINDS,
  normalizeSeed,
  philox4x32,
  randn,
  Mt19937,
} from '../src/index.ts';

interface Draw { shape: number[]; float32_b64?: string; sha256?: string; first?: number[] }
const refs = JSON.parse(readFileSync(new URL('./fixtures/noise_refs.json', import.meta.url), 'utf8')) as {
  cases: { seed: string; draws: Draw[] }[];
};

function fromB64(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  const out = new Float32Array(buf.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = buf.readFloatLE(i * 4);
  return out;
}

function sha256(data: Float32Array): string {
  const buf = Buffer.alloc(data.length * 4);
  for (let i = 0; i < data.length; i++) buf.writeFloatLE(data[i]!, i * 4);
  return createHash('sha256').update(buf).digest('hex');
}

test('torch-cpu noise equals torch.randn bit for bit (fixture computed by PyTorch)', () => {
  assert.ok(refs.cases.length >= 7);
  for (const c of refs.cases) {
    const gen = createNoiseGenerator(BigInt(c.seed), 'torch-cpu');
    c.draws.forEach((d, k) => {
      const got = gen.randn(d.shape);
      assert.deepEqual(got.shape, d.shape);
      const where = `seed ${c.seed}, draw ${k} ${JSON.stringify(d.shape)}`;
      if (d.float32_b64) {
        const want = fromB64(d.float32_b64);
        const bad = want.findIndex((v, i) => !Object.is(v, got.data[i]));
        assert.equal(bad, -1, `${where}: element ${bad} is ${got.data[bad]}, torch gave ${want[bad]}`);
      } else {
        assert.deepEqual(Array.from(got.data.subarray(0, 4)), d.first, `${where}: first values`);
        assert.equal(sha256(got.data), d.sha256, `${where}: SHA-256 of all values`);
      }
    });
  }
});

test('torch-cpu: seeds are taken mod 2^32 like torch.manual_seed; number and bigint seeds agree', () => {
  const a = randn([1, 4, 4, 4], 42);
  const b = randn([1, 4, 4, 4], 2n ** 32n + 42n);
  const c = randn([1, 4, 4, 4], 42n);
  assert.deepEqual(a.data, b.data);
  assert.deepEqual(a.data, c.data);
  assert.notDeepEqual(a.data, randn([1, 4, 4, 4], 43).data);
});

test('MT19937 matches the reference generator (std::mt19937: 10000th output for the default seed 5489)', () => {
  const mt = new Mt19937(5489);
  let v = 0;
  for (let i = 0; i < 10000; i++) v = mt.nextUint32();
  assert.equal(v, 4123659995); // the value the C++ standard requires ([rand.predef])
});

test('Philox4x32-10 reproduces the Random123 known-answer vectors', () => {
  const out = new Uint32Array(4);
  const hex = () => Array.from(out, (w) => w.toString(16).padStart(8, '0')).join(' ');
  philox4x32(0, 0, 0, 0, 0, 0, out);
  assert.equal(hex(), '6627e8d5 e169c58d bc57ac4c 9b00dbd8');
  philox4x32(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, out);
  assert.equal(hex(), '408f276d 41c83b0e a20bc7c6 6d5451fd');
  philox4x32(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, out);
  assert.equal(hex(), 'd16cfe09 94fdcceb 5001e420 24126ea1');
});

test('philox noise: deterministic, keyed by all 64 bits of the seed, a stream independent of how draws are split', () => {
  const one = randn([2, 4, 8, 8], 1234, 'philox');
  assert.deepEqual(one.data, randn([2, 4, 8, 8], 1234, 'philox').data);
  assert.notDeepEqual(one.data, randn([2, 4, 8, 8], 1234n + 2n ** 32n, 'philox').data);
  const gen = createNoiseGenerator(1234, 'philox');
  const parts = [gen.randn([7]), gen.randn([1]), gen.randn([500]), gen.randn([4])];
  const joined = Float32Array.from(parts.flatMap((p) => Array.from(p.data)));
  assert.deepEqual(joined, one.data.subarray(0, 512));
});

test('philox stream: the first block is Box-Muller of Philox(counter 0, key = seed) as documented', () => {
  const w = new Uint32Array(4);
  philox4x32(0, 0, 0, 0, 5, 0, w);
  const u1 = ((w[0]! >>> 5) * 2 ** 26 + (w[1]! >>> 6) + 1) / 2 ** 53;
  const u2 = ((w[2]! >>> 5) * 2 ** 26 + (w[3]! >>> 6)) / 2 ** 53;
  const r = Math.sqrt(-2 * Math.log(u1));
  const got = randn([2], 5, 'philox').data;
  assert.equal(got[0], Math.fround(r * Math.cos(2 * Math.PI * u2)));
  assert.equal(got[1], Math.fround(r * Math.sin(2 * Math.PI * u2)));
});

for (const kind of NOISE_KINDS) {
  test(`${kind} noise looks standard normal (mean, variance, tails over 2^18 values)`, () => {
    const { data } = randn([1, 4, 256, 256], 99, kind);
    let sum = 0, sq = 0, beyond3 = 0;
    for (const v of data) {
      sum += v;
      sq += v * v;
      if (Math.abs(v) > 3) beyond3++;
    }
    const n = data.length;
    const mean = sum / n;
    const variance = sq / n - mean * mean;
    assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
    assert.ok(Math.abs(variance - 1) < 0.01, `variance ${variance}`);
    // P(|z| > 3) = 0.0027
    assert.ok(Math.abs(beyond3 / n - 0.0027) < 0.0006, `tail fraction ${beyond3 / n}`);
  });
}

test('ancestral generator is seeded with seed + 1 (ComfyUI CPU default_noise_sampler)', () => {
  const a = createAncestralNoiseGenerator(10).randn([16]);
  assert.deepEqual(a.data, randn([16], 11).data);
  const wrap = createAncestralNoiseGenerator(2n ** 64n - 1n).randn([16]);
  assert.deepEqual(wrap.data, randn([16], 0).data);
});

test('bad seeds and algorithms are refused with a clear message', () => {
  assert.throws(() => normalizeSeed(1.5), /Seed 1.5 is not an integer/);
  assert.throws(() => normalizeSeed(-1), /out of range.*0 to 18446744073709551615/);
  assert.throws(() => normalizeSeed(2n ** 64n), /out of range/);
  assert.equal(normalizeSeed('18446744073709551615'), 2n ** 64n - 1n);
  assert.throws(() => normalizeSeed(18446744073709551615), /numbers above 2\^53 are rounded by JavaScript: pass the seed as a bigint or a decimal string/);
  assert.throws(() => normalizeSeed('12a'), /Seed "12a" is not a whole number/);
  assert.throws(() => createNoiseGenerator(1, 'xorshift' as never), /Unknown noise algorithm "xorshift"; valid ones are: torch-cpu, philox/);
});
