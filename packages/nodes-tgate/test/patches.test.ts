import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defineNode, estimateByteSize, silentLogger, socket, string, type ApiPrompt, type ExecutionContext } from '@gategraph/core';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { encodePrompt, OnnxUnetRunner, openModelFolder, randn, sample, samplingExtensions, schedulerForKSampler, zeros, type Tensor } from '@gategraph/diffusion';
import type { ModelPatch } from '../src/patches.ts';
import type { Latent } from '../src/types.ts';
import { ClipRef, ModelRef, VaeRef } from '../src/types.ts';
import { defaultPrompt, host, noModel, packRegistry, testModelDir, validateAndRun } from './helpers.ts';

// Test-only nodes: one adds a patch to a MODEL, one keeps the LATENT it receives so the test can look at it.
const captured = new Map<string, Latent>();
const AddPatch = defineNode({
  id: 'TestAddPatch',
  inputs: { model: socket('MODEL'), kind: string({ default: 'test-plain' }) },
  outputs: [{ type: 'MODEL' }],
  execute({ model, kind }, ctx) {
    const patch: ModelPatch = { kind, settings: {}, nodeId: ctx.nodeId, describe: () => `test patch "${kind}"` };
    return [model.withPatch(patch)];
  },
});
const CaptureLatent = defineNode({
  id: 'TestCaptureLatent',
  inputs: { samples: socket('LATENT'), key: string() },
  outputs: [],
  outputNode: true,
  execute({ samples, key }) {
    captured.set(key, samples);
    return { ui: { captured: [key] } };
  },
});

// An extension for 'test-plain' patches whose `sample` wrapper installs a planner of exactly the plain steps,
// counting them.
const planned: number[] = [];
samplingExtensions().register({
  owner: 'patches.test',
  kinds: ['test-plain'],
  wrap: () => ({
    async sample(next, options) {
      try {
        return await next({
          ...options,
          planner: {
            planStep(step, ctx) {
              planned.push(step);
              return { variant: 'full', batch: ctx.defaultBatch };
            },
          },
        });
      } finally {
        planned.push(-1); // marks that the run ended and the wrapper released what it held
      }
    },
  }),
});

async function registry() {
  const r = await packRegistry();
  if (!r.has(AddPatch.id)) {
    r.register(AddPatch, { pack: 'test' });
    r.register(CaptureLatent, { pack: 'test' });
  }
  return r;
}

/** The default graph with its sampler output captured, plus a second sampler on a patched MODEL. */
function graph(kind: string): ApiPrompt {
  const prompt = defaultPrompt();
  delete prompt['8'];
  delete prompt['9'];
  prompt['10'] = { class_type: 'TestAddPatch', inputs: { model: ['4', 0], kind } };
  prompt['11'] = { class_type: 'KSampler', inputs: { ...prompt['3']!.inputs, model: ['10', 0] } };
  prompt['12'] = { class_type: 'TestCaptureLatent', inputs: { samples: ['3', 0], key: 'plain' } };
  prompt['13'] = { class_type: 'TestCaptureLatent', inputs: { samples: ['11', 0], key: 'patched' } };
  return prompt;
}

test('KSampler without patches is exactly the engine\'s plain sampling', { skip: noModel }, async () => {
  await registry();
  captured.clear();
  const { result } = await validateAndRun(graph('test-plain'));
  assert.equal(result.status, 'success', JSON.stringify(result.error));

  const inputs = defaultPrompt()['3']!.inputs as { seed: number; steps: number; cfg: number; sampler_name: string; scheduler: string };
  const model = await openModelFolder(testModelDir);
  try {
    const positive = await encodePrompt(model, defaultPrompt()['6']!.inputs.text as string);
    const negative = await encodePrompt(model, '');
    const shape = [1, 4, 16, 16];
    const expected: Tensor = (
      await sample({
        unet: OnnxUnetRunner.forModel(model),
        scheduler: schedulerForKSampler({ ...inputs, denoise: 1 }, model.schedulerConfig),
        positive: positive.hiddenStates,
        negative: negative.hiddenStates,
        cfg: inputs.cfg,
        latent: zeros(shape),
        noise: randn(shape, inputs.seed),
      })
    ).latent;
    assert.deepEqual(captured.get('plain')!.samples.shape, shape);
    assert.deepEqual(captured.get('plain')!.samples.data, expected.data, 'bit-identical to sample() with the same settings');
  } finally {
    await model.release();
  }
});

test('a patched MODEL is a new value: its patches reach their extension, the original MODEL stays plain', { skip: noModel }, async () => {
  await registry();
  captured.clear();
  planned.length = 0;
  const { result } = await validateAndRun(graph('test-plain'));
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  assert.deepEqual(planned, [...Array.from({ length: 25 }, (_, i) => i), -1], 'the planner planned the 25 steps of the patched sampler only, then the wrapper ended');
  assert.deepEqual(captured.get('patched')!.samples.data, captured.get('plain')!.samples.data, 'a plan of plain steps gives the plain result');
});

test('a patch of a kind nobody registered is a clear error on the sampler\'s model input', { skip: noModel }, async () => {
  await registry();
  const { result } = await validateAndRun(graph('mystery'));
  assert.equal(result.status, 'error');
  assert.equal(result.error?.node_id, '11');
  assert.equal(result.error?.exception_type, 'NodeInputError');
  assert.match(
    result.error?.message ?? '',
    /^model: the MODEL carries a patch of unknown kind "mystery" \(added by node #10\): test patch "mystery"\. Known patch kinds: .*test-plain.*\. Is the node pack that adds it loaded/,
  );
});

test('MODEL, CLIP and VAE handles report the size of the ONNX files they hold to the output cache', { skip: noModel }, async () => {
  const loader = (await registry()).get('CheckpointLoaderSimple')!;
  const ctx = { paths: host.paths, log: silentLogger } as unknown as ExecutionContext;
  const [model, clip, vae] = (await loader.execute({ ckpt_name: 'tiny-sd' }, ctx)) as [ModelRef, ClipRef, VaeRef];
  const size = (part: string) => statSync(join(testModelDir, part, 'model.onnx')).size;
  // The UNet runs with its attention fused (a derived graph holding the same weights): it counts that file.
  const unetBytes = statSync(model.model.unet.path).size;
  assert.equal(estimateByteSize(model), unetBytes);
  assert.ok(Math.abs(unetBytes - size('unet')) < 0.1 * size('unet'), `the fused UNet (${unetBytes} bytes) holds the exported weights (${size('unet')} bytes)`);
  assert.equal(estimateByteSize(clip), size('text_encoder'));
  assert.equal(estimateByteSize(vae), size('vae_decoder') + size('vae_encoder'));
  // A patched MODEL shares the handle: same size, not a copy of the weights.
  const patched = model.withPatch({ kind: 'test-plain', settings: {}, describe: () => 'x' });
  assert.equal(estimateByteSize(patched), unetBytes);
  assert.equal(patched.model, model.model);
  assert.deepEqual(model.patches, [], 'the original MODEL is unchanged');
  assert.ok(Object.isFrozen(patched) && Object.isFrozen(patched.patches));
});
