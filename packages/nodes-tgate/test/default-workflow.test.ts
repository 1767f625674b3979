import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { uiToApi, type ApiPrompt } from '@gategraph/core';
import { decodePng, readPngText } from '@gategraph/diffusion';
import { defaultPrompt, defaultUiWorkflow, host, makeHost, noModel, packRegistry, savedImages, validateAndRun } from './helpers.ts';
import { previewPacer } from '../src/index.ts';

function withSeed(prompt: ApiPrompt, seed: number): ApiPrompt {
  const copy = structuredClone(prompt);
  copy['3']!.inputs.seed = seed;
  return copy;
}

function pngOf(paths: { output: string }, result: Awaited<ReturnType<typeof validateAndRun>>['result']): Uint8Array {
  const [image] = savedImages(result);
  assert.ok(image, 'SaveImage should report the file it wrote');
  return readFileSync(join(paths.output, image.subfolder, image.filename));
}

test('workflows/default.ui.json converts to exactly workflows/default.json', async () => {
  const registry = await packRegistry();
  const { prompt, warnings } = uiToApi(defaultUiWorkflow() as never, registry);
  assert.deepEqual(warnings, []);
  assert.deepEqual(prompt, defaultPrompt());
});

test('the default workflow is the standard text-to-image graph on tiny-sd at 64x64', () => {
  const prompt = defaultPrompt();
  const byClass = Object.fromEntries(Object.values(prompt).map((n) => [n.class_type, n.inputs]));
  assert.equal(byClass.CheckpointLoaderSimple?.ckpt_name, 'tiny-sd');
  assert.deepEqual(byClass.EmptyLatentImage, { width: 64, height: 64, batch_size: 1 });
  assert.equal(byClass.KSampler?.steps, 25);
  assert.equal(byClass.SaveImage?.filename_prefix, 'gategraph');
});

test('the default workflow writes a PNG carrying the prompt and the workflow, with progress per step', { skip: noModel }, async () => {
  const workflow = defaultUiWorkflow();
  const { result, events } = await validateAndRun(defaultPrompt(), { extraPngInfo: { workflow } });
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  const [image] = savedImages(result);
  assert.deepEqual(image, { filename: 'gategraph_00001_.png', subfolder: '', type: 'output' });

  const png = pngOf(host.paths, result);
  const decoded = decodePng(png);
  assert.equal(decoded.width, 64);
  assert.equal(decoded.height, 64);
  const text = readPngText(png);
  assert.deepEqual(JSON.parse(text.prompt!), defaultPrompt(), 'the prompt chunk is the API prompt that ran');
  assert.deepEqual(JSON.parse(text.workflow!), workflow, 'the workflow chunk is the UI graph');
  assert.match(text.prompt!, /^[\x20-\x7e]*$/, 'the chunks are plain ASCII, as ComfyUI writes them');

  const progress = events.filter((e) => e.type === 'progress').map((e) => (e.data as { value: number; max: number }).value);
  assert.deepEqual(progress, Array.from({ length: 25 }, (_, i) => i + 1), 'one progress event per sampler step');
  const previews = events.filter((e) => e.type === 'preview');
  assert.ok(previews.length >= 1 && previews.length <= 25, `latent previews, at most one per step (got ${previews.length})`);
  const firstPreview = events.findIndex((e) => e.type === 'preview');
  const firstProgress = events.findIndex((e) => e.type === 'progress');
  assert.ok(firstPreview >= 0 && firstPreview < events.findIndex((e, i) => i > firstProgress && e.type === 'progress'), 'the first step comes with a preview');
  const preview = (previews[0]!.data as { image: { format: string; data: Uint8Array } }).image;
  assert.equal(preview.format, 'PNG');
  assert.equal(decodePng(preview.data).width, 16, 'the preview is the latent rendered at latent resolution');
});

test('the same seed gives the same PNG bytes; another seed another image', { skip: noModel }, async () => {
  const runs: Uint8Array[] = [];
  for (const seed of [7, 7, 8]) {
    const fresh = makeHost(); // separate output folders: identical names, compared by content
    const { result } = await validateAndRun(withSeed(defaultPrompt(), seed), { paths: fresh.paths });
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    runs.push(pngOf(fresh.paths, result));
  }
  assert.deepEqual(runs[0], runs[1], 'two runs with seed 7 on fresh executors write identical files');
  const a = decodePng(runs[0]!).data;
  const b = decodePng(runs[2]!).data;
  const differing = a.reduce((n, v, i) => n + (v !== b[i] ? 1 : 0), 0);
  assert.ok(differing > a.length / 4, `seed 8 should give another image (${differing} of ${a.length} bytes differ)`);
});

test('previews are paced: at most one per interval, the first one at once', () => {
  let clock = 0;
  const due = previewPacer(100, () => clock);
  const opened: number[] = [];
  for (let step = 0; step < 30; step++, clock += 12) if (due()) opened.push(clock); // a 12 ms step
  assert.deepEqual(opened, [0, 108, 216, 324], 'steps of 12 ms: one preview every 9 steps');
  const slow = previewPacer(100, () => clock);
  let all = 0;
  for (let step = 0; step < 5; step++, clock += 1000) if (slow()) all++;
  assert.equal(all, 5, 'steps of a second (SD-size models): a preview with every step');
});

