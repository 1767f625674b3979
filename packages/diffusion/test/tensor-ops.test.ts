// The tensor helpers for ported nodes against PyTorch itself (Debian's python3-torch): every op on the same
// seeded inputs, compared element by element.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  broadcastShape,
  broadcastTo,
  cat,
  dividedBy,
  map,
  maximum,
  mean,
  minus,
  permute,
  plus,
  repeat,
  resizeImage,
  resizeLatent,
  resizeMask,
  slice,
  stack,
  times,
  type Tensor,
} from '../src/index.ts';

/** Seeded values, the same formula in TypeScript and in the Python below. */
function seeded(shape: number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { data: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed) * 2), shape };
}

const PYTHON = String.raw`
import json, math, torch
import torch.nn.functional as F
def seeded(shape, seed):
    n = math.prod(shape)
    return torch.tensor([math.sin(i * 0.37 + seed) * 2 for i in range(n)], dtype=torch.float32).reshape(shape)
a = seeded([2, 3, 4], 1); row = seeded([4], 2); col = seeded([3, 1], 3)
img = seeded([2, 5, 7, 3], 4); mask = seeded([2, 5, 7], 5); lat = seeded([1, 4, 6, 5], 6)
out = {
  'plus_row': a + row, 'minus_col': a - col, 'times_scalar': a * 0.5, 'div': a / (row.abs() + 1),
  'max_col': torch.maximum(a, col), 'broadcast': torch.broadcast_to(col, (2, 3, 4)),
  'cat1': torch.cat([a, a * 2], 1), 'cat_last': torch.cat([a, row.expand(2, 3, 4)], -1),
  'stack1': torch.stack([a, a + 1], 1), 'slice': a[:, 1:, ::2], 'slice_neg': a[:, :, -3:-1],
  'mean1': a.mean(1), 'mean_keep': a.mean(-1, keepdim=True), 'repeat': a.repeat(1, 2, 3), 'repeat_lead': row.repeat(2, 1, 2),
  'permute': a.permute(2, 0, 1), 'exp': a.exp(),
  'img_bilinear': F.interpolate(img.movedim(-1, 1), size=(9, 4), mode='bilinear', align_corners=False).movedim(1, -1),
  'img_nearest': F.interpolate(img.movedim(-1, 1), size=(3, 11), mode='nearest').movedim(1, -1),
  'mask_bilinear': F.interpolate(mask.unsqueeze(1), size=(10, 14), mode='bilinear', align_corners=False).squeeze(1),
  'lat_bilinear': F.interpolate(lat, size=(12, 10), mode='bilinear', align_corners=False),
}
print(json.dumps({k: {'shape': list(v.shape), 'data': v.flatten().tolist()} for k, v in out.items()}))
`;

let torch: Record<string, { shape: number[]; data: number[] }>;
before(() => {
  const run = spawnSync('/usr/bin/python3', ['-c', PYTHON], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  assert.equal(run.status, 0, run.stderr);
  torch = JSON.parse(run.stdout);
});

function same(name: string, actual: Tensor): void {
  const want = torch[name]!;
  assert.deepEqual(actual.shape, want.shape, `${name}: shape`);
  let worst = 0;
  for (let i = 0; i < want.data.length; i++) worst = Math.max(worst, Math.abs(actual.data[i]! - want.data[i]!));
  assert.ok(worst <= 1e-5, `${name}: max difference ${worst}`);
}

test('element-wise ops broadcast as torch does; shapes that do not broadcast are an error naming both', () => {
  const a = seeded([2, 3, 4], 1);
  const row = seeded([4], 2);
  const col = seeded([3, 1], 3);
  same('plus_row', plus(a, row));
  same('minus_col', minus(a, col));
  same('times_scalar', times(a, 0.5));
  same('div', dividedBy(a, map(row, (x) => Math.abs(x) + 1)));
  same('max_col', maximum(a, col));
  same('broadcast', broadcastTo(col, [2, 3, 4]));
  same('exp', map(a, Math.exp));
  assert.deepEqual(broadcastShape([5, 1, 3], [4, 1]), [5, 4, 3]);
  assert.throws(() => plus(a, seeded([3], 0)), /shapes \[2, 3, 4\] and \[3\] do not broadcast \(dimension 2: 4 vs 3\)/);
});

test('cat, stack, slice, mean, repeat and permute equal torch\'s', () => {
  const a = seeded([2, 3, 4], 1);
  const row = seeded([4], 2);
  same('cat1', cat([a, times(a, 2)], 1));
  same('cat_last', cat([a, broadcastTo(row, [2, 3, 4])], -1));
  same('stack1', stack([a, plus(a, 1)], 1));
  same('slice', slice(slice(a, 1, 1), 2, 0, undefined, 2));
  same('slice_neg', slice(a, 2, -3, -1));
  same('mean1', mean(a, 1));
  same('mean_keep', mean(a, -1, true));
  same('repeat', repeat(a, [1, 2, 3]));
  same('repeat_lead', repeat(row, [2, 1, 2]));
  same('permute', permute(a, [2, 0, 1]));
  assert.throws(() => cat([a, seeded([2, 4, 4], 0)], 2), /cat along axis 2: \[2, 4, 4\] does not match \[2, 3, 4\] outside that axis/);
  assert.throws(() => mean(a, 3), /axis 3 is outside a tensor of rank 3/);
});

test('IMAGE, MASK and LATENT resize as torch.nn.functional.interpolate (bilinear, align_corners=False; nearest)', () => {
  same('img_bilinear', resizeImage(seeded([2, 5, 7, 3], 4), 4, 9));
  same('img_nearest', resizeImage(seeded([2, 5, 7, 3], 4), 11, 3, 'nearest'));
  same('mask_bilinear', resizeMask(seeded([2, 5, 7], 5), 14, 10));
  same('lat_bilinear', resizeLatent(seeded([1, 4, 6, 5], 6), 10, 12));
  assert.throws(() => resizeImage(seeded([5, 7, 3], 0), 4, 4), /an IMAGE is \[batch, height, width, channels\]; got \[5, 7, 3\]/);
});
