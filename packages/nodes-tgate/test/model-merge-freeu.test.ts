// ModelMergeSimple on two random-weight checkpoints of one architecture (sd15-small from tools/test-checkpoints and a
// copy with other UNet weights), and FreeU / FreeU_V2 on the embedded model: the merged and patched UNets are
// derived files opened like any model, and TGATE / DeepCache patches still apply to them.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { ApiPrompt } from '@gategraph/core';
import { maxAbsDiff, type Tensor } from '@gategraph/diffusion';
import { testCheckpoints } from '../../diffusion/test/fixtures/test-checkpoints.ts';
import { copyTensors, makeLora, writeSafetensors } from './model-files.ts';
import { defaultPrompt, host, latentKeeper, noModel, packRegistry, runUnvalidated, validateAndRun } from './helpers.ts';

const { kept, node: KeepLatent } = latentKeeper('TestKeepLatentModelNodes');
const FIRST = 'small-a.safetensors';
const SECOND = 'small-b.safetensors';
const variants = join(host.paths.models, '.gategraph-derived', 'unet-variants');

before(() => {
  const checkpoints = join(host.paths.models, 'checkpoints');
  const loras = join(host.paths.models, 'loras');
  mkdirSync(checkpoints, { recursive: true });
  mkdirSync(loras, { recursive: true });
  const source = join(testCheckpoints(), 'sd15-small.safetensors');
  symlinkSync(source, join(checkpoints, FIRST));
  // The same checkpoint with every UNet weight changed by up to 30 % (seeded): another model of one architecture.
  const tensors = copyTensors(source, '', '');
  let seed = 7;
  const next = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5);
  for (const [name, t] of tensors) {
    if (!name.startsWith('model.diffusion_model.') || t.dtype !== 'F32') continue;
    const values = new Float32Array(t.bytes.byteLength / 4);
    new Uint8Array(values.buffer).set(t.bytes);
    for (let i = 0; i < values.length; i++) values[i] = values[i]! * (1 + 0.6 * next());
    tensors.set(name, { ...t, bytes: new Uint8Array(values.buffer) });
  }
  writeSafetensors(join(checkpoints, SECOND), tensors);
  writeSafetensors(join(loras, 'style.safetensors'), makeLora(source));
});

async function registry() {
  const r = await packRegistry();
  if (!r.has(KeepLatent.id)) r.register(KeepLatent, { pack: 'test' });
  return r;
}

/** Loaders of both checkpoints (1, 2), prompts from the first's CLIP (6, 7), a 64 x 64 latent (5), `nodes`, keepers. */
function smallGraph(nodes: ApiPrompt, keep: Record<string, [string, number]>): ApiPrompt {
  const base = defaultPrompt();
  const prompt: ApiPrompt = {
    '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: FIRST } },
    '2': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: SECOND } },
    '5': { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64, batch_size: 1 } },
    '6': { ...base['6']!, inputs: { ...base['6']!.inputs, clip: ['1', 1] } },
    '7': { ...base['7']!, inputs: { ...base['7']!.inputs, clip: ['1', 1] } },
    ...nodes,
  };
  Object.entries(keep).forEach(([key, link], i) => {
    prompt[`9${i}`] = { class_type: KeepLatent.id, inputs: { samples: link, key } };
  });
  return prompt;
}

/** The default workflow's tiny-sd nodes (4-7) with `nodes` and keepers. */
function tinyGraph(nodes: ApiPrompt, keep: Record<string, [string, number]>): ApiPrompt {
  const base = defaultPrompt();
  const prompt: ApiPrompt = { '4': base['4']!, '5': base['5']!, '6': base['6']!, '7': base['7']!, ...nodes };
  Object.entries(keep).forEach(([key, link], i) => {
    prompt[`9${i}`] = { class_type: KeepLatent.id, inputs: { samples: link, key } };
  });
  return prompt;
}

async function run(prompt: ApiPrompt, keep: Record<string, [string, number]>): Promise<Record<string, Tensor>> {
  await registry();
  const { result } = await validateAndRun(prompt);
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  return Object.fromEntries(Object.keys(keep).map((key) => [key, kept.get(key)!.samples]));
}

const ksampler = (id: string, model: [string, number], steps = 4): ApiPrompt => ({
  [id]: { class_type: 'KSampler', inputs: { model, seed: 3, steps, cfg: 5, sampler_name: 'euler', scheduler: 'normal', positive: ['6', 0], negative: ['7', 0], latent_image: ['5', 0], denoise: 1 } },
});
const merge = (id: string, ratio: number, model1: [string, number] = ['1', 0], model2: [string, number] = ['2', 0]): ApiPrompt => ({
  [id]: { class_type: 'ModelMergeSimple', inputs: { model1, model2, ratio } },
});
const deepCache = (id: string, model: [string, number]): ApiPrompt => ({
  [id]: { class_type: 'DeepCache', inputs: { model, cache_interval: 2, cache_branch_id: 0, schedule: 'uniform', centre: 15 } },
});
const distance = (a: Tensor, b: Tensor) => Math.sqrt(a.data.reduce((s, v, i) => s + (v - b.data[i]!) ** 2, 0));

test('ModelMergeSimple: ComfyUI\'s inputs; ratio 1 samples as model1, 0 as model2, 0.5 in between; the merge is written once', async () => {
  const def = (await registry()).get('ModelMergeSimple')!;
  assert.deepEqual(Object.keys(def.inputs), ['model1', 'model2', 'ratio']);
  assert.equal((def.inputs.ratio as { default: number }).default, 1);
  const keep: Record<string, [string, number]> = { first: ['10', 0], second: ['11', 0], one: ['12', 0], zero: ['13', 0], half: ['14', 0] };
  const nodes = { ...merge('20', 1), ...merge('21', 0), ...merge('22', 0.5), ...ksampler('10', ['1', 0]), ...ksampler('11', ['2', 0]), ...ksampler('12', ['20', 0]), ...ksampler('13', ['21', 0]), ...ksampler('14', ['22', 0]) };
  const out = await run(smallGraph(nodes, keep), keep);
  const whole = distance(out.first!, out.second!);
  assert.ok(whole > 1e-2, `the two models differ (${whole})`);
  assert.deepEqual(out.one!.data, out.first!.data, 'ratio 1 is model1');
  assert.ok(maxAbsDiff(out.zero!, out.second!) < 1e-5, `ratio 0 is model2 (${maxAbsDiff(out.zero!, out.second!)})`);
  assert.ok(distance(out.half!, out.first!) < whole && distance(out.half!, out.second!) < whole, 'ratio 0.5 lies between');
  const written = readdirSync(variants).filter((n) => n.startsWith('merge-'));
  assert.equal(written.length, 2, `ratio 0 and 0.5 each wrote a merge (${written.join(', ')})`);
  // Again: the same folders are reused.
  await run(smallGraph(nodes, keep), keep);
  assert.deepEqual(readdirSync(variants).filter((n) => n.startsWith('merge-')).sort(), written.sort());
});

test('ModelMergeSimple refuses models of different architectures on model2; a LoRA after a merge is refused with the reason', { skip: noModel }, async () => {
  await registry();
  if (!existsSync(join(host.paths.models, 'tiny-sd'))) return;
  const prompt = smallGraph({ '4': defaultPrompt()['4']!, ...merge('20', 0.5, ['1', 0], ['4', 0]), ...ksampler('10', ['20', 0]) }, { x: ['10', 0] });
  const { result } = await runUnvalidated(prompt, ['90']);
  assert.equal(result.status, 'error');
  assert.match(JSON.stringify(result.error), /model2.*different architectures/);

  const lora = smallGraph({ ...merge('20', 0.5), '21': { class_type: 'LoraLoaderModelOnly', inputs: { model: ['20', 0], lora_name: 'style.safetensors', strength_model: 1 } }, ...ksampler('10', ['21', 0]) }, { x: ['10', 0] });
  const refused = await runUnvalidated(lora, ['90']);
  assert.equal(refused.result.status, 'error');
  assert.match(JSON.stringify(refused.result.error), /changed by ModelMergeSimple.*apply the LoRA to the model before that node/);
});

test('DeepCache on a merged MODEL and model1\'s patches through the merge', async () => {
  const keep: Record<string, [string, number]> = { merged: ['10', 0], cached: ['11', 0], before: ['12', 0] };
  const nodes = { ...merge('20', 0.5), ...deepCache('21', ['20', 0]), ...deepCache('22', ['1', 0]), ...merge('23', 0.5, ['22', 0]), ...ksampler('10', ['20', 0], 6), ...ksampler('11', ['21', 0], 6), ...ksampler('12', ['23', 0], 6) };
  const out = await run(smallGraph(nodes, keep), keep);
  assert.ok(maxAbsDiff(out.cached!, out.merged!) > 1e-5, 'DeepCache changes the merged model\'s run');
  assert.deepEqual(out.before!.data, out.cached!.data, 'model1\'s DeepCache patch is kept by the merge, as ComfyUI keeps model1\'s patches');
});

test('FreeU / FreeU_V2: ComfyUI\'s inputs and defaults; they change the image, factors of 1 do not; TGATE + DeepCache on a FreeU_V2 MODEL', { skip: noModel }, async () => {
  const r = await registry();
  for (const [id, defaults] of [['FreeU', [1.1, 1.2, 0.9, 0.2]], ['FreeU_V2', [1.3, 1.4, 0.9, 0.2]]] as const) {
    const def = r.get(id)!;
    assert.deepEqual(Object.keys(def.inputs), ['model', 'b1', 'b2', 's1', 's2']);
    assert.deepEqual(['b1', 'b2', 's1', 's2'].map((k) => (def.inputs[k] as { default: number }).default), defaults);
    assert.equal(def.category, 'model_patches/unet');
  }
  const freeu = (id: string, cls: string, b1: number, b2: number, s1: number, s2: number, model: [string, number] = ['4', 0]): ApiPrompt => ({
    [id]: { class_type: cls, inputs: { model, b1, b2, s1, s2 } },
  });
  const keep: Record<string, [string, number]> = { plain: ['10', 0], v1: ['11', 0], v2: ['12', 0], ones: ['13', 0], patched: ['14', 0] };
  const nodes = {
    ...freeu('20', 'FreeU', 1.1, 1.2, 0.9, 0.2),
    ...freeu('21', 'FreeU_V2', 1.3, 1.4, 0.9, 0.2),
    ...freeu('22', 'FreeU_V2', 1, 1, 1, 1),
    '23': { class_type: 'GateSchedule', inputs: { gate_step: 3, gate_fraction: 0.4, sp_interval: 5, fi_interval: 1, warm_up: 0, after_gate_branch: 'uncond' } },
    '24': { class_type: 'CacheCrossAttn', inputs: { model: ['21', 0], schedule: ['23', 0] } },
    ...deepCache('25', ['24', 0]),
    ...ksampler('10', ['4', 0], 6),
    ...ksampler('11', ['20', 0], 6),
    ...ksampler('12', ['21', 0], 6),
    ...ksampler('13', ['22', 0], 6),
    ...ksampler('14', ['25', 0], 6),
  };
  const out = await run(tinyGraph(nodes, keep), keep);
  assert.ok(maxAbsDiff(out.v1!, out.plain!) > 1e-3, 'FreeU changes the image');
  assert.ok(maxAbsDiff(out.v2!, out.plain!) > 1e-3, 'FreeU_V2 changes the image');
  assert.ok(maxAbsDiff(out.v2!, out.v1!) > 1e-4, 'the two versions differ');
  assert.deepEqual(out.ones!.data, out.plain!.data, 'factors of 1 leave the model as it is');
  assert.ok(out.patched!.data.every(Number.isFinite));
  assert.ok(maxAbsDiff(out.patched!, out.v2!) > 1e-5, 'TGATE and DeepCache apply to the FreeU_V2 UNet');
  const v2 = readdirSync(variants).find((n) => n.startsWith('freeu-v2-'))!;
  // Opened like any model: its attention fused as the base's is (a cached graph beside its unet/model.onnx).
  const derived = join(variants, v2, 'unet', '.gategraph-derived');
  const records = readdirSync(derived).filter((n) => n.endsWith('.json')).map((n) => JSON.parse(readFileSync(join(derived, n), 'utf8')) as { spec?: { conversion?: string } });
  assert.ok(records.some((r) => r.spec?.conversion === 'fused-attention'), 'the FreeU_V2 UNet was fused');
});
