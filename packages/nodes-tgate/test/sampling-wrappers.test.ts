// A pack outside the workspace adds its own sampling wrapper and it composes with TGATE: the pack is written into
// a temporary custom_nodes/ folder (no node_modules anywhere above it), loaded by the real host, and imports
// @gategraph/core and @gategraph/diffusion (the sampling-extension service) through the host's resolve hook.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createHost, Executor, silentLogger, validatePrompt, type ApiPrompt, type NodeRegistry } from '@gategraph/core';
import { maxAbsDiff, type Tensor } from '@gategraph/diffusion';
import { defaultPrompt, host, latentKeeper, noModel, repoRoot } from './helpers.ts';

// The pack, as a user would write it: a node that adds a patch of its own kind, and the extension for that kind.
// Its wrappers record every UNet call (step, variant, rows) and move each step's clean-latent estimate toward
// zero by `factor` (a post-CFG change in ComfyUI's `denoised` terms), so its effect is in the result.
const PACK_SOURCE = `
import { defineNode, definePack, float, socket } from '@gategraph/core';
import { samplingExtensions, times } from '@gategraph/diffusion';

const KIND = 'outside-pack-denoised-scale';
export const calls = [];

samplingExtensions().register({
  owner: 'outside-pack',
  kinds: [KIND],
  wrap(patches) {
    const factor = patches.reduce((f, p) => f * p.settings.factor, 1);
    return {
      async unet(next, call) {
        calls.push({ step: call.context.step, variant: call.variant, rows: call.rows });
        return next(call);
      },
      async prediction(next, call) {
        const prediction = await next(call);
        return factor === 1 ? prediction : call.fromDenoised(times(call.toDenoised(prediction), factor));
      },
    };
  },
});

const ScaleDenoised = defineNode({
  id: 'OutsideScaleDenoised',
  category: 'tests',
  inputs: { model: socket('MODEL'), factor: float({ default: 1, min: 0, max: 2, step: 0.01 }) },
  outputs: [{ type: 'MODEL' }],
  execute({ model, factor }, ctx) {
    return [model.withPatch({ kind: KIND, settings: { factor }, nodeId: ctx.nodeId, describe: () => 'scale denoised by ' + factor })];
  },
});

export default definePack({ name: 'outside-pack', nodes: [ScaleDenoised] });
`;

const customNodes = mkdtempSync(join(tmpdir(), 'gategraph-outside-pack-'));
process.on('exit', () => rmSync(customNodes, { recursive: true, force: true }));
const packDir = join(customNodes, 'outside-pack');
mkdirSync(packDir);
writeFileSync(join(packDir, 'package.json'), JSON.stringify({ name: 'outside-pack', type: 'module', main: 'index.ts' }));
writeFileSync(join(packDir, 'index.ts'), PACK_SOURCE);

const { kept, node: KeepLatent } = latentKeeper('TestKeepLatentWrappers');

let registry: NodeRegistry;
let calls: { step: number; variant: string; rows: number }[];

before(async () => {
  const loaded = await createHost({ root: repoRoot, customNodesDir: customNodes, paths: host.paths });
  assert.deepEqual(loaded.packs.failed, [], 'every pack loads');
  assert.deepEqual(
    loaded.packs.loaded.map((p) => p.name),
    ['nodes-tgate', 'outside-pack'],
  );
  registry = loaded.registry;
  registry.register(KeepLatent, { pack: 'test' });
  // The same module the host imported: its record of UNet calls.
  ({ calls } = (await import(pathToFileURL(join(packDir, 'index.ts')).href)) as { calls: typeof calls });
});

const GATE = 10;
const STEPS = 25;
const tgate = (model: [string, number]) => ({
  '20': { class_type: 'GateSchedule', inputs: { gate_step: GATE, gate_fraction: 0.4, sp_interval: 5, fi_interval: 1, warm_up: 2, after_gate_branch: 'uncond' } },
  '21': { class_type: 'CacheCrossAttn', inputs: { model, schedule: ['20', 0] } },
});
const scale = (id: string, model: [string, number], factor: number) => ({ [id]: { class_type: 'OutsideScaleDenoised', inputs: { model, factor } } });

/** The default workflow's KSampler on the MODEL of node `model`, its latent kept; returns the latent and the UNet calls the pack saw. */
async function sampleWith(nodes: ApiPrompt, model: string): Promise<{ latent: Tensor; calls: typeof calls }> {
  const prompt = defaultPrompt();
  delete prompt['8'];
  delete prompt['9'];
  Object.assign(prompt, nodes);
  prompt['3']!.inputs.model = [model, 0];
  prompt['40'] = { class_type: 'TestKeepLatentWrappers', inputs: { samples: ['3', 0], key: 'out' } };
  const validation = await validatePrompt(prompt, registry, { context: { paths: host.paths } });
  assert.deepEqual(validation.nodeErrors, {}, 'the prompt should be valid');
  calls.length = 0;
  const executor = new Executor(registry, { paths: host.paths, logger: silentLogger, cache: { mode: 'none' } });
  const result = await executor.run(validation.prompt, { promptId: `wrappers-${model}`, outputs: validation.outputs });
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  return { latent: kept.get('out')!.samples, calls: [...calls] };
}

test('a custom_nodes pack\'s sampling wrapper composes with TGATE: both take effect, in either order', { skip: noModel }, async () => {
  assert.equal(STEPS, (defaultPrompt()['3']!.inputs as { steps: number }).steps);
  const plain = await sampleWith({}, '4');
  const tgateOnly = await sampleWith(tgate(['4', 0]), '21');
  const wrapperOnly = await sampleWith(scale('30', ['4', 0], 0.97), '30');
  const both = await sampleWith({ ...tgate(['4', 0]), ...scale('30', ['21', 0], 0.97) }, '30');
  const bothOtherOrder = await sampleWith({ ...scale('30', ['4', 0], 0.97), ...tgate(['30', 0]) }, '21');
  const tgateWithNeutralWrapper = await sampleWith({ ...tgate(['4', 0]), ...scale('30', ['21', 0], 1) }, '30');

  // The pack's wrapper sees the UNet calls as the plain sampler makes them: 25 calls of [uncond, cond].
  assert.equal(plain.calls.length, 0, 'no patch of the pack, no wrapper');
  assert.deepEqual(wrapperOnly.calls.map((c) => [c.rows, c.variant]), Array.from({ length: STEPS }, () => [2, 'full']));
  // With TGATE, it sees TGATE's pattern: [uncond, cond] up to the gate, one branch on a cached variant after.
  const pattern = (calls: typeof both.calls) => calls.map((c) => c.rows);
  const tgatePattern = Array.from({ length: STEPS }, (_, step) => (step < GATE ? 2 : 1));
  assert.deepEqual(pattern(both.calls), tgatePattern, 'TGATE drops CFG from the gate on, under the pack\'s wrapper');
  assert.deepEqual(pattern(bothOtherOrder.calls), tgatePattern);
  assert.ok(both.calls.slice(GATE).every((c) => c.variant !== 'full'), 'after the gate the cached (reuse) variant runs');

  // A neutral wrapper leaves TGATE's result exactly as it is: the chain adds nothing of its own.
  assert.deepEqual(tgateWithNeutralWrapper.latent.data, tgateOnly.latent.data);
  // Each change is in the combined result: it differs from TGATE alone (the wrapper) and from the wrapper alone (TGATE).
  const d = (a: Tensor, b: Tensor) => maxAbsDiff(a, b);
  assert.ok(d(tgateOnly.latent, plain.latent) > 1e-3, 'TGATE changes the plain result');
  assert.ok(d(wrapperOnly.latent, plain.latent) > 1e-3, 'the wrapper changes the plain result');
  assert.ok(d(both.latent, tgateOnly.latent) > 1e-3, `the wrapper's change is in the combined result (${d(both.latent, tgateOnly.latent)})`);
  assert.ok(d(both.latent, wrapperOnly.latent) > 1e-3, `TGATE's change is in the combined result (${d(both.latent, wrapperOnly.latent)})`);
  // The two act at different points of the chain (TGATE around the run, the pack around calls and predictions),
  // so the order the nodes were applied in does not change the image.
  assert.deepEqual(bothOtherOrder.latent.data, both.latent.data);
});

test('a patch kind a second pack claims again is refused, naming both owners', async () => {
  const { samplingExtensions } = await import('@gategraph/diffusion');
  assert.throws(
    () => samplingExtensions().register({ owner: 'another-pack', kinds: ['outside-pack-denoised-scale'], wrap: () => ({}) }),
    /Patch kind "outside-pack-denoised-scale" is already handled by a sampling extension of outside-pack; another-pack cannot register it too/,
  );
});
