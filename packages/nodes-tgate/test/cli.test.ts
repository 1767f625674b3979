import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPngText } from '@gategraph/diffusion';
import { makeHost, noModel, repoRoot } from './helpers.ts';

// The job of the README's first line (`pnpm start` = `gategraph run workflows/default.json`), with the output
// sent to a temporary folder.
test('gategraph run workflows/default.json writes a PNG and shows per-step progress', { skip: noModel }, () => {
  const { paths } = makeHost();
  const run = spawnSync(
    process.execPath,
    ['packages/core/bin/gategraph.mjs', 'run', 'workflows/default.json', '--output-dir', paths.output, '--models-dir', paths.models],
    { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, GATEGRAPH_MODELS: paths.models }, timeout: 300_000 },
  );
  assert.equal(run.status, 0, `exit code 0 expected; stderr:\n${run.stderr}`);
  const files = readdirSync(paths.output);
  assert.deepEqual(files, ['gategraph_00001_.png']);
  assert.ok(readPngText(readFileSync(join(paths.output, files[0]!))).prompt, 'the PNG carries the prompt');
  assert.match(run.stdout, /gategraph_00001_\.png/, 'the written file is printed');
  const steps = [...run.stderr.matchAll(/step (\d+)\/25/g)].map((m) => Number(m[1]));
  assert.ok(steps.length >= 5, `progress lines expected in stderr:\n${run.stderr}`);
  assert.equal(steps[steps.length - 1], 25, 'the last step is shown');
  assert.match(run.stderr, /KSampler #3/);
});
