// The host's memory ledger knows what the open ONNX sessions hold, and the output cache in `ram` mode makes
// room as soon as a model opens (not at its next insert).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { hostMemoryLedger, OutputCache } from '@gategraph/core';
import { getDefaultSessionPool, openModelFolder } from '@gategraph/diffusion';
import '../src/index.ts';
import { noModel, testModelDir } from './helpers.ts';
import { writeWithExternalData } from '../../diffusion/test/fixtures/onnx-rewrite.ts';
import { copyTestModel } from '../../diffusion/test/fixtures/test-model.ts';

test('opening a session adds its weights to the ledger; the ram-mode cache evicts then; freeing takes them off', { skip: noModel }, async () => {
  const ledger = hostMemoryLedger();
  const pool = getDefaultSessionPool();
  await pool.freeAll();
  const before = ledger.heldBytes();
  assert.ok(ledger.report().some((h) => h.name === 'onnxruntime sessions'), 'the pack reports its sessions');

  // Available memory 1 MB above the headroom before any model opens: the cache is under no pressure.
  const MB = 1024 * 1024;
  const headroom = 100 * MB;
  const cache = new OutputCache({ mode: 'ram', ramHeadroomBytes: headroom, availableMemory: () => headroom + MB - (ledger.heldBytes() - before) });
  for (let i = 0; i < 4; i++) cache.set(`entry-${i}`, { outputs: [[new Float32Array((2 * MB) / 4)]] });
  assert.equal(cache.stats().entries, 4, '8 MB of outputs fit');

  const model = await openModelFolder(testModelDir);
  try {
    await model.unet.lease.session();
    const unetFile = statSync(model.unet.path).size;
    const held = ledger.heldBytes() - before;
    assert.ok(held >= unetFile, `the ledger counts the open UNet (${held} >= ${unetFile} bytes)`);
    assert.equal(cache.stats().modelBytes, ledger.heldBytes());
    // The weights took available memory under the headroom: the cache made the room the shortfall asks, at
    // the moment the session opened (largest entries first, all 2 MB here).
    const shortfall = held - MB;
    assert.ok(shortfall > 0);
    assert.equal(4 - cache.stats().entries, Math.min(4, Math.ceil(shortfall / (2 * MB))));
  } finally {
    await model.release();
    await pool.freeAll();
  }
  assert.equal(ledger.heldBytes(), before, 'closed sessions hold nothing');
});

test('a UNet whose weights are external data counts them, also when it runs as its fused derived graph', { skip: noModel }, async () => {
  const ledger = hostMemoryLedger();
  const pool = getDefaultSessionPool();
  await pool.freeAll();
  const before = ledger.heldBytes();
  // The embedded model with its UNet's weights moved to model.onnx_data, as optimum writes large models.
  const folder = copyTestModel('session-memory-external');
  writeWithExternalData(join(testModelDir, 'unet', 'model.onnx'), join(folder, 'unet', 'model.onnx'), join(folder, 'unet', 'model.onnx_data'), 'model.onnx_data');
  const model = await openModelFolder(folder);
  try {
    await model.unet.lease.session();
    assert.notEqual(model.unet.path, join(folder, 'unet', 'model.onnx'), 'the engine runs the fused graph');
    const weights = statSync(join(folder, 'unet', 'model.onnx_data')).size;
    assert.ok(ledger.heldBytes() - before >= weights, `the external weights (${weights} bytes) are counted: ${ledger.heldBytes() - before}`);
  } finally {
    await model.release();
    await pool.freeAll();
  }
});
