// The TGATE / DeepCache nodes end to end: workflows through core's Executor on the real model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineNode, socket, validatePrompt, type ApiPrompt } from '@gategraph/core';
import { decodePng, type Tensor } from '@gategraph/diffusion';
import { recommendGate } from '../src/nodes/gate-advisor.ts';
import { defaultPrompt, host, latentKeeper, noModel, packRegistry, savedImages, validateAndRun } from './helpers.ts';

const { kept, node: KeepLatent } = latentKeeper('TestKeepLatentTgate');

const advice: { plot?: Tensor; gate?: number; summary?: string } = {};
const KeepAdvice = defineNode({
  id: 'TestKeepAdvice',
  inputs: { plot: socket('IMAGE'), gate: socket<number>('INT'), summary: socket<string>('STRING') },
  outputs: [],
  outputNode: true,
  execute({ plot, gate, summary }) {
    Object.assign(advice, { plot, gate, summary });
    return { ui: {} };
  },
});

async function registry() {
  const r = await packRegistry();
  if (!r.has(KeepLatent.id)) {
    r.register(KeepLatent, { pack: 'test' });
    r.register(KeepAdvice, { pack: 'test' });
  }
  return r;
}

const SCHEDULE = { gate_step: 10, gate_fraction: 0.4, sp_interval: 5, fi_interval: 1, warm_up: 2, after_gate_branch: 'uncond' };

/** The default workflow with `nodes` patching the MODEL between the loader and KSampler (`model` = the last one's id). */
function withPatches(nodes: Record<string, { class_type: string; inputs: Record<string, unknown> }>, model: string): ApiPrompt {
  const prompt = defaultPrompt();
  Object.assign(prompt, nodes);
  prompt['3']!.inputs.model = [model, 0];
  return prompt;
}

const crossAttn = (schedule: Record<string, unknown> = {}) => ({
  '20': { class_type: 'GateSchedule', inputs: { ...SCHEDULE, ...schedule } },
  '21': { class_type: 'CacheCrossAttn', inputs: { model: ['4', 0], schedule: ['20', 0] } },
});

/** The default workflow's KSampler, plain and patched, each latent kept. */
function sideBySide(nodes: Record<string, { class_type: string; inputs: Record<string, unknown> }>, model: string): ApiPrompt {
  const prompt = defaultPrompt();
  delete prompt['8'];
  delete prompt['9'];
  Object.assign(prompt, nodes);
  prompt['30'] = { class_type: 'KSampler', inputs: { ...prompt['3']!.inputs, model: [model, 0] } };
  prompt['31'] = { class_type: 'TestKeepLatentTgate', inputs: { samples: ['3', 0], key: 'plain' } };
  prompt['32'] = { class_type: 'TestKeepLatentTgate', inputs: { samples: ['30', 0], key: 'patched' } };
  return prompt;
}

test('the TGATE nodes are listed in sampling/tgate with the input names the editor reads', async () => {
  const r = await registry();
  for (const id of ['GateSchedule', 'CacheCrossAttn', 'CacheSelfAttn', 'DeepCache', 'TGatePreset', 'GateAdvisor']) {
    const def = r.get(id);
    assert.ok(def, `${id} is registered`);
    assert.equal(def.category, 'sampling/tgate');
    assert.ok(def.description && def.description.length > 40, `${id} has a description`);
    for (const [name, input] of Object.entries(def.inputs)) assert.ok(input.tooltip, `${id}.${name} has a tooltip`);
  }
  assert.deepEqual(Object.keys(r.get('GateSchedule')!.inputs), ['gate_step', 'gate_fraction', 'sp_interval', 'fi_interval', 'warm_up', 'after_gate_branch']);
  assert.deepEqual(Object.keys(r.get('DeepCache')!.inputs), ['model', 'cache_interval', 'cache_branch_id', 'schedule', 'centre']);
});

test('GateSchedule + CacheCrossAttn: the workflow runs through the Executor and writes an image', { skip: noModel }, async () => {
  await registry();
  const { result, events } = await validateAndRun(withPatches(crossAttn(), '21'));
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  const [image] = savedImages(result);
  assert.ok(image);
  const png = decodePng(readFileSync(join(host.paths.output, image.subfolder, image.filename)));
  assert.equal(png.width, 64);
  const steps = events.flatMap((e) => (e.type === 'progress' && e.data.node === '3' ? [e.data.value] : []));
  assert.deepEqual(steps, Array.from({ length: 25 }, (_, i) => i + 1), 'progress is reported for every step');
});

test('a gate at or past the last step gives the plain image, byte for byte', { skip: noModel }, async () => {
  await registry();
  kept.clear();
  const { result } = await validateAndRun(sideBySide(crossAttn({ gate_step: 25 }), '21'));
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  assert.deepEqual(kept.get('patched')!.samples.data, kept.get('plain')!.samples.data);
  // gate_fraction 1.0 (gate_step 0) is the same "off"
  kept.clear();
  const off = await validateAndRun(sideBySide(crossAttn({ gate_step: 0, gate_fraction: 1 }), '21'));
  assert.equal(off.result.status, 'success', JSON.stringify(off.result.error));
  assert.deepEqual(kept.get('patched')!.samples.data, kept.get('plain')!.samples.data);
});

test('TGATE changes the sampling but stays close to the plain result', { skip: noModel }, async () => {
  await registry();
  kept.clear();
  const { result } = await validateAndRun(sideBySide(crossAttn(), '21'));
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  const a = kept.get('patched')!.samples.data;
  const b = kept.get('plain')!.samples.data;
  assert.notDeepEqual(a, b, 'the gate changed something');
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  assert.ok(Math.sqrt(num / den) < 0.5, `relative L2 distance to the plain latent ${Math.sqrt(num / den)}`);
});

test('CacheCrossAttn + CacheSelfAttn share the schedule; CacheCrossAttn + DeepCache chain; each alone and the preset run', { skip: noModel }, async () => {
  await registry();
  const both = await validateAndRun(
    withPatches({ ...crossAttn(), '22': { class_type: 'CacheSelfAttn', inputs: { model: ['21', 0], schedule: ['20', 0] } } }, '22'),
  );
  assert.equal(both.result.status, 'success', JSON.stringify(both.result.error));
  const deep = await validateAndRun(
    withPatches(
      {
        ...crossAttn({ sp_interval: 1, warm_up: 0 }),
        '23': { class_type: 'DeepCache', inputs: { model: ['21', 0], cache_interval: 3, cache_branch_id: 0, schedule: 'uniform', centre: 15 } },
      },
      '23',
    ),
  );
  assert.equal(deep.result.status, 'success', JSON.stringify(deep.result.error));
  assert.equal(savedImages(deep.result).length, 1);
  const deepAlone = await validateAndRun(
    withPatches({ '23': { class_type: 'DeepCache', inputs: { model: ['4', 0], cache_interval: 3, cache_branch_id: 1, schedule: 'non_uniform', centre: 12 } } }, '23'),
  );
  assert.equal(deepAlone.result.status, 'success', JSON.stringify(deepAlone.result.error));
  const selfAlone = await validateAndRun(withPatches({ '20': crossAttn()['20'], '22': { class_type: 'CacheSelfAttn', inputs: { model: ['4', 0], schedule: ['20', 0] } } }, '22'));
  assert.equal(selfAlone.result.status, 'success', JSON.stringify(selfAlone.result.error));
  const preset = await validateAndRun(
    withPatches({ '24': { class_type: 'TGatePreset', inputs: { model: ['4', 0], model_family: 'SD-1.5', with_deepcache: true } } }, '24'),
  );
  assert.equal(preset.result.status, 'success', JSON.stringify(preset.result.error));
});

test('two different schedules on one MODEL are refused, naming the nodes', { skip: noModel }, async () => {
  await registry();
  const { result } = await validateAndRun(
    withPatches(
      {
        ...crossAttn(),
        '25': { class_type: 'GateSchedule', inputs: { ...SCHEDULE, gate_step: 8 } },
        '22': { class_type: 'CacheSelfAttn', inputs: { model: ['21', 0], schedule: ['25', 0] } },
      },
      '22',
    ),
  );
  assert.equal(result.status, 'error');
  assert.equal(result.error?.node_id, '3');
  assert.match(result.error?.message ?? '', /different gate schedules.*GateSchedule node #20.*GateSchedule node #25/);
});

test('a zero interval is a validation error naming the node and the input', async () => {
  const r = await registry();
  const validation = await validatePrompt(withPatches(crossAttn({ sp_interval: 0 }), '21'), r);
  const errors = validation.nodeErrors['20']?.errors ?? [];
  assert.ok(errors.length > 0, JSON.stringify(validation.nodeErrors));
  assert.ok(errors.some((e) => JSON.stringify(e).includes('sp_interval')), JSON.stringify(errors));
});

test('settings that do not fit the steps are errors naming the GateSchedule node and its input', { skip: noModel }, async () => {
  await registry();
  // warm_up past the gate, with self-attention caching on
  const { result } = await validateAndRun(
    withPatches({ ...crossAttn({ gate_step: 3, warm_up: 5 }), '22': { class_type: 'CacheSelfAttn', inputs: { model: ['21', 0], schedule: ['20', 0] } } }, '22'),
  );
  assert.equal(result.status, 'error');
  assert.equal(result.error?.exception_type, 'NodeInputError');
  assert.match(result.error?.message ?? '', /the GateSchedule node #20, input "warm_up": warm_up \(5\) is past the gate/);
});

test('DeepCache with a branch the UNet does not have is a clear error, never an image', { skip: noModel }, async () => {
  await registry();
  const { result } = await validateAndRun(
    withPatches({ '23': { class_type: 'DeepCache', inputs: { model: ['4', 0], cache_interval: 3, cache_branch_id: 30, schedule: 'uniform', centre: 15 } } }, '23'),
  );
  assert.equal(result.status, 'error');
  assert.equal(savedImages(result).length, 0);
  assert.match(result.error?.message ?? '', /DeepCache node #23, input "cache_branch_id".*branches 0\.\.\d+ exist/);
});

test('GateAdvisor plots the cross-attention change per step and recommends a gate', { skip: noModel }, async () => {
  await registry();
  const prompt = defaultPrompt();
  delete prompt['8'];
  delete prompt['9'];
  const ks = prompt['3']!.inputs;
  prompt['40'] = {
    class_type: 'GateAdvisor',
    inputs: {
      model: ['4', 0], positive: ['6', 0], negative: ['7', 0], latent_image: ['5', 0],
      seed: ks.seed, steps: ks.steps, cfg: ks.cfg, sampler_name: ks.sampler_name, scheduler: ks.scheduler, threshold: 0.05,
    },
  };
  prompt['41'] = { class_type: 'PreviewImage', inputs: { images: ['40', 0] } };
  prompt['42'] = { class_type: 'TestKeepAdvice', inputs: { plot: ['40', 0], gate: ['40', 1], summary: ['40', 2] } };
  delete prompt['3'];
  const { result } = await validateAndRun(prompt);
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  const [image] = savedImages(result);
  assert.ok(image && existsSync(join(host.paths.temp, image.subfolder, image.filename)));
  assert.deepEqual(advice.plot!.shape, [1, 256, 512, 3]);
  // The summary lists the 24 measured changes (steps 1..24) and the gate they lead to under the rule.
  const changes = [...advice.summary!.matchAll(/(\d+): (\d+\.\d)%/g)].map((m) => Number(m[2]) / 100);
  assert.equal(changes.length, 24, advice.summary);
  assert.ok(Number.isInteger(advice.gate) && advice.gate! >= 1 && advice.gate! <= 25);
  const expected = recommendGate(changes, 0.05) ?? 25;
  assert.ok(Math.abs(advice.gate! - expected) <= 1, `gate ${advice.gate} vs ${expected} from the rounded changes`);
  assert.match(advice.summary!, advice.gate === 25 ? /No gate recommended/ : new RegExp(`Recommended gate_step: ${advice.gate} \\(of 25 steps\\)`));
});

test('the gate rule: the first step from which every change stays under the threshold', () => {
  assert.equal(recommendGate([0.5, 0.2, 0.04, 0.06, 0.03, 0.02], 0.05), 5, 'change(4) = 6% is above: the gate comes after it');
  assert.equal(recommendGate([0.5, 0.01, 0.01], 0.05), 2);
  assert.equal(recommendGate([0.5, 0.2, 0.1], 0.05), undefined);
  assert.equal(recommendGate([0.01, 0.01], 0.05), 1);
});

test('after the gate the text reaches the UNet only through cross-attention, which reads the cache: uncond and cond give the same latent', { skip: noModel }, async () => {
  await registry();
  kept.clear();
  const prompt = sideBySide(crossAttn({ after_gate_branch: 'uncond' }), '21');
  prompt['26'] = { class_type: 'GateSchedule', inputs: { ...SCHEDULE, after_gate_branch: 'cond' } };
  prompt['27'] = { class_type: 'CacheCrossAttn', inputs: { model: ['4', 0], schedule: ['26', 0] } };
  prompt['28'] = { class_type: 'KSampler', inputs: { ...prompt['3']!.inputs, model: ['27', 0] } };
  prompt['29'] = { class_type: 'TestKeepLatentTgate', inputs: { samples: ['28', 0], key: 'cond' } };
  const { result } = await validateAndRun(prompt);
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  assert.deepEqual(kept.get('cond')!.samples.data, kept.get('patched')!.samples.data);
});

test('guidance-free sampling (cfg 1) and the LCM preset run TGATE with one pass per step', { skip: noModel }, async () => {
  await registry();
  const prompt = withPatches({ '24': { class_type: 'TGatePreset', inputs: { model: ['4', 0], model_family: 'LCM', with_deepcache: false } } }, '24');
  prompt['3']!.inputs.steps = 4;
  prompt['3']!.inputs.cfg = 1;
  const lcm = await validateAndRun(prompt);
  assert.equal(lcm.result.status, 'success', JSON.stringify(lcm.result.error));
  const cfg1 = withPatches(crossAttn(), '21');
  cfg1['3']!.inputs.cfg = 1;
  const plain = await validateAndRun(cfg1);
  assert.equal(plain.result.status, 'success', JSON.stringify(plain.result.error));
});
