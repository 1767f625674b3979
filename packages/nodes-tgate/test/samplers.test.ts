// ComfyUI's whole sampler list through KSampler on the embedded model, and the samplers with TGATE / DeepCache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ApiPrompt } from '@gategraph/core';
import { K_SAMPLER_NAMES, kSamplerInfo, maxAbsDiff, type Tensor } from '@gategraph/diffusion';
import { defaultPrompt, latentKeeper, noModel, packRegistry, validateAndRun } from './helpers.ts';

const { kept, node: KeepLatent } = latentKeeper('TestKeepLatentSamplers');

async function registry() {
  const r = await packRegistry();
  if (!r.has(KeepLatent.id)) r.register(KeepLatent, { pack: 'test' });
  return r;
}

type Nodes = Record<string, { class_type: string; inputs: Record<string, unknown> }>;

function samplerPrompt(key: string, sampler: Record<string, unknown>, nodes: Nodes = {}, model = '4'): ApiPrompt {
  const prompt = defaultPrompt();
  delete prompt['8'];
  delete prompt['9'];
  Object.assign(prompt, nodes);
  Object.assign(prompt['3']!.inputs, { steps: 6, model: [model, 0], ...sampler });
  prompt['99'] = { class_type: KeepLatent.id, inputs: { samples: ['3', 0], key } };
  return prompt;
}

async function run(key: string, sampler: Record<string, unknown>, nodes?: Nodes, model?: string): Promise<{ latent: Tensor; progress: number }> {
  await registry();
  const { result, events } = await validateAndRun(samplerPrompt(key, sampler, nodes, model));
  assert.equal(result.status, 'success', `${key}: ${JSON.stringify(result.error)}`);
  return { latent: kept.get(key)!.samples, progress: events.filter((e) => e.type === 'progress' && e.data.node === '3').length };
}

const finite = (t: Tensor) => t.data.every(Number.isFinite);

test('every sampler of ComfyUI\'s list runs, reports each step, and gives a finite latent that depends on the sampler', { skip: noModel }, async () => {
  const euler = (await run('euler', { sampler_name: 'euler', scheduler: 'karras' })).latent;
  for (const name of K_SAMPLER_NAMES) {
    const { latent, progress } = await run(name, { sampler_name: name, scheduler: 'karras' });
    assert.ok(finite(latent), `${name}: finite`);
    if (!kSamplerInfo(name).ownSteps) assert.equal(progress, 6, `${name}: one progress report per step`);
    // Samplers that are euler in disguise (ddim) or take euler's path at this cfg may match it; the rest differ.
    if (!['euler', 'ddim'].includes(name)) assert.ok(maxAbsDiff(latent, euler) > 1e-4, `${name} differs from euler`);
  }
});

test('a seed reproduces the noisy samplers (seeded generator and Brownian tree), and another seed changes them', { skip: noModel }, async () => {
  for (const name of ['euler_ancestral_cfg_pp', 'dpmpp_2m_sde', 'dpmpp_sde']) {
    const a = (await run(`${name}-a`, { sampler_name: name, scheduler: 'karras', seed: 7 })).latent;
    const b = (await run(`${name}-b`, { sampler_name: name, scheduler: 'karras', seed: 7 })).latent;
    const c = (await run(`${name}-c`, { sampler_name: name, scheduler: 'karras', seed: 8 })).latent;
    assert.equal(maxAbsDiff(a, b), 0, `${name}: the same seed gives the same latent`);
    assert.ok(maxAbsDiff(a, c) > 1e-3, `${name}: another seed changes it`);
  }
});

const TGATE: Nodes = {
  '20': { class_type: 'GateSchedule', inputs: { gate_step: 3, gate_fraction: 0.4, sp_interval: 5, fi_interval: 1, warm_up: 2, after_gate_branch: 'uncond' } },
  '21': { class_type: 'CacheCrossAttn', inputs: { model: ['4', 0], schedule: ['20', 0] } },
  '22': { class_type: 'DeepCache', inputs: { model: ['21', 0], cache_interval: 2, cache_branch_id: 0, schedule: 'uniform', centre: 15 } },
};

test('TGATE + DeepCache run with samplers that call the model twice a step; a gate past the end is the plain sampler', { skip: noModel }, async () => {
  for (const name of ['heun', 'dpmpp_2s_ancestral', 'uni_pc']) {
    const plain = (await run(`${name}-plain`, { sampler_name: name, scheduler: 'normal' })).latent;
    const { latent: gated, progress } = await run(`${name}-gated`, { sampler_name: name, scheduler: 'normal' }, TGATE, '22');
    assert.equal(progress, 6, `${name}: the gate counts steps`);
    assert.ok(finite(gated) && maxAbsDiff(gated, plain) > 1e-4, `${name}: the patches change the result`);
    const late: Nodes = { ...TGATE, '20': { class_type: 'GateSchedule', inputs: { ...TGATE['20']!.inputs, gate_step: 100 } } };
    const { latent: never } = await run(`${name}-never`, { sampler_name: name, scheduler: 'normal' }, { '20': late['20']!, '21': late['21']! }, '21');
    assert.equal(maxAbsDiff(never, plain), 0, `${name}: TGATE gated after the last step is the plain sampler, bit for bit`);
  }
});

test('a sampler that chooses its own steps is refused on a patched MODEL, saying why', { skip: noModel }, async () => {
  await registry();
  const { result } = await validateAndRun(samplerPrompt('adaptive-gated', { sampler_name: 'dpm_adaptive' }, TGATE, '22'));
  assert.equal(result.error?.exception_type, 'NodeInputError');
  assert.match(result.error?.message ?? '', /^sampler_name: dpm_adaptive chooses its own steps/);
});

test('KSampler offers ComfyUI\'s sampler list in ComfyUI\'s order', async () => {
  const r = await registry();
  const input = r.get('KSampler')!.inputs.sampler_name as { options?: readonly string[] };
  assert.deepEqual(input.options, [...K_SAMPLER_NAMES]);
  assert.ok(K_SAMPLER_NAMES.includes('uni_pc_bh2') && K_SAMPLER_NAMES.includes('dpmpp_2m_sde'));
});
