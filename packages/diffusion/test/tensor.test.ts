import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  add,
  addScaled,
  axpby,
  axpbypcz,
  clamp,
  clone,
  concatBatch,
  full,
  guidance,
  maxAbsDiff,
  meanOfHalves,
  mul,
  reshape,
  scale,
  sizeOf,
  splitBatch,
  sub,
  tensor,
  zeros,
} from '../src/index.ts';

const a = () => tensor([1, 2, 3, 4, 5, 6], [2, 3]);
const b = () => tensor([10, 20, 30, 40, 50, 60], [2, 3]);

test('elementwise ops out of place leave their inputs alone', () => {
  const x = a(), y = b();
  assert.deepEqual(Array.from(add(x, y).data), [11, 22, 33, 44, 55, 66]);
  assert.deepEqual(Array.from(sub(y, x).data), [9, 18, 27, 36, 45, 54]);
  assert.deepEqual(Array.from(mul(x, y).data), [10, 40, 90, 160, 250, 360]);
  assert.deepEqual(Array.from(scale(x, 0.5).data), [0.5, 1, 1.5, 2, 2.5, 3]);
  assert.deepEqual(Array.from(addScaled(x, y, 0.1).data).map((v) => Math.round(v * 1e5) / 1e5), [2, 4, 6, 8, 10, 12]);
  assert.deepEqual(Array.from(axpby(2, x, -0.1, y).data).map((v) => Math.round(v * 1e5) / 1e5), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(Array.from(axpbypcz(1, x, 1, y, -1, x).data), Array.from(y.data));
  assert.deepEqual(Array.from(x.data), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(Array.from(y.data), [10, 20, 30, 40, 50, 60]);
});

test('passing an input as `out` works in place and returns it', () => {
  const x = a(), y = b();
  const r = add(x, y, x);
  assert.equal(r, x);
  assert.deepEqual(Array.from(x.data), [11, 22, 33, 44, 55, 66]);
  axpby(0, x, 1, y, y);
  assert.deepEqual(Array.from(y.data), [10, 20, 30, 40, 50, 60]);
  clamp(x, 20, 50, x);
  assert.deepEqual(Array.from(x.data), [20, 22, 33, 44, 50, 50]);
});

test('classifier-free guidance: uncond + s (cond - uncond)', () => {
  const u = tensor([1, 1], [1, 2]), c = tensor([3, -1], [1, 2]);
  assert.deepEqual(Array.from(guidance(u, c, 7.5).data), [1 + 7.5 * 2, 1 + 7.5 * -2]);
  assert.deepEqual(Array.from(guidance(u, c, 1).data), [3, -1]);
});

test('concat and split along the batch round-trip; split pieces are views', () => {
  const x = a(), y = b();
  const cat = concatBatch([x, y]);
  assert.deepEqual(cat.shape, [4, 3]);
  const [p, q] = splitBatch(cat, 2);
  assert.deepEqual(p!.data, x.data);
  assert.deepEqual(q!.data, y.data);
  const pieces = splitBatch(cat, [1, 3]);
  assert.deepEqual(pieces.map((t) => t.shape), [[1, 3], [3, 3]]);
  pieces[0]!.data[0] = 99;
  assert.equal(cat.data[0], 99, 'views share the buffer');
});

test('meanOfHalves averages the [uncond, cond] halves of a batch', () => {
  const t = tensor([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]);
  const m = meanOfHalves(t);
  assert.deepEqual(m.shape, [1, 2, 2]);
  assert.deepEqual(Array.from(m.data), [3, 4, 5, 6]);
  assert.throws(() => meanOfHalves(tensor([1, 2, 3], [3, 1])), /batch 3 is odd/);
});

test('shape problems are reported with both shapes', () => {
  assert.throws(() => add(a(), tensor([1, 2, 3], [1, 3])), /Shape mismatch between tensors: \[2, 3\] vs \[1, 3\]/);
  assert.throws(() => tensor([1, 2, 3], [2, 2]), /3 elements but shape \[2, 2\] needs 4/);
  assert.throws(() => concatBatch([a(), tensor([1, 2], [1, 2])]), /\[1, 2\] does not match \[\*, 3\]/);
  assert.throws(() => splitBatch(a(), 3), /cannot split a batch of 2 into 3/);
  assert.throws(() => sizeOf([2, -1]), /dimension -1/);
  assert.throws(() => reshape(a(), [4]), /needs 4/);
});

test('helpers: zeros, full, clone, reshape, maxAbsDiff', () => {
  assert.deepEqual(Array.from(zeros([2, 2]).data), [0, 0, 0, 0]);
  assert.deepEqual(Array.from(full([3], 2.5).data), [2.5, 2.5, 2.5]);
  const x = a();
  const c = clone(x);
  c.data[0] = 42;
  assert.equal(x.data[0], 1);
  assert.deepEqual(reshape(x, [3, 2]).shape, [3, 2]);
  assert.equal(maxAbsDiff(x, c), 41);
  assert.ok(Number.isNaN(maxAbsDiff(tensor([NaN], [1]), tensor([0], [1]))), 'NaN is not hidden');
});

test('large arrays: a 1M-element axpby runs in a few milliseconds (no per-element allocation)', () => {
  const n = 1 << 20;
  const x = full([n], 1), y = full([n], 2);
  const out = zeros([n]);
  axpby(0.5, x, 0.25, y, out); // warm-up
  const t0 = performance.now();
  for (let k = 0; k < 10; k++) axpby(0.5, x, 0.25, y, out);
  const perCall = (performance.now() - t0) / 10;
  assert.equal(out.data[n - 1], 1);
  assert.ok(perCall < 50, `axpby on 1M elements took ${perCall.toFixed(2)} ms`);
});
