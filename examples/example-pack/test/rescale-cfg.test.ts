// RescaleCFG, the example of a sampling wrapper: run with the sampler pack on the embedded model.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Executor, NodeRegistry, defineNode, loadPacks, silentLogger, socket, string, validatePrompt, type ApiPrompt, type HostPaths } from '@gategraph/core';
import {
  OnnxUnetRunner,
  encodePrompt,
  maxAbsDiff,
  openModelFolder,
  randn,
  sample,
  samplingExtensions,
  schedulerForKSampler,
  zeros,
  type SamplingRun,
  type SamplingWrappers,
  type Tensor,
} from '@gategraph/diffusion';
import { RESCALE_CFG } from '../src/rescale-cfg.ts';

const packRoot = dirname(dirname(fileURLToPath(import.meta.url)));
const repoRoot = dirname(dirname(packRoot));
const modelDir = join(repoRoot, 'models', 'tiny-sd');
const noModel = existsSync(join(modelDir, 'unet', 'model.onnx')) ? undefined : `no model at ${modelDir}`;

const registry = new NodeRegistry();
let paths: HostPaths;
const kept = new Map<string, Tensor>();
// Test-only: keeps the LATENT a sampler made, so the test can compare them.
const KeepLatent = defineNode({
  id: 'TestKeepLatentRescale',
  inputs: { samples: socket<{ samples: Tensor }>('LATENT'), key: string() },
  outputs: [],
  outputNode: true,
  execute({ samples, key }) {
    kept.set(key, samples.samples);
    return { ui: {} };
  },
});

before(async () => {
  // The sampler pack (loader, KSampler, TGATE) and this pack, loaded the way a host loads them.
  const report = await loadPacks({ packages: ['@gategraph/nodes-tgate', '@gategraph/example-pack'], resolveFrom: repoRoot, registry });
  assert.deepEqual(report.failed, []);
  registry.register(KeepLatent, { pack: 'test' });
  const tmp = await mkdtemp(join(tmpdir(), 'gategraph-rescale-cfg-'));
  paths = { output: join(tmp, 'output'), input: join(tmp, 'input'), temp: join(tmp, 'temp'), models: join(tmp, 'models') };
});

after(async () => {
  await rm(dirname(paths.output), { recursive: true, force: true });
});

/** Text to latent on the embedded model, each KSampler's MODEL as given; every latent kept by the sampler's id. */
function prompt(samplers: Record<string, [string, number]>, patches: ApiPrompt = {}): ApiPrompt {
  const graph: ApiPrompt = {
    ckpt: { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'tiny-sd' } },
    pos: { class_type: 'CLIPTextEncode', inputs: { text: 'a large red circle at the top left on a gray background', clip: ['ckpt', 1] } },
    neg: { class_type: 'CLIPTextEncode', inputs: { text: '', clip: ['ckpt', 1] } },
    empty: { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64, batch_size: 1 } },
    ...patches,
  };
  for (const [id, model] of Object.entries(samplers)) {
    graph[id] = {
      class_type: 'KSampler',
      inputs: { model, seed: 42, steps: 12, cfg: 7, sampler_name: 'euler', scheduler: 'normal', positive: ['pos', 0], negative: ['neg', 0], latent_image: ['empty', 0], denoise: 1 },
    };
    graph[`keep-${id}`] = { class_type: 'TestKeepLatentRescale', inputs: { samples: [id, 0], key: id } };
  }
  return graph;
}

async function run(graph: ApiPrompt): Promise<void> {
  const validation = await validatePrompt(graph, registry, { context: { paths } });
  assert.deepEqual(validation.nodeErrors, {}, 'the prompt should be valid');
  const executor = new Executor(registry, { paths, logger: silentLogger });
  const result = await executor.run(validation.prompt, { promptId: 'rescale-cfg', outputs: validation.outputs });
  assert.equal(result.status, 'success', JSON.stringify(result.error));
}

test('RescaleCFG patches the MODEL; 0 is plain CFG bit for bit, more changes the image, and it chains with TGATE', { skip: noModel }, async () => {
  kept.clear();
  await run(
    prompt(
      { plain: ['ckpt', 0], off: ['rescale0', 0], rescaled: ['rescale', 0], tgate: ['cross', 0], both: ['rescaleAfterTgate', 0] },
      {
        rescale0: { class_type: 'RescaleCFG', inputs: { model: ['ckpt', 0], multiplier: 0 } },
        rescale: { class_type: 'RescaleCFG', inputs: { model: ['ckpt', 0], multiplier: 0.7 } },
        schedule: { class_type: 'GateSchedule', inputs: { gate_step: 6, gate_fraction: 0.5, sp_interval: 5, fi_interval: 1, warm_up: 2, after_gate_branch: 'uncond' } },
        cross: { class_type: 'CacheCrossAttn', inputs: { model: ['ckpt', 0], schedule: ['schedule', 0] } },
        rescaleAfterTgate: { class_type: 'RescaleCFG', inputs: { model: ['cross', 0], multiplier: 0.7 } },
      },
    ),
  );
  const latent = (key: string) => kept.get(key)!;
  assert.deepEqual(latent('off').data, latent('plain').data);
  assert.ok(maxAbsDiff(latent('rescaled'), latent('plain')) > 1e-3);
  // The rescale acts on the guided steps before TGATE's gate; TGATE's caching on the steps after it.
  assert.ok(maxAbsDiff(latent('both'), latent('tgate')) > 1e-3, 'the rescale is in the combined result');
  assert.ok(maxAbsDiff(latent('both'), latent('rescaled')) > 1e-3, 'TGATE is in the combined result');
});

/** Per item, unbiased, as the node computes it. */
function std(t: Tensor): number {
  const n = t.data.length;
  const mean = t.data.reduce((s, v) => s + v, 0) / n;
  return Math.sqrt(t.data.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1));
}

test('at multiplier 1 every guided step\'s mix has the spread of the prompt\'s half', { skip: noModel }, async () => {
  const model = await openModelFolder(modelDir);
  try {
    const positive = (await encodePrompt(model, 'a large red circle')).hiddenStates;
    const negative = (await encodePrompt(model, '')).hiddenStates;
    const scheduler = schedulerForKSampler({ sampler_name: 'euler', scheduler: 'normal', steps: 6, denoise: 1 }, model.schedulerConfig);
    // The pack's wrappers, as the sampler gets them for a MODEL with one RescaleCFG patch.
    const patch = { kind: RESCALE_CFG, settings: { multiplier: 1 }, describe: () => 'RescaleCFG 1' };
    const [rescale] = await samplingExtensions().wrappersFor([patch], { model, steps: 6, cfg: 7, scheduler } as unknown as SamplingRun);
    const spreads: Array<[number, number]> = [];
    // An observer outside the rescale: it sees the halves going in and the rescaled mix coming out.
    const observer: SamplingWrappers = {
      async cfg(next, call) {
        const mixed = await next(call);
        spreads.push([std(call.cond), std(mixed)]);
        return mixed;
      },
    };
    const shape = [1, 4, 16, 16];
    await sample({
      unet: OnnxUnetRunner.forModel(model),
      scheduler,
      positive,
      negative,
      cfg: 7,
      latent: zeros(shape),
      noise: randn(shape, 42),
      wrappers: [observer, rescale!],
    });
    assert.equal(spreads.length, 6);
    for (const [cond, mixed] of spreads) assert.ok(Math.abs(mixed - cond) < 1e-4 * cond, `std of the mix ${mixed} = std of cond ${cond}`);
  } finally {
    await model.release();
  }
});
