import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPngText } from '@gategraph/diffusion';
import { decodePng, judge, loadDomain } from '@gategraph/judge';
import { makeHost, noModel, runCli } from './helpers.ts';

// The job of the README's first line (`pnpm start` = `gategraph run workflows/default.ui.json`), with the output
// sent to a temporary folder.
test('gategraph run workflows/default.ui.json writes a PNG carrying prompt and workflow, with per-step progress', { skip: noModel }, () => {
  const { paths } = makeHost();
  const run = runCli('workflows/default.ui.json', paths);
  assert.equal(run.status, 0, `exit code 0 expected; stderr:\n${run.stderr}`);
  const files = readdirSync(paths.output);
  assert.deepEqual(files, ['gategraph_00001_.png']);
  const png = readFileSync(join(paths.output, files[0]!));
  const text = readPngText(png);
  assert.ok(text.prompt, 'the PNG carries the prompt');
  assert.equal((JSON.parse(text.workflow!) as { nodes: unknown[] }).nodes.length, 7, 'the PNG carries the UI workflow');
  assert.match(run.stdout, /gategraph_00001_\.png/, 'the written file is printed');
  const steps = [...run.stderr.matchAll(/step (\d+)\/25/g)].map((m) => Number(m[1]));
  assert.ok(steps.length >= 5, `progress lines expected in stderr:\n${run.stderr}`);
  assert.equal(steps[steps.length - 1], 25, 'the last step is shown');
  assert.match(run.stderr, /KSampler #3/);

  // The image shows the default prompt: every attribute it states, read from the pixels by the domain's judge.
  const caption = (JSON.parse(text.prompt!) as Record<string, { class_type: string; inputs: { text?: string } }>)['6']!.inputs.text!;
  const verdict = judge(caption, decodePng(png), loadDomain());
  assert.ok(verdict.parsed, `the judge reads the default prompt "${caption}"`);
  const wrong = Object.entries(verdict.attributes).filter(([, ok]) => !ok).map(([attribute]) => attribute);
  assert.deepEqual(wrong, [], `the image shows "${caption}"; wrong: ${wrong.join(', ')}`);
});
