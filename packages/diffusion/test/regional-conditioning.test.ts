// The weights of regional conditioning as ComfyUI's get_area_and_mult makes them, and their weighted mean.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { activeEntries, clipArea, entryWeights, groupCalls, WeightedSum, type ActiveEntry, type RegionalEntry } from '../src/regional-conditioning.ts';
import { zeros } from '../src/tensor.ts';

const context = zeros([1, 77, 8]);

function active(entry: RegionalEntry, h = 16, w = 16): ActiveEntry {
  return { side: 'positive', entry, area: clipArea(entry.area, h, w) };
}

test('an area inside the latent fades in over 8 cells on its inner edges only, as ComfyUI\'s rr = 8', () => {
  // Left edge on the border, right edge inside: only the right columns fade.
  const weights = entryWeights(active({ context, area: { height: 16, width: 10, y: 0, x: 0 }, strength: 2 }), 1, 16, 16);
  assert.deepEqual(weights.shape, [1, 1, 16, 10]);
  const row = Array.from(weights.data.subarray(0, 10));
  // Column 9 (the last) is t = 0 from the inner edge: 1/8; column 2 is t = 7: 8/8; columns 0-1 keep the strength.
  assert.deepEqual(row, [2, 2, 2 * 8 / 8, 2 * 7 / 8, 2 * 6 / 8, 2 * 5 / 8, 2 * 4 / 8, 2 * 3 / 8, 2 * 2 / 8, 2 * 1 / 8]);
  // A whole-latent area has no inner edge.
  const whole = entryWeights(active({ context, area: { height: 16, width: 16, y: 0, x: 0 } }), 1, 16, 16);
  assert.ok(whole.data.every((v) => v === 1));
});

test('a mask replaces the fading: the mask cropped to the area, times strength', () => {
  const mask = zeros([1, 1, 4, 4]);
  mask.data.set([0, 0.5, 1, 0.25], 4); // row 1
  const weights = entryWeights(active({ context, mask, strength: 2, area: { height: 2, width: 4, y: 1, x: 0 } }, 4, 4), 2, 4, 4);
  assert.deepEqual(weights.shape, [2, 1, 2, 4]);
  assert.deepEqual(Array.from(weights.data.subarray(0, 4)), [0, 1, 2, 0.5]);
  assert.deepEqual(Array.from(weights.data.subarray(8, 12)), [0, 1, 2, 0.5], 'one mask for every item of the batch');
});

test('areas are clipped to the latent; timestep ranges pick the entries active at a sigma; crops of one size share a call', () => {
  assert.deepEqual(clipArea({ height: 10, width: 10, y: 12, x: 0 }, 16, 16), { height: 4, width: 10, y: 12, x: 0 });
  const early: RegionalEntry = { context, sigmaRange: { start: 1e9, end: 5 } };
  const late: RegionalEntry = { context, sigmaRange: { start: 5, end: 0 } };
  const picked = (sigma: number) => activeEntries({ positive: [early, late] }, ['positive'], sigma, 16, 16).map((a) => a.entry);
  assert.deepEqual(picked(10), [early]);
  assert.deepEqual(picked(5), [early, late], 'both ends are inclusive, as ComfyUI compares');
  assert.deepEqual(picked(1), [late]);
  const a = active({ context, area: { height: 8, width: 8, y: 0, x: 0 } });
  const b = active({ context, area: { height: 8, width: 8, y: 8, x: 8 } });
  const c = active({ context });
  assert.deepEqual(groupCalls([a, c, b]).map((g) => g.length), [2, 1]);
  assert.deepEqual(groupCalls([a, b], 1).map((g) => g.length), [1, 1], 'a UNet of fixed batch takes one block per call');
});

test('the weighted mean: sum / weights, and the uncovered value where nothing has weight', () => {
  const sum = new WeightedSum([1, 1, 2, 2]);
  const one = { data: Float32Array.from([4]), shape: [1, 1, 1, 1] };
  const weight = { data: Float32Array.from([2]), shape: [1, 1, 1, 1] };
  sum.add(one, weight, { height: 1, width: 1, y: 0, x: 0 });
  sum.add({ data: Float32Array.from([1]), shape: [1, 1, 1, 1] }, { data: Float32Array.from([1]), shape: [1, 1, 1, 1] }, { height: 1, width: 1, y: 0, x: 0 });
  const mean = sum.mean(() => ({ data: Float32Array.from([7, 7, 7, 7]), shape: [1, 1, 2, 2] }));
  assert.deepEqual(Array.from(mean.data), [3, 7, 7, 7]);
});
