// KSamplerAdvanced on the embedded model: ComfyUI's step window, add_noise and leftover noise, checked against
// plain KSampler runs of the same seed (the reference a user compares with).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ApiPrompt } from '@gategraph/core';
import { decodePng } from '@gategraph/diffusion';
import { defaultPrompt, host, noModel, savedImages, validateAndRun } from './helpers.ts';

type Window = { add_noise: 'enable' | 'disable'; start_at_step: number; end_at_step: number; return_with_leftover_noise: 'enable' | 'disable' };

function advancedInputs(base: ApiPrompt, latent: [string, number], w: Window): ApiPrompt[string]['inputs'] {
  const k = base['3']!.inputs;
  return {
    model: k.model, positive: k.positive, negative: k.negative, latent_image: latent,
    noise_seed: k.seed, steps: k.steps, cfg: k.cfg, sampler_name: k.sampler_name, scheduler: k.scheduler, ...w,
  };
}

/** The default workflow with its KSampler replaced by one KSamplerAdvanced, or by two chained ones. */
function withStages(sampler: string, prefix: string, stages: Window[]): ApiPrompt {
  const prompt = defaultPrompt();
  prompt['3']!.inputs.sampler_name = sampler;
  const base = structuredClone(prompt);
  let latent: [string, number] = ['5', 0];
  stages.forEach((w, i) => {
    const id = i === 0 ? '3' : `3${i}`;
    prompt[id] = { class_type: 'KSamplerAdvanced', inputs: advancedInputs(base, latent, w) };
    latent = [id, 0];
  });
  prompt['8']!.inputs.samples = latent;
  prompt['9']!.inputs.filename_prefix = prefix;
  return prompt;
}

function plain(sampler: string, prefix: string, steps?: number): ApiPrompt {
  const prompt = defaultPrompt();
  prompt['3']!.inputs.sampler_name = sampler;
  if (steps !== undefined) prompt['3']!.inputs.steps = steps;
  prompt['9']!.inputs.filename_prefix = prefix;
  return prompt;
}

async function imageOf(prompt: ApiPrompt): Promise<{ pixels: Uint8Array; steps: Record<string, number> }> {
  const { result, events } = await validateAndRun(prompt);
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  const [file] = savedImages(result);
  const steps: Record<string, number> = {};
  for (const e of events) if (e.type === 'progress') steps[String(e.data.node)] = (steps[String(e.data.node)] ?? 0) + 1;
  return { pixels: decodePng(readFileSync(join(host.paths.output, file!.filename))).data, steps };
}

function maxDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length, 'same image size');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const FULL: Window = { add_noise: 'enable', start_at_step: 0, end_at_step: 10000, return_with_leftover_noise: 'disable' };

test('KSamplerAdvanced with its default window is KSampler: same seed, same image bytes', { skip: noModel }, async () => {
  const reference = await imageOf(plain('ddim', 'adv-ref'));
  const advanced = await imageOf(withStages('ddim', 'adv-full', [FULL]));
  assert.equal(maxDiff(advanced.pixels, reference.pixels), 0);
  assert.equal(advanced.steps['3'], 25, '25 progress steps');
});

for (const sampler of ['euler', 'ddim']) {
  test(`${sampler}: steps 0-10 with leftover noise, then 10-25 with add_noise off, equals one 25-step run`, { skip: noModel }, async () => {
    const reference = await imageOf(plain(sampler, `chain-ref-${sampler}`));
    const chained = await imageOf(withStages(sampler, `chain-${sampler}`, [
      { add_noise: 'enable', start_at_step: 0, end_at_step: 10, return_with_leftover_noise: 'enable' },
      { add_noise: 'disable', start_at_step: 10, end_at_step: 10000, return_with_leftover_noise: 'disable' },
    ]));
    assert.deepEqual([chained.steps['3'], chained.steps['31']], [10, 15], 'the two stages split the 25 steps');
    // euler is stateless: bit-identical. ddim works in variance-preserving units and converts the hand-over
    // latent (x / sqrt(abar), then back): float rounding may move a pixel by one level.
    assert.ok(maxDiff(chained.pixels, reference.pixels) <= (sampler === 'euler' ? 0 : 1), `${sampler}: chained image differs from the one-shot run`);

    const cut = await imageOf(withStages(sampler, `cut-${sampler}`, [{ ...FULL, end_at_step: 10 }]));
    assert.equal(cut.steps['3'], 10);
    assert.ok(maxDiff(cut.pixels, chained.pixels) > 8, 'stopping at step 10 fully denoised is a different (coarser) image than running on');
  });
}

test('a window starting at or past the last step passes the latent through without sampling', { skip: noModel }, async () => {
  const passed = await imageOf(withStages('euler', 'adv-skip', [{ ...FULL, start_at_step: 25 }]));
  assert.equal(passed.steps['3'] ?? 0, 0, 'no step ran');
  const empty = await imageOf(withStages('euler', 'adv-empty', [{ ...FULL, start_at_step: 0, end_at_step: 0 }]));
  assert.equal(empty.steps['3'] ?? 0, 0, 'an empty window runs nothing either');
  assert.equal(maxDiff(passed.pixels, empty.pixels), 0, 'both decode the untouched empty latent');
});
