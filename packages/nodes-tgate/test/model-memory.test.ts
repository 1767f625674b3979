// A model whose weights cannot fit this machine's memory is refused when the prompt is queued, naming the sizes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { checkpointWeightsProblem, folderWeightBytes, weightsProblem } from '../src/memory.ts';
import { testCheckpoints } from '../../diffusion/test/fixtures/test-checkpoints.ts';
import { noModel, testModelDir } from './helpers.ts';

test('a model folder\'s weights are counted from its components; a machine too small for them is told so', { skip: noModel }, () => {
  const bytes = folderWeightBytes(testModelDir);
  assert.ok(bytes >= statSync(join(testModelDir, 'unet', 'model.onnx')).size, 'the UNet is counted');
  assert.equal(weightsProblem(testModelDir, bytes + 3 * 1024 ** 3), undefined, 'fits with room for the process');
  assert.match(weightsProblem(testModelDir, 2 * 1024 ** 3)!, /its weights take .* of memory once loaded, and this machine has 2\.0 GiB of RAM/);
});

test('a single-file checkpoint is counted as the float32 graphs built from it hold it (a float16 file twice its size)', () => {
  const file = join(testCheckpoints(), 'sdxl-small.safetensors');
  const size = statSync(file).size;
  // Half of float16 data is the file's size less its header and its one int64 buffer: float32 doubles it.
  assert.equal(checkpointWeightsProblem(file, 2 * size + 2.5 * 1024 ** 3), undefined);
  assert.match(checkpointWeightsProblem(file, 2 * 1024 ** 3 + size)!, /its weights take 7\d\.\d MiB of memory once loaded/);
});
