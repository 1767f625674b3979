// The shipped workflows (workflows/default.json and workflows/tgate.json) on every published SD layout users
// bring (tools/test-models, random weights, SD's block structure at narrow widths), through the pack as a host
// runs them: the folder is listed, the prompt validates, samples at a small size and saves an image.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validatePrompt, type ApiPrompt } from '@gategraph/core';
import { decodePng } from '@gategraph/diffusion';
import { listCheckpoints } from '../src/folders.ts';
import { publishedTestModels, RUNNABLE_LAYOUTS, REFUSED_LAYOUTS } from '../../diffusion/test/fixtures/published-models.ts';
import { host, packRegistry, readJson, repoRoot, savedImages, validateAndRun } from './helpers.ts';

let root: string;
before(() => {
  root = publishedTestModels();
});

/** A shipped workflow on `layout`, at 64x64 pixels and a few steps; LCM (SD-1.5 and SDXL) with its sampler and schedule, SDXL-Turbo with euler ancestral at cfg 1. */
function workflow(file: 'default.json' | 'tgate.json', layout: string): ApiPrompt {
  const prompt = readJson<ApiPrompt>(join(repoRoot, 'workflows', file));
  for (const node of Object.values(prompt)) {
    if (node.class_type === 'CheckpointLoaderSimple') node.inputs.ckpt_name = layout;
    if (node.class_type === 'EmptyLatentImage') Object.assign(node.inputs, { width: 64, height: 64 });
    if (node.class_type === 'KSampler') {
      node.inputs.steps = 6;
      if (layout === 'lcm' || layout === 'lcm-sdxl') Object.assign(node.inputs, { sampler_name: 'lcm', scheduler: 'sgm_uniform', cfg: 8 });
      // SDXL-Turbo as it is used: euler ancestral, guidance off (cfg 1), trailing-like timesteps
      if (layout === 'sdxl-turbo') Object.assign(node.inputs, { sampler_name: 'euler_ancestral', scheduler: 'sgm_uniform', cfg: 1 });
    }
    if (node.class_type === 'GateSchedule') Object.assign(node.inputs, { gate_step: 3, warm_up: 1, sp_interval: 2 });
    if (node.class_type === 'SaveImage') node.inputs.filename_prefix = `${layout}-${file.replace('.json', '')}`;
  }
  return prompt;
}

test('every published layout and every refused kind is listed by the loader', () => {
  const listed = listCheckpoints({ paths: { ...host.paths, models: root } });
  for (const layout of RUNNABLE_LAYOUTS) assert.ok(listed.includes(layout), `${layout} is listed`);
  for (const layout of REFUSED_LAYOUTS.filter((l) => l !== 'ckpt')) assert.ok(listed.includes(layout), `${layout} is listed (to be refused with a reason)`);
});

for (const layout of RUNNABLE_LAYOUTS) {
  test(`${layout}: workflows/default.json and workflows/tgate.json validate, sample and save an image`, async () => {
    const paths = { ...host.paths, models: root };
    for (const file of ['default.json', 'tgate.json'] as const) {
      const { result } = await validateAndRun(workflow(file, layout), { paths });
      assert.equal(result.status, 'success', `${layout} ${file}: ${JSON.stringify(result.error)}`);
      const [saved] = savedImages(result);
      const png = decodePng(readFileSync(join(host.paths.output, saved!.filename)));
      assert.deepEqual([png.width, png.height], [64, 64], `${layout} ${file}: a 64x64 image`);
      assert.ok(new Set(png.data).size > 16, `${layout} ${file}: the image is not flat`);
    }
  });
}

test('a workflow naming a refused kind fails validation on the loader with what the model is', async () => {
  const registry = await packRegistry();
  for (const [layout, says] of [
    ['olive-fused', /ckpt_name "olive-fused": unet\/model\.onnx was optimized for GPUs/],
    ['pixart', /ckpt_name "pixart": this is a PixArt model/],
  ] as const) {
    const result = await validatePrompt(workflow('default.json', layout), registry, { context: { paths: { ...host.paths, models: root } } });
    assert.equal(result.ok, false, layout);
    const loader = Object.entries(result.nodeErrors).find(([, e]) => e.class_type === 'CheckpointLoaderSimple');
    assert.ok(loader, `${layout}: the error is on the loader (${JSON.stringify(result.nodeErrors)})`);
    assert.match(loader[1].errors.map((e) => e.message).join(' '), says);
  }
});
