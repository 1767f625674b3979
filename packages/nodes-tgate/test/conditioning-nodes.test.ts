// ComfyUI's conditioning nodes on the embedded model: combined prompts, areas, masks, strengths and timestep
// ranges, checked against the single-prompt runs they must reduce to, and against each other.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ApiPrompt } from '@gategraph/core';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { testCheckpoints } from '../../diffusion/test/fixtures/test-checkpoints.ts';
import { join } from 'node:path';
import { encodePng, maxAbsDiff, type Tensor } from '@gategraph/diffusion';
import { defaultPrompt, host, latentKeeper, noModel, packRegistry, validateAndRun } from './helpers.ts';

const { kept, node: KeepLatent } = latentKeeper('TestKeepLatentConditioning');

async function registry() {
  const r = await packRegistry();
  if (!r.has(KeepLatent.id)) r.register(KeepLatent, { pack: 'test' });
  return r;
}

type Nodes = Record<string, { class_type: string; inputs: Record<string, unknown> }>;

const OTHER_PROMPT = 'a small blue square at the bottom right on a white background';

/**
 * The default workflow (its positive prompt is node 6) with extra nodes and the sampler's positive input taken
 * from `positive`; the latent kept under `key`. Node 60 encodes a second prompt.
 */
function variant(key: string, nodes: Nodes, positive: string, sampler: Record<string, unknown> = {}): ApiPrompt {
  const prompt = defaultPrompt();
  delete prompt['8'];
  delete prompt['9'];
  prompt['60'] = { class_type: 'CLIPTextEncode', inputs: { clip: ['4', 1], text: OTHER_PROMPT } };
  Object.assign(prompt, nodes);
  Object.assign(prompt['3']!.inputs, { positive: [positive, 0], steps: 8, ...sampler });
  prompt['99'] = { class_type: KeepLatent.id, inputs: { samples: ['3', 0], key } };
  return prompt;
}

async function latentOf(key: string, nodes: Nodes, positive: string, sampler?: Record<string, unknown>, ckpt?: string): Promise<Tensor> {
  await registry();
  const prompt = variant(key, nodes, positive, sampler);
  if (ckpt) {
    prompt['4']!.inputs.ckpt_name = ckpt;
    Object.assign(prompt['5']!.inputs, { width: 64, height: 64 });
  }
  const { result } = await validateAndRun(prompt);
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  return kept.get(key)!.samples;
}

/** Batched calls may round differently from the plain path's: equal within float noise of the UNet. */
const SAME = 1e-3;
const DIFFERENT = 0.05;

test('a prompt combined with itself, or with a prompt that never applies, samples as the prompt alone', { skip: noModel }, async () => {
  const alone = await latentOf('alone', {}, '6');
  const twice = await latentOf('twice', { '61': { class_type: 'ConditioningCombine', inputs: { conditioning_1: ['6', 0], conditioning_2: ['6', 0] } } }, '61');
  assert.ok(maxAbsDiff(twice, alone) < SAME, `combined with itself: ${maxAbsDiff(twice, alone)}`);

  // A second prompt whose timestep range is empty (it starts at the end) takes no part.
  const never = await latentOf(
    'never',
    {
      '62': { class_type: 'ConditioningSetTimestepRange', inputs: { conditioning: ['60', 0], start: 1.0, end: 1.0 } },
      '61': { class_type: 'ConditioningCombine', inputs: { conditioning_1: ['6', 0], conditioning_2: ['62', 0] } },
    },
    '61',
  );
  assert.ok(maxAbsDiff(never, alone) < SAME, `a prompt out of its range: ${maxAbsDiff(never, alone)}`);

  // A whole-image area (no feathering: every edge is on the border) at strength 3 beside itself: the weights cancel.
  const area = await latentOf(
    'whole-area',
    {
      '62': { class_type: 'ConditioningSetArea', inputs: { conditioning: ['6', 0], width: 64, height: 64, x: 0, y: 0, strength: 3 } },
      '61': { class_type: 'ConditioningCombine', inputs: { conditioning_1: ['6', 0], conditioning_2: ['62', 0] } },
    },
    '61',
  );
  assert.ok(maxAbsDiff(area, alone) < SAME, `a whole-image area of the same prompt: ${maxAbsDiff(area, alone)}`);

  // A mask of zeros (LoadImage's MASK of an image without alpha) gives the second prompt no weight anywhere,
  // also with "mask bounds".
  const rgb = new Uint8Array(64 * 64 * 3).fill(128);
  writeFileSync(join(host.paths.input, 'opaque.png'), encodePng({ width: 64, height: 64, channels: 3, data: rgb }));
  for (const bounds of ['default']) {
    const masked = await latentOf(
      `zero-mask-${bounds}`,
      {
        '63': { class_type: 'LoadImage', inputs: { image: 'opaque.png' } },
        '62': { class_type: 'ConditioningSetMask', inputs: { conditioning: ['60', 0], mask: ['63', 1], strength: 1, set_cond_area: bounds } },
        '61': { class_type: 'ConditioningCombine', inputs: { conditioning_1: ['6', 0], conditioning_2: ['62', 0] } },
      },
      '61',
    );
    assert.ok(maxAbsDiff(masked, alone) < SAME, `a prompt masked out (${bounds}): ${maxAbsDiff(masked, alone)}`);
  }
});

test('two prompts combined, and a prompt switched half-way, each change the image; averaging at 1 and 0 gives each prompt', { skip: noModel }, async () => {
  const alone = await latentOf('a', {}, '6');
  const other = await latentOf('b', {}, '60');
  const both = await latentOf('a+b', { '61': { class_type: 'ConditioningCombine', inputs: { conditioning_1: ['6', 0], conditioning_2: ['60', 0] } } }, '61');
  assert.ok(maxAbsDiff(both, alone) > DIFFERENT && maxAbsDiff(both, other) > DIFFERENT, 'combining two prompts gives neither alone');

  const switched = await latentOf(
    'switched',
    {
      '62': { class_type: 'ConditioningSetTimestepRange', inputs: { conditioning: ['6', 0], start: 0, end: 0.5 } },
      '63': { class_type: 'ConditioningSetTimestepRange', inputs: { conditioning: ['60', 0], start: 0.5, end: 1 } },
      '61': { class_type: 'ConditioningCombine', inputs: { conditioning_1: ['62', 0], conditioning_2: ['63', 0] } },
    },
    '61',
  );
  assert.ok(maxAbsDiff(switched, alone) > DIFFERENT && maxAbsDiff(switched, other) > DIFFERENT, 'switching prompts half-way gives neither alone');

  const toA = await latentOf('avg-1', { '61': { class_type: 'ConditioningAverage', inputs: { conditioning_to: ['6', 0], conditioning_from: ['60', 0], conditioning_to_strength: 1 } } }, '61');
  assert.equal(maxAbsDiff(toA, alone), 0, 'average at strength 1 is conditioning_to');
  const toB = await latentOf('avg-0', { '61': { class_type: 'ConditioningAverage', inputs: { conditioning_to: ['6', 0], conditioning_from: ['60', 0], conditioning_to_strength: 0 } } }, '61');
  assert.equal(maxAbsDiff(toB, other), 0, 'average at strength 0 is conditioning_from');
});

test('an area on a UNet exported for one size is refused on the sampler\'s input, saying why', { skip: noModel }, async () => {
  await registry();
  const { result } = await validateAndRun(
    variant('fixed-size-area', {
      '62': { class_type: 'ConditioningSetAreaPercentage', inputs: { conditioning: ['60', 0], width: 0.5, height: 1, x: 0, y: 0, strength: 1 } },
      '61': { class_type: 'ConditioningCombine', inputs: { conditioning_1: ['6', 0], conditioning_2: ['62', 0] } },
    }, '61'),
  );
  assert.equal(result.error?.node_id, '3');
  assert.equal(result.error?.exception_type, 'NodeInputError');
  assert.match(result.error?.message ?? '', /^positive: a conditioning area .* tiny-sd's UNet was exported for 64x64 images only/);
});

/** sd15-small (tools/test-checkpoints: SD-1.5's layout, random weights): a UNet that runs at any size, so areas run on crops. */
const SMALL = 'sd15-small.safetensors';
before(() => {
  mkdirSync(join(host.paths.models, 'checkpoints'), { recursive: true });
  const link = join(host.paths.models, 'checkpoints', SMALL);
  if (!existsSync(link)) symlinkSync(join(testCheckpoints(), SMALL), link);
});

test('areas run the UNet on their crop: a left-half prompt changes the left half more; a mask\'s bounds with no weight change nothing', async () => {
  const alone = await latentOf('small-alone', {}, '6', {}, SMALL);
  // The second prompt on the left half only: the right half's latent stays nearer the first prompt's.
  const leftArea = await latentOf(
    'small-left-area',
    {
      '62': { class_type: 'ConditioningSetAreaPercentage', inputs: { conditioning: ['60', 0], width: 0.5, height: 1, x: 0, y: 0, strength: 1 } },
      '61': { class_type: 'ConditioningCombine', inputs: { conditioning_1: ['6', 0], conditioning_2: ['62', 0] } },
    },
    '61',
    {},
    SMALL,
  );
  const [, C, h, w] = alone.shape as [number, number, number, number];
  const halfDiff = (a: Tensor, b: Tensor, left: boolean) => {
    let sum = 0;
    for (let c = 0; c < C; c++) for (let y = 0; y < h; y++) for (let x = left ? 0 : w / 2; x < (left ? w / 2 : w); x++) sum += Math.abs(a.data[(c * h + y) * w + x]! - b.data[(c * h + y) * w + x]!);
    return sum;
  };
  assert.ok(halfDiff(leftArea, alone, true) > halfDiff(leftArea, alone, false), 'the area changes its own half more than the other');

  const rgb = new Uint8Array(64 * 64 * 3).fill(128);
  writeFileSync(join(host.paths.input, 'opaque64.png'), encodePng({ width: 64, height: 64, channels: 3, data: rgb }));
  const bounded = await latentOf(
    'small-zero-mask-bounds',
    {
      '63': { class_type: 'LoadImage', inputs: { image: 'opaque64.png' } },
      '62': { class_type: 'ConditioningSetMask', inputs: { conditioning: ['60', 0], mask: ['63', 1], strength: 1, set_cond_area: 'mask bounds' } },
      '61': { class_type: 'ConditioningCombine', inputs: { conditioning_1: ['6', 0], conditioning_2: ['62', 0] } },
    },
    '61',
    {},
    SMALL,
  );
  assert.ok(maxAbsDiff(bounded, alone) < SAME, `a prompt masked out on its bounds: ${maxAbsDiff(bounded, alone)}`);
});

test('ConditioningZeroOut gives zeros', { skip: noModel }, async () => {
  const registry_ = await registry();
  assert.equal(registry_.get('ConditioningZeroOut')!.category, 'advanced/conditioning');
  const zeroed = await latentOf('zero', { '61': { class_type: 'ConditioningZeroOut', inputs: { conditioning: ['6', 0] } } }, '61');
  const alone = await latentOf('a0', {}, '6');
  assert.ok(maxAbsDiff(zeroed, alone) > DIFFERENT, 'a zeroed prompt is not the prompt');
});

/** TGATE (gate at `gate`) + DeepCache on the MODEL of the sampler, for the graphs above. */
function patched(gate: number, deepCache = true): Nodes {
  return {
    '20': { class_type: 'GateSchedule', inputs: { gate_step: gate, gate_fraction: 0.4, sp_interval: 5, fi_interval: 1, warm_up: 2, after_gate_branch: 'uncond' } },
    '21': { class_type: 'CacheCrossAttn', inputs: { model: ['4', 0], schedule: ['20', 0] } },
    ...(deepCache ? { '22': { class_type: 'DeepCache', inputs: { model: ['21', 0], cache_interval: 2, cache_branch_id: 0, schedule: 'uniform', centre: 15 } } } : {}),
  };
}

test('TGATE and DeepCache run with combined prompts and areas, one cache per call group; a gate past the end and interval 1 are the plain run', async () => {
  const combined: Nodes = {
    '62': { class_type: 'ConditioningSetAreaPercentage', inputs: { conditioning: ['60', 0], width: 0.5, height: 1, x: 0, y: 0, strength: 1 } },
    '61': { class_type: 'ConditioningCombine', inputs: { conditioning_1: ['6', 0], conditioning_2: ['62', 0] } },
  };
  const plain = await latentOf('regions-plain', combined, '61', {}, SMALL);
  const gated = await latentOf('regions-gated', { ...combined, ...patched(4) }, '61', { model: ['22', 0] }, SMALL);
  assert.ok(Number.isFinite(maxAbsDiff(gated, plain)) && maxAbsDiff(gated, plain) > 1e-4, 'TGATE + DeepCache change the result');
  const off = await latentOf(
    'regions-off',
    { ...combined, ...patched(100, false), '22': { class_type: 'DeepCache', inputs: { model: ['21', 0], cache_interval: 1, cache_branch_id: 0, schedule: 'uniform', centre: 15 } } },
    '61',
    { model: ['22', 0] },
    SMALL,
  );
  assert.equal(maxAbsDiff(off, plain), 0, 'no step reuses anything: the plain run, bit for bit');
  // The embedded model: a prompt switched half-way under TGATE (a call group that appears after the gate computes).
  const switched: Nodes = {
    '62': { class_type: 'ConditioningSetTimestepRange', inputs: { conditioning: ['6', 0], start: 0, end: 0.5 } },
    '63': { class_type: 'ConditioningSetTimestepRange', inputs: { conditioning: ['60', 0], start: 0.5, end: 1 } },
    '61': { class_type: 'ConditioningCombine', inputs: { conditioning_1: ['62', 0], conditioning_2: ['63', 0] } },
  };
  const switchedPlain = await latentOf('switched-plain', switched, '61');
  const switchedGated = await latentOf('switched-gated', { ...switched, ...patched(3) }, '61', { model: ['22', 0] });
  assert.ok(switchedGated.data.every(Number.isFinite) && maxAbsDiff(switchedGated, switchedPlain) > 1e-4);
});

test('the conditioning nodes have ComfyUI\'s inputs in ComfyUI\'s order', async () => {
  const r = await registry();
  const inputs = (id: string) => Object.keys(r.get(id)!.inputs);
  assert.deepEqual(inputs('ConditioningCombine'), ['conditioning_1', 'conditioning_2']);
  assert.deepEqual(inputs('ConditioningAverage'), ['conditioning_to', 'conditioning_from', 'conditioning_to_strength']);
  assert.deepEqual(inputs('ConditioningConcat'), ['conditioning_to', 'conditioning_from']);
  assert.deepEqual(inputs('ConditioningSetArea'), ['conditioning', 'width', 'height', 'x', 'y', 'strength']);
  assert.deepEqual(inputs('ConditioningSetAreaPercentage'), ['conditioning', 'width', 'height', 'x', 'y', 'strength']);
  assert.deepEqual(inputs('ConditioningSetAreaStrength'), ['conditioning', 'strength']);
  assert.deepEqual(inputs('ConditioningSetMask'), ['conditioning', 'mask', 'strength', 'set_cond_area']);
  assert.deepEqual(inputs('ConditioningZeroOut'), ['conditioning']);
  assert.deepEqual(inputs('ConditioningSetTimestepRange'), ['conditioning', 'start', 'end']);
});
