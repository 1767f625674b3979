// ComfyUI's custom sampling nodes on the embedded model: each part checked against the KSampler run, or the
// custom run, it must equal, and TGATE through SamplerCustomAdvanced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ApiPrompt } from '@gategraph/core';
import { karrasSigmas, maxAbsDiff, type Tensor } from '@gategraph/diffusion';
import { latentKeeper, noModel, packRegistry, runKeeping, sigmasKeeper, validateAndRun } from './helpers.ts';

const keeper = latentKeeper('TestKeepLatentCustom');
const KeepLatent = keeper.node;
const { kept: keptSigmas, node: KeepSigmas } = sigmasKeeper('TestKeepSigmas');

async function registry() {
  const r = await packRegistry();
  if (!r.has(KeepLatent.id)) {
    r.register(KeepLatent, { pack: 'test' });
    r.register(KeepSigmas, { pack: 'test' });
  }
  return r;
}

type Nodes = Record<string, { class_type: string; inputs: Record<string, unknown> }>;

async function run(nodes: Nodes, keep: Record<string, [string, number]>): Promise<Record<string, Tensor>> {
  await registry();
  return runKeeping(keeper, nodes, keep);
}

const STEPS = 6;
const ksampler = (sampler: string, cfg = 6): Nodes => ({
  '3': { class_type: 'KSampler', inputs: { model: ['4', 0], seed: 42, steps: STEPS, cfg, sampler_name: sampler, scheduler: 'normal', positive: ['6', 0], negative: ['7', 0], latent_image: ['5', 0], denoise: 1 } },
});
const parts = (sampler: string): Nodes => ({
  '10': { class_type: 'KSamplerSelect', inputs: { sampler_name: sampler } },
  '11': { class_type: 'BasicScheduler', inputs: { model: ['4', 0], scheduler: 'normal', steps: STEPS, denoise: 1 } },
  '12': { class_type: 'RandomNoise', inputs: { noise_seed: 42 } },
  '13': { class_type: 'CFGGuider', inputs: { model: ['4', 0], positive: ['6', 0], negative: ['7', 0], cfg: 6 } },
});
const custom = (sampler = '10', sigmas: [string, number] = ['11', 0], cfg = 6): Nodes => ({
  '20': { class_type: 'SamplerCustom', inputs: { model: ['4', 0], add_noise: true, noise_seed: 42, cfg, positive: ['6', 0], negative: ['7', 0], sampler: [sampler, 0], sigmas, latent_image: ['5', 0] } },
});
const advanced = (guider = '13', sigmas: [string, number] = ['11', 0], noise = '12', latent: [string, number] = ['5', 0], id = '21'): Nodes => ({
  [id]: { class_type: 'SamplerCustomAdvanced', inputs: { noise: [noise, 0], guider: [guider, 0], sampler: ['10', 0], sigmas, latent_image: latent } },
});

test('SamplerCustom with KSamplerSelect and BasicScheduler samples as KSampler; SamplerCustomAdvanced as SamplerCustom, bit for bit', { skip: noModel }, async () => {
  for (const sampler of ['euler', 'dpmpp_2m_sde', 'heun']) {
    const out = await run({ ...ksampler(sampler), ...parts(sampler), ...custom(), ...advanced() }, { k: ['3', 0], custom: ['20', 0], advanced: ['21', 0] });
    // KSampler's euler is the engine's own scheduler; SamplerCustom always runs ComfyUI's k-diffusion function.
    assert.ok(maxAbsDiff(out.custom!, out.k!) < 1e-3, `${sampler}: SamplerCustom vs KSampler ${maxAbsDiff(out.custom!, out.k!)}`);
    assert.equal(maxAbsDiff(out.advanced!, out.custom!), 0, `${sampler}: SamplerCustomAdvanced vs SamplerCustom`);
  }
});

test('SplitSigmas: a high stage then a low stage from DisableNoise is the whole run; denoised_output is the clean estimate of the last step', { skip: noModel }, async () => {
  const nodes: Nodes = {
    ...parts('euler'),
    '14': { class_type: 'SplitSigmas', inputs: { sigmas: ['11', 0], step: 3 } },
    '15': { class_type: 'DisableNoise', inputs: {} },
    ...advanced('13', ['11', 0]),
    ...advanced('13', ['14', 0], '12', ['5', 0], '22'),
    ...advanced('13', ['14', 1], '15', ['22', 0], '23'),
  };
  const out = await run(nodes, { whole: ['21', 0], wholeDenoised: ['21', 1], high: ['22', 0], highDenoised: ['22', 1], low: ['23', 0] });
  assert.equal(maxAbsDiff(out.low!, out.whole!), 0, 'two stages are the whole run');
  assert.equal(maxAbsDiff(out.wholeDenoised!, out.whole!), 0, 'euler\'s last step to 0 lands on the estimate');
  assert.ok(maxAbsDiff(out.highDenoised!, out.high!) > 1e-3, 'a stage that stops with noise left: its estimate is not its output');
});

test('BasicGuider is cfg 1 on the positive; DualCFGGuider with cond2 = negative is CFG with cfg_conds', { skip: noModel }, async () => {
  const nodes: Nodes = {
    ...parts('euler'),
    '16': { class_type: 'BasicGuider', inputs: { model: ['4', 0], conditioning: ['6', 0] } },
    '17': { class_type: 'DualCFGGuider', inputs: { model: ['4', 0], cond1: ['6', 0], cond2: ['7', 0], negative: ['7', 0], cfg_conds: 6, cfg_cond2_negative: 3, style: 'regular' } },
    ...custom('10', ['11', 0], 1),
    ...advanced('16', ['11', 0], '12', ['5', 0], '22'),
    ...advanced('13'),
    ...advanced('17', ['11', 0], '12', ['5', 0], '23'),
  };
  const out = await run(nodes, { cfg1: ['20', 0], basic: ['22', 0], cfg: ['21', 0], dual: ['23', 0] });
  assert.equal(maxAbsDiff(out.basic!, out.cfg1!), 0, 'BasicGuider = SamplerCustom at cfg 1');
  assert.ok(maxAbsDiff(out.dual!, out.cfg!) < 1e-3, `DualCFGGuider reduces to CFG: ${maxAbsDiff(out.dual!, out.cfg!)}`);
  assert.ok(maxAbsDiff(out.cfg!, out.basic!) > 1e-2, 'and guidance matters');
});

test('the scheduler nodes give their formulas; FlipSigmas reverses and lifts a leading 0', { skip: noModel }, async () => {
  await registry();
  const prompt: ApiPrompt = {
    '1': { class_type: 'KarrasScheduler', inputs: { steps: 5, sigma_max: 14.614642, sigma_min: 0.0291675, rho: 7 } },
    '2': { class_type: 'ExponentialScheduler', inputs: { steps: 3, sigma_max: 10, sigma_min: 0.1 } },
    '3': { class_type: 'FlipSigmas', inputs: { sigmas: ['2', 0] } },
    '4': { class_type: 'TestKeepSigmas', inputs: { sigmas: ['1', 0], key: 'karras' } },
    '5': { class_type: 'TestKeepSigmas', inputs: { sigmas: ['2', 0], key: 'exp' } },
    '6': { class_type: 'TestKeepSigmas', inputs: { sigmas: ['3', 0], key: 'flip' } },
  };
  const { result } = await validateAndRun(prompt);
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  assert.deepEqual(keptSigmas.get('karras'), karrasSigmas(5, 0.0291675, 14.614642, 7).map(Math.fround));
  assert.deepEqual(keptSigmas.get('exp'), [10, 1, 0.1, 0].map(Math.fround));
  assert.deepEqual(keptSigmas.get('flip'), [0.0001, 0.1, 1, 10].map(Math.fround));
});

test('TGATE on the MODEL works through SamplerCustomAdvanced: it changes the image, and a gate past the end changes nothing', { skip: noModel }, async () => {
  const gate = (step: number): Nodes => ({
    '30': { class_type: 'GateSchedule', inputs: { gate_step: step, gate_fraction: 0.4, sp_interval: 5, fi_interval: 1, warm_up: 2, after_gate_branch: 'uncond' } },
    '31': { class_type: 'CacheCrossAttn', inputs: { model: ['4', 0], schedule: ['30', 0] } },
    '32': { class_type: 'CFGGuider', inputs: { model: ['31', 0], positive: ['6', 0], negative: ['7', 0], cfg: 6 } },
  });
  const early = await run({ ...parts('heun'), ...gate(3), ...advanced('13'), ...advanced('32', ['11', 0], '12', ['5', 0], '22') }, { plain: ['21', 0], gated: ['22', 0] });
  assert.ok(maxAbsDiff(early.gated!, early.plain!) > 1e-4, 'TGATE at step 3 changes the result');
  const late = await run({ ...parts('heun'), ...gate(100), ...advanced('13'), ...advanced('32', ['11', 0], '12', ['5', 0], '22') }, { plain: ['21', 0], gated: ['22', 0] });
  assert.equal(maxAbsDiff(late.gated!, late.plain!), 0, 'a gate after the last step is the plain run');
});
