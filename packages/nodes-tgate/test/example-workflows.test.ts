// workflows/examples/: ComfyUI's classic SD-1.x graphs in its UI format, each loaded as the CLI and the editor
// load it and run on sd15-small (tools/test-checkpoints: SD-1.5's layout, random weights) standing in for
// v1-5-pruned-emaonly.safetensors, at a quarter of their sizes and steps; then again with GateSchedule +
// CacheCrossAttn + DeepCache on the MODEL of every sampler.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadWorkflow, type ApiPrompt } from '@gategraph/core';
import { decodePng, encodePng } from '@gategraph/diffusion';
import { testCheckpoints } from '../../diffusion/test/fixtures/test-checkpoints.ts';
import { host, packRegistry, recordingLogger, repoRoot, savedImages, validateAndRun } from './helpers.ts';
import { copyTensors, makeLora, writeSafetensors } from './model-files.ts';

const folder = join(repoRoot, 'workflows', 'examples');
const SMALL = join(testCheckpoints(), 'sd15-small.safetensors');

before(() => {
  const models = host.paths.models;
  for (const dir of ['checkpoints', 'loras', 'embeddings']) mkdirSync(join(models, dir), { recursive: true });
  const checkpoint = join(models, 'checkpoints', 'v1-5-pruned-emaonly.safetensors');
  if (!existsSync(checkpoint)) symlinkSync(SMALL, checkpoint);
  writeSafetensors(join(models, 'loras', 'example-lora.safetensors'), makeLora(SMALL));
  // Two vectors of the text encoder's width: the token embeddings of two words, as a trained embedding would be.
  const table = copyTensors(SMALL, 'cond_stage_model.transformer.text_model.embeddings.token_embedding.weight', 'emb_params').get('emb_params')!;
  const width = table.shape[1]!;
  const rows = new Uint8Array(table.bytes.buffer, table.bytes.byteOffset + 1000 * width * 4, 2 * width * 4).slice();
  writeSafetensors(join(models, 'embeddings', 'example-embedding.safetensors'), new Map([['emb_params', { dtype: table.dtype, shape: [2, width], bytes: rows }]]));
  // The inputs the examples name: a picture with a transparent hole (inpainting) and a picture to extend.
  const rgba = new Uint8Array(128 * 128 * 4);
  for (let i = 0; i < 128 * 128; i++) {
    const [x, y] = [i % 128, Math.floor(i / 128)];
    rgba.set([40 + x, 90, 200 - y, x > 40 && x < 90 && y > 40 && y < 90 ? 0 : 255], i * 4);
  }
  writeFileSync(join(host.paths.input, 'inpaint-source.png'), encodePng({ width: 128, height: 128, channels: 4, data: rgba }));
  const rgb = new Uint8Array(128 * 64 * 3).map((_, i) => (i * 7) % 251);
  writeFileSync(join(host.paths.input, 'outpaint-source.png'), encodePng({ width: 128, height: 64, channels: 3, data: rgb }));
});

/** Widgets in pixels, divided by 4 (512 -> 128); step counts and step windows likewise (20 -> 5). */
const PIXEL_INPUTS = new Set(['width', 'height', 'x', 'y', 'left', 'top', 'right', 'bottom', 'feather', 'feathering']);
const STEP_INPUTS = new Set(['steps', 'start_at_step', 'end_at_step']);

function scaledDown(prompt: ApiPrompt): ApiPrompt {
  const out = structuredClone(prompt);
  for (const node of Object.values(out)) {
    for (const [name, value] of Object.entries(node.inputs)) {
      if (typeof value !== 'number') continue;
      if (PIXEL_INPUTS.has(name) && !node.class_type.startsWith('ConditioningSetAreaPercentage')) node.inputs[name] = Math.round(value / 4);
      if (STEP_INPUTS.has(name) && value < 10000) node.inputs[name] = Math.max(1, Math.round(value / 4));
    }
  }
  return out;
}

/** GateSchedule + CacheCrossAttn + DeepCache between each loader's MODEL and the nodes that sample with it. */
function withTgateAndDeepCache(prompt: ApiPrompt): ApiPrompt {
  const out = structuredClone(prompt);
  const loaders = new Set(Object.entries(out).filter(([, n]) => ['CheckpointLoaderSimple', 'LoraLoader'].includes(n.class_type)).map(([id]) => id));
  let added = 0;
  for (const [id, node] of Object.entries(prompt)) {
    const model = node.inputs.model;
    if (!Array.isArray(model) || !loaders.has(String(model[0])) || node.class_type === 'LoraLoader') continue;
    const base = `${100 + added++ * 3}`;
    const [gate, cross, deep] = [base, `${Number(base) + 1}`, `${Number(base) + 2}`];
    out[gate] = { class_type: 'GateSchedule', inputs: { gate_step: 2, gate_fraction: 0.4, sp_interval: 5, fi_interval: 1, warm_up: 0, after_gate_branch: 'uncond' } };
    out[cross] = { class_type: 'CacheCrossAttn', inputs: { model, schedule: [gate, 0] } };
    out[deep] = { class_type: 'DeepCache', inputs: { model: [cross, 0], cache_interval: 2, cache_branch_id: 0, schedule: 'uniform', centre: 15 } };
    out[id]!.inputs.model = [deep, 0];
  }
  assert.ok(added > 0, 'the graph samples with a MODEL');
  return out;
}

async function imageOf(prompt: ApiPrompt, what: string, lines: string[] = []): Promise<{ width: number; height: number; pixels: Uint8Array }> {
  const { result } = await validateAndRun(prompt, { logger: recordingLogger(lines) });
  assert.equal(result.status, 'success', `${what}: ${JSON.stringify(result.error)}`);
  const [saved] = savedImages(result);
  assert.ok(saved, `${what}: an image was saved`);
  const png = decodePng(readFileSync(join(host.paths.output, saved.filename)));
  return { width: png.width, height: png.height, pixels: png.data };
}

/** The pixel size each example's image has at a quarter of its size. */
const EXPECTED_SIZE: Record<string, [number, number]> = {
  'hires-fix-latent.json': [192, 192],
  'hires-fix-image.json': [192, 192],
  'inpaint.json': [128, 128],
  'outpaint.json': [128, 128],
  'area-composition.json': [128, 128],
  'noisy-latent-composition.json': [128, 128],
  'lora.json': [128, 128],
  'textual-inversion.json': [128, 128],
  'sampler-custom-advanced.json': [128, 128],
};

test('every example is a ComfyUI UI workflow of known nodes, with a note saying what it needs', async () => {
  const registry = await packRegistry();
  const files = readdirSync(folder).filter((f) => f.endsWith('.json')).sort();
  assert.deepEqual(files, Object.keys(EXPECTED_SIZE).sort());
  for (const file of files) {
    const json = JSON.parse(readFileSync(join(folder, file), 'utf8')) as { version: number; nodes: { type: string; widgets_values?: unknown[] }[] };
    assert.equal(json.version, 0.4, file);
    const loaded = loadWorkflow(json, registry, file);
    assert.equal(loaded.format, 'ui-0.4');
    assert.deepEqual(loaded.warnings, [], `${file} converts without warnings`);
    const note = json.nodes.find((n) => n.type === 'Note');
    assert.ok(typeof note?.widgets_values?.[0] === 'string' && note.widgets_values[0].length > 40, `${file} has a note`);
  }
});

for (const file of Object.keys(EXPECTED_SIZE)) {
  test(`${file} runs, and runs with TGATE + DeepCache on its MODEL`, async () => {
    const registry = await packRegistry();
    const { prompt } = loadWorkflow(JSON.parse(readFileSync(join(folder, file), 'utf8')), registry, file);
    const small = scaledDown(prompt);
    const lines: string[] = [];
    const plain = await imageOf(small, file, lines);
    // Nothing the example names is missing (an embedding that is not found is only a warning, as in ComfyUI).
    assert.deepEqual(lines.filter((l) => l.startsWith('warn')), [], `${file}: no warnings`);
    assert.deepEqual([plain.width, plain.height], EXPECTED_SIZE[file]);
    const patched = await imageOf(withTgateAndDeepCache(small), `${file} with TGATE + DeepCache`);
    assert.deepEqual([patched.width, patched.height], EXPECTED_SIZE[file]);
  });
}
