import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPngText } from '@gategraph/diffusion';
import { spawnSync } from 'node:child_process';
import { makeHost, noModel, repoRoot, runCli } from './helpers.ts';

// workflows/tgate.json: the default workflow with GateSchedule + CacheCrossAttn, run by the CLI with no server.
test('gategraph run workflows/tgate.json samples with TGATE and writes a PNG carrying the TGATE nodes', { skip: noModel }, () => {
  const { paths } = makeHost();
  const run = runCli('workflows/tgate.json', paths);
  assert.equal(run.status, 0, `exit code 0 expected; stderr:\n${run.stderr}`);
  const files = readdirSync(paths.output);
  assert.deepEqual(files, ['gategraph_tgate_00001_.png']);
  const prompt = JSON.parse(readPngText(readFileSync(join(paths.output, files[0]!))).prompt!) as Record<string, { class_type: string }>;
  assert.deepEqual(
    Object.values(prompt).map((n) => n.class_type).filter((c) => c === 'GateSchedule' || c === 'CacheCrossAttn').sort(),
    ['CacheCrossAttn', 'GateSchedule'],
  );
  const steps = [...run.stderr.matchAll(/step (\d+)\/25/g)].map((m) => Number(m[1]));
  assert.equal(steps[steps.length - 1], 25, `the last step is shown:\n${run.stderr}`);
});

test('a gate past the last step runs, with a warning that TGATE has no effect', { skip: noModel }, () => {
  const { dir, paths } = makeHost();
  const workflow = JSON.parse(readFileSync(join(repoRoot, 'workflows', 'tgate.json'), 'utf8')) as Record<string, { inputs: Record<string, unknown> }>;
  workflow['10']!.inputs.gate_step = 30;
  const file = join(dir, 'tgate-off.json');
  writeFileSync(file, JSON.stringify(workflow));
  const run = spawnSync(process.execPath, ['packages/core/bin/gategraph.mjs', 'run', file, '--output-dir', paths.output, '--models-dir', paths.models], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, GATEGRAPH_MODELS: paths.models },
    timeout: 300_000,
  });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stderr, /warn: \[KSampler#3\] TGATE has no effect: the gate \(gate_step 30\) is at or after the last step of 25/);
  assert.equal(readdirSync(paths.output).length, 1);
});
