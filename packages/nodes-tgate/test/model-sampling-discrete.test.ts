// ModelSamplingDiscrete on the embedded model (an eps model): eps changes nothing, bit for bit, on both sampling
// paths; v_prediction and x0 change the image; lcm samples on LCM's 50 levels; TGATE on such a MODEL still works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ApiPrompt } from '@gategraph/core';
import { distilledNoiseLevels, maxAbsDiff, noiseLevels, resolveSchedulerConfig, scheduleSigmas, type Tensor } from '@gategraph/diffusion';
import { keepingGraph, latentKeeper, noModel, packRegistry, runKeeping, runUnvalidated, sigmasKeeper } from './helpers.ts';

const keeper = latentKeeper('TestKeepLatentModelSampling');
const KeepLatent = keeper.node;
const { kept: keptSigmas, node: KeepSigmas } = sigmasKeeper('TestKeepSigmasModelSampling');

async function registry() {
  const r = await packRegistry();
  if (!r.has(KeepLatent.id)) {
    r.register(KeepLatent, { pack: 'test' });
    r.register(KeepSigmas, { pack: 'test' });
  }
  return r;
}

type Nodes = ApiPrompt;

const graph = (nodes: Nodes, keep: Record<string, [string, number]>): ApiPrompt => keepingGraph(KeepLatent.id, nodes, keep);

async function run(nodes: Nodes, keep: Record<string, [string, number]>): Promise<Record<string, Tensor>> {
  await registry();
  return runKeeping(keeper, nodes, keep);
}

const sampling = (id: string, mode: string, zsnr = false, model: [string, number] = ['4', 0]): Nodes => ({
  [id]: { class_type: 'ModelSamplingDiscrete', inputs: { model, sampling: mode, zsnr } },
});
const ksampler = (id: string, model: [string, number], sampler: string, scheduler = 'normal', steps = 6, cfg = 6): Nodes => ({
  [id]: { class_type: 'KSampler', inputs: { model, seed: 7, steps, cfg, sampler_name: sampler, scheduler, positive: ['6', 0], negative: ['7', 0], latent_image: ['5', 0], denoise: 1 } },
});
const finite = (t: Tensor) => t.data.every(Number.isFinite);

test('ModelSamplingDiscrete: its inputs and defaults are ComfyUI\'s', async () => {
  const def = (await registry()).get('ModelSamplingDiscrete')!;
  assert.deepEqual(Object.keys(def.inputs), ['model', 'sampling', 'zsnr']);
  assert.deepEqual((def.inputs.sampling as { options: readonly string[] }).options, ['eps', 'v_prediction', 'lcm', 'x0', 'img_to_img']);
  assert.equal((def.inputs.zsnr as { default: boolean }).default, false);
  assert.equal(def.category, 'advanced/model');
});

test('eps on an eps model changes nothing, bit for bit: the engine\'s euler, a k-diffusion sampler, custom sampling', { skip: noModel }, async () => {
  const out = await run(
    {
      ...sampling('10', 'eps'),
      ...ksampler('20', ['4', 0], 'euler'),
      ...ksampler('21', ['10', 0], 'euler'),
      ...ksampler('22', ['4', 0], 'heun'),
      ...ksampler('23', ['10', 0], 'heun'),
      '30': { class_type: 'KSamplerSelect', inputs: { sampler_name: 'dpmpp_2m' } },
      '31': { class_type: 'BasicScheduler', inputs: { model: ['10', 0], scheduler: 'karras', steps: 5, denoise: 1 } },
      '32': { class_type: 'BasicScheduler', inputs: { model: ['4', 0], scheduler: 'karras', steps: 5, denoise: 1 } },
      '33': { class_type: 'SamplerCustom', inputs: { model: ['10', 0], add_noise: true, noise_seed: 7, cfg: 6, positive: ['6', 0], negative: ['7', 0], sampler: ['30', 0], sigmas: ['31', 0], latent_image: ['5', 0] } },
      '34': { class_type: 'SamplerCustom', inputs: { model: ['4', 0], add_noise: true, noise_seed: 7, cfg: 6, positive: ['6', 0], negative: ['7', 0], sampler: ['30', 0], sigmas: ['32', 0], latent_image: ['5', 0] } },
    },
    { plain: ['20', 0], eps: ['21', 0], plainHeun: ['22', 0], epsHeun: ['23', 0], custom: ['33', 0], plainCustom: ['34', 0] },
  );
  assert.deepEqual(out.eps!.data, out.plain!.data);
  assert.deepEqual(out.epsHeun!.data, out.plainHeun!.data);
  assert.deepEqual(out.custom!.data, out.plainCustom!.data);
});

test('v_prediction and x0 on an eps model change the image, on the scheduler path and the k-diffusion path', { skip: noModel }, async () => {
  const out = await run(
    {
      ...sampling('10', 'v_prediction'),
      ...sampling('11', 'x0'),
      ...sampling('12', 'img_to_img'),
      ...sampling('13', 'v_prediction', true),
      ...ksampler('20', ['4', 0], 'euler'),
      ...ksampler('21', ['10', 0], 'euler'),
      ...ksampler('22', ['4', 0], 'dpmpp_2m_sde'),
      ...ksampler('23', ['10', 0], 'dpmpp_2m_sde'),
      ...ksampler('24', ['11', 0], 'euler'),
      ...ksampler('25', ['12', 0], 'euler'),
      ...ksampler('26', ['13', 0], 'euler'),
      '27': {
        class_type: 'KSamplerAdvanced',
        inputs: { model: ['10', 0], add_noise: 'enable', noise_seed: 7, steps: 6, cfg: 6, sampler_name: 'euler', scheduler: 'normal', positive: ['6', 0], negative: ['7', 0], latent_image: ['5', 0], start_at_step: 0, end_at_step: 10000, return_with_leftover_noise: 'disable' },
      },
    },
    { plain: ['20', 0], v: ['21', 0], plainSde: ['22', 0], vSde: ['23', 0], x0: ['24', 0], img: ['25', 0], zsnr: ['26', 0], advanced: ['27', 0] },
  );
  assert.deepEqual(out.advanced!.data, out.v!.data, 'KSamplerAdvanced samples the override as KSampler does');
  for (const [key, like] of [['v', 'plain'], ['vSde', 'plainSde'], ['x0', 'plain'], ['img', 'plain'], ['zsnr', 'v']] as const) {
    assert.ok(finite(out[key]!), `${key}: finite`);
    assert.ok(maxAbsDiff(out[key]!, out[like]!) > 1e-3, `${key} differs from ${like}`);
  }
  // img_to_img reads the output as x0 does; it differs in the UNet's input, which is not rescaled by the noise level.
  assert.ok(maxAbsDiff(out.x0!, out.img!) > 1e-3, 'img_to_img feeds the UNet the unscaled sample');
});

test('lcm: LCM\'s 50 levels for BasicScheduler and the lcm sampler, which runs as ComfyUI\'s k-diffusion function', { skip: noModel }, async () => {
  const out = await run(
    {
      ...sampling('10', 'lcm'),
      ...ksampler('20', ['10', 0], 'lcm', 'sgm_uniform', 4, 1),
      ...ksampler('21', ['4', 0], 'lcm', 'sgm_uniform', 4, 1),
      '30': { class_type: 'BasicScheduler', inputs: { model: ['10', 0], scheduler: 'normal', steps: 4, denoise: 1 } },
      '31': { class_type: KeepSigmas.id, inputs: { sigmas: ['30', 0], key: 'lcm' } },
    },
    { lcm: ['20', 0], plain: ['21', 0] },
  );
  assert.ok(finite(out.lcm!));
  assert.ok(maxAbsDiff(out.lcm!, out.plain!) > 1e-3, 'the distilled levels and boundary condition change the run');
  const levels = distilledNoiseLevels(noiseLevels(resolveSchedulerConfig({})));
  assert.deepEqual(keptSigmas.get('lcm'), scheduleSigmas('normal', levels, 4).map(Math.fround));
  // ComfyUI's numbers for this schedule (ModelSamplingDiscreteDistilled + normal_scheduler, float32).
  keptSigmas.get('lcm')!.forEach((s, i) => assert.ok(Math.abs(s - [14.61464, 2.991056, 0.9728259, 0.1344507, 0][i]!) < 1e-5, `sigma ${i}: ${s}`));
});

test('eps or lcm with zsnr is refused on the zsnr input, with the reason', { skip: noModel }, async () => {
  await registry();
  const prompt = graph({ ...sampling('10', 'eps', true), ...ksampler('20', ['10', 0], 'euler') }, { x: ['20', 0] });
  const { result } = await runUnvalidated(prompt, ['90']);
  assert.equal(result.status, 'error');
  assert.match(JSON.stringify(result.error), /zsnr.*epsilon prediction cannot recover/);
});

test('TGATE on a ModelSamplingDiscrete MODEL: both apply, in either order', { skip: noModel }, async () => {
  const gate = { '40': { class_type: 'GateSchedule', inputs: { gate_step: 3, gate_fraction: 0.4, sp_interval: 5, fi_interval: 1, warm_up: 0, after_gate_branch: 'uncond' } } };
  const out = await run(
    {
      ...gate,
      ...sampling('10', 'v_prediction'),
      '41': { class_type: 'CacheCrossAttn', inputs: { model: ['10', 0], schedule: ['40', 0] } },
      '42': { class_type: 'CacheCrossAttn', inputs: { model: ['4', 0], schedule: ['40', 0] } },
      ...sampling('11', 'v_prediction', false, ['42', 0]),
      ...ksampler('20', ['10', 0], 'euler'),
      ...ksampler('21', ['41', 0], 'euler'),
      ...ksampler('22', ['11', 0], 'euler'),
      ...ksampler('23', ['42', 0], 'euler'),
    },
    { v: ['20', 0], vGated: ['21', 0], gatedV: ['22', 0], gated: ['23', 0] },
  );
  assert.ok(maxAbsDiff(out.vGated!, out.v!) > 1e-4, 'TGATE changes the v run');
  assert.ok(maxAbsDiff(out.vGated!, out.gated!) > 1e-3, 'the override reaches the gated run');
  assert.deepEqual(out.gatedV!.data, out.vGated!.data, 'the order of the two nodes does not matter');
});
