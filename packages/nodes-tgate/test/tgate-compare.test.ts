// workflows/tgate-compare.json: a plain and a TGATE sampler on one loader, the graph users re-queue while they
// tune the gate. While the model's plain and gated UNets fit the session memory budget, re-queueing opens no
// session (no reopen per switch between the two samplers); when they do not fit, the pool closes one to open the
// other and the prompt still runs, with the same images.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ApiPrompt } from '@gategraph/core';
import { getDefaultSessionPool } from '@gategraph/diffusion';
import { host, noModel, readJson, repoRoot, savedImages, validateAndRun } from './helpers.ts';

function compare(seed: number): ApiPrompt {
  const prompt = readJson<ApiPrompt>(join(repoRoot, 'workflows', 'tgate-compare.json'));
  for (const id of ['3', '12']) prompt[id]!.inputs.seed = seed;
  for (const id of ['3', '12']) prompt[id]!.inputs.steps = 10;
  prompt['10']!.inputs.gate_step = 4;
  return prompt;
}

async function images(prompt: ApiPrompt): Promise<Buffer[]> {
  const { result } = await validateAndRun(prompt);
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  const files = savedImages(result);
  assert.equal(files.length, 2, 'the plain and the TGATE image');
  return files.map((f) => readFileSync(join(host.paths.output, f.filename)));
}

test('the comparison graph re-queued: no session opened while both UNets fit the budget; over it, one at a time and the same images', { skip: noModel }, async () => {
  const pool = getDefaultSessionPool();
  const first = await images(compare(1));
  const opened = pool.opened;
  await images(compare(2));
  const again = await images(compare(1));
  assert.equal(pool.opened, opened, 're-queued comparison prompts opened no session');
  assert.equal(pool.closedForRoom, 0);
  assert.deepEqual(again, first, 'the same seed, the same images');
  assert.notDeepEqual(first[0], first[1], 'the gated image differs from the plain one');

  // A budget that holds the text encoder, one UNet and the VAE, not both UNets (tiny-sd: 4 + 13 + 13 + 2 + 1
  // MB open now): each switch closes one UNet and opens the other.
  const budget = pool.memoryBudgetBytes;
  pool.memoryBudgetBytes = Math.floor(pool.openBytes * 0.75);
  await pool.freeAll(); // the budget applies as sessions open
  try {
    const tight = await images(compare(1));
    const twice = await images(compare(1));
    assert.ok(pool.closedForRoom >= 2, `sessions were closed to stay within the budget (${pool.closedForRoom})`);
    assert.ok(pool.openBytes <= pool.memoryBudgetBytes, 'within the budget');
    assert.deepEqual(tight, first, 'closing and reopening sessions changes nothing in the images');
    assert.deepEqual(twice, first);
  } finally {
    pool.memoryBudgetBytes = budget;
  }
});
