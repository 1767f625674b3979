// TGATE / DeepCache through the adapter (plan-stepper.ts) and the variants it runs (cached-unet.ts), on real
// onnxruntime with the test model: caches filled at a step and reused at the same step (same inputs) must
// reproduce the plain UNet's output, for cross-attention, self-attention and DeepCache's shallow branch.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { decodeModel, encodeModel, type GraphProto } from '@gategraph/onnx-graph';
import { readFileSync } from 'node:fs';
import {
  captureAttentionStepper,
  concatBatch,
  openModelFolder,
  planStepper,
  planTgate,
  prepareCachedUnet,
  randn,
  sample,
  createScheduler,
  timestepTensor,
  zeros,
  OnnxUnetRunner,
  SessionPool,
  weightFileBytes,
  CachedUnetError,
  type CachedUnet,
  type DiffusionModel,
  type ExecutionPlan,
  type PlannedStep,
  type StepContext,
  type StepPlanner,
  type StepPlan,
  meanOfHalves,
  guidanceScaleEmbedding,
  type AddedConditioning,
  type Tensor,
} from '../src/index.ts';
import { TEST_MODEL, tempDir } from './fixtures/test-model.ts';
import { fakeUnetWithoutText, writeModel } from './fixtures/onnx-builder.ts';

const skip = existsSync(join(TEST_MODEL, 'unet', 'model.onnx')) ? false : `no test model at ${TEST_MODEL} (set GATEGRAPH_TEST_MODEL)`;

let model: DiffusionModel;
/** The default preparation: every caching step on the If-gated graph. */
let cached: CachedUnet;
/** With a compute-all graph (separateComputeGraph) for the steps that compute every module. */
let withComputeAll: CachedUnet;
before(async () => {
  if (skip) return;
  model = await openModelFolder(TEST_MODEL);
  cached = await prepareCachedUnet(model, { attn2: true, attn1: true, deepBranch: 0 });
  withComputeAll = await prepareCachedUnet(model, { attn2: true, attn1: true, deepBranch: 0 }, { separateComputeGraph: true });
});
after(async () => {
  if (skip) return;
  await cached.release();
  await withComputeAll.release();
  await model.release();
});

function maxRelError(a: Tensor, b: Tensor): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.data.length; i++) {
    num = Math.max(num, Math.abs(a.data[i]! - b.data[i]!));
    den = Math.max(den, Math.abs(b.data[i]!));
  }
  return num / den;
}

const step = (i: number, over: Partial<PlannedStep>): PlannedStep => ({
  step: i,
  batch: 'cfg',
  crossAttn: 'compute',
  selfAttn: 'compute',
  cacheMode: 'as_is',
  unet: 'full',
  deepCache: 'none',
  ...over,
});
const handPlan = (steps: PlannedStep[]): ExecutionPlan => ({ kind: 'tgate+deepcache', stepCount: steps.length, guidance: 'cfg', steps, notes: [] });

/**
 * What a UNet of another family takes beside the standard inputs (GATEGRAPH_TEST_MODEL may be an LCM or an
 * inpainting export): an LCM UNet's guidance embedding, an inpainting UNet's extra channels.
 */
function samplingExtras(h: number, w: number): { timestepCond?: Tensor; concatLatent?: Tensor; added?: { positive: AddedConditioning; negative: AddedConditioning } } {
  const io = model.io.unet;
  const extra = io.sampleChannels - io.latentChannels;
  return {
    ...(io.timestepCond ? { timestepCond: guidanceScaleEmbedding(8, io.timestepCond.dim) } : {}),
    ...(extra > 0 ? { concatLatent: randn([1, extra, h, w], 12) } : {}),
    ...(io.added ? { added: { positive: addedOf(13), negative: addedOf(14) } } : {}),
  };
}

/** An SDXL UNet's text_embeds and time_ids for one prompt (random pooled text, sizes as a 1024 px image). */
function addedOf(seed: number): AddedConditioning {
  const added = model.io.unet.added!;
  const ids = added.timeIdsCount === 5 ? [1024, 1024, 0, 0, 6] : [1024, 1024, 0, 0, 1024, 1024];
  return { textEmbeds: randn([1, added.textEmbedsDim], seed), timeIds: { data: Float32Array.from(ids), shape: [1, ids.length] } };
}

/** The standard feeds of a step on fixed inputs: the latent (twice for 'cfg'), timestep 500, the texts. */
function sameFeeds(rows: number, batch: StepPlan['batch'] = rows === 2 ? 'cfg' : 'cond') {
  const io = model.io.unet;
  const [h, w] = io.fixedLatentSize ?? [16, 16];
  const latent = randn([1, io.sampleChannels, h, w], 7);
  const text = randn([1, 77, io.crossAttentionDim], 8);
  const neg = randn([1, 77, io.crossAttentionDim], 9);
  const cond = io.timestepCond ? guidanceScaleEmbedding(8, io.timestepCond.dim) : undefined;
  const added = io.added ? { pos: addedOf(13), neg: addedOf(14) } : undefined;
  const pick = (key: keyof AddedConditioning) => (batch === 'cfg' ? concatBatch([added!.neg[key], added!.pos[key]]) : batch === 'cond' ? added!.pos[key] : added!.neg[key]);
  return {
    [io.sample]: rows === 2 ? concatBatch([latent, latent]) : latent,
    [io.timestep]: timestepTensor(io, 500, rows),
    [io.encoderHiddenStates]: batch === 'cfg' ? concatBatch([neg, text]) : batch === 'cond' ? text : neg,
    ...(io.timestepCond && cond ? { [io.timestepCond.name]: rows === 2 ? concatBatch([cond, cond]) : cond } : {}),
    ...(io.added && added ? { [io.added.textEmbeds]: pick('textEmbeds'), [io.added.timeIds]: pick('timeIds') } : {}),
  };
}

/** Runs plan steps the way sample() does, but every step on the SAME latent and timestep; returns out_sample per step. */
async function runSameInputsOn(
  prepared: CachedUnet,
  planner: StepPlanner,
  steps = 1,
  seen: { plans: StepPlan[]; outputs: Record<string, Tensor>[] } = { plans: [], outputs: [] },
): Promise<Tensor[]> {
  const io = model.io.unet;
  const outs: Tensor[] = [];
  for (let i = 0; i < steps; i++) {
    const ctx: StepContext = {
      step: i, totalSteps: steps, timestep: 500, sigma: 1, cfg: 7, defaultBatch: 'cfg', hasNegative: true,
      batchSize: 1, latentShape: [1, io.latentChannels, 16, 16], variants: prepared.runner.variants,
    };
    const plan = await planner.planStep(i, ctx);
    const rows = plan.batch === 'cfg' ? 2 : 1;
    const feeds = { ...sameFeeds(rows, plan.batch), ...plan.extraInputs };
    const capture = [...(plan.captureOutputs ?? [])];
    const out = await prepared.runner.run(plan.variant, feeds, [io.outSample, ...capture]);
    outs.push(out[io.outSample]!);
    const outputs = Object.fromEntries(capture.map((n) => [n, out[n]!]));
    seen.plans.push(plan);
    seen.outputs.push(outputs);
    await planner.afterStep?.(i, { plan, outputs, modelOutput: out[io.outSample]!, context: ctx });
  }
  return outs;
}

const runSameInputs = (planner: StepPlanner, steps: number, seen?: { plans: StepPlan[]; outputs: Record<string, Tensor>[] }) =>
  runSameInputsOn(cached, planner, steps, seen);

async function plainOut(): Promise<Tensor> {
  const plainRunner: StepPlanner = { planStep: () => ({ variant: 'full', batch: 'cfg' }) };
  const [plain] = await runSameInputs(plainRunner, 1);
  return plain!;
}

test('a compute-all graph only when asked: no If nodes, the gated graph\'s module outputs', { skip }, () => {
  const { layout, files } = withComputeAll;
  assert.ok(layout.computeAll && files.computeAll && existsSync(files.computeAll));
  assert.deepEqual(layout.computeAll.conditions, {}, 'no switches');
  assert.deepEqual(layout.computeAll.gates.map((g) => g.output), layout.full.gates.map((g) => g.output));
  assert.equal(layout.computeAll.deepFeature, layout.full.deepFeature, 'and the deep feature, for DeepCache');
  assert.equal(cached.layout.computeAll, undefined);
  assert.equal(cached.files.computeAll, undefined);
  const proto = decodeModel(readFileSync(files.computeAll));
  assert.equal(proto.graph!.node.filter((n) => n.opType === 'If').length, 0);
});

for (const [design, prepared] of [['If-gated graph', () => cached], ['with a compute-all graph', () => withComputeAll]] as const) {
  test(`${design}: a step computing every module is the plain UNet`, { skip }, async () => {
    const seen = { plans: [] as StepPlan[], outputs: [] as Record<string, Tensor>[] };
    const [out] = await runSameInputsOn(prepared(), planStepper(handPlan([step(0, {})]), prepared().layout), 1, seen);
    assert.equal(seen.plans[0]!.variant, (prepared().layout.computeAll ?? prepared().layout.full).key);
    assert.ok(maxRelError(out!, await plainOut()) < 1e-6);
  });

  for (const [name, reuse] of [
    ['cross-attention (attn2)', { crossAttn: 'reuse' }],
    ['self-attention (attn1)', { selfAttn: 'reuse' }],
    ['cross- and self-attention', { crossAttn: 'reuse', selfAttn: 'reuse' }],
    ['DeepCache shallow branch', { unet: 'shallow', deepCache: 'reuse' }],
    ['DeepCache shallow branch with cross- and self-attention reused', { unet: 'shallow', deepCache: 'reuse', crossAttn: 'reuse', selfAttn: 'reuse' }],
  ] as const) {
    test(`${design}: reusing ${name} captured at the same step reproduces the full forward`, { skip }, async () => {
      const fill = step(0, { crossAttn: 'compute_cache', selfAttn: 'compute_cache', deepCache: 'refresh' });
      const outs = await runSameInputsOn(prepared(), planStepper(handPlan([fill, step(1, reuse)]), prepared().layout), 2);
      const plain = await plainOut();
      assert.ok(maxRelError(outs[0]!, plain) < 1e-6, 'the capturing step is the plain forward');
      const err = maxRelError(outs[1]!, plain);
      assert.ok(err < 1e-4, `max relative error ${err}`);
    });
  }
}

test('the gate step caches the mean of the CFG halves, which a batch-of-one step reuses', { skip }, async () => {
  // With the same text in both halves the mean is each half: the single pass must then equal the plain one.
  const gate = step(0, { crossAttn: 'compute_cache', cacheMode: 'cfg_mean' });
  const after = step(1, { batch: 'single', singleBranch: 'uncond', crossAttn: 'reuse' });
  const seen = { plans: [] as StepPlan[], outputs: [] as Record<string, Tensor>[] };
  const outs = await runSameInputs(planStepper(handPlan([gate, after]), cached.layout), 2, seen);
  assert.equal(outs[1]!.shape[0], 1, 'one row after the gate');
  const attn2 = cached.layout.full.gates.filter((g) => g.kind === 'attn2');
  assert.deepEqual(Object.keys(seen.outputs[0]!).sort(), attn2.map((g) => g.output).sort(), 'the gate step captures every attn2 output');
  for (const g of attn2) {
    const fed = seen.plans[1]!.extraInputs![g.cachedInput] as Tensor;
    assert.deepEqual(fed.shape[0], 1);
    assert.deepEqual(fed.data, meanOfHalves(seen.outputs[0]![g.output]!).data, `${g.output}: (uncond + cond) / 2`);
  }
  assert.equal(Boolean((seen.plans[1]!.extraInputs!.compute_attn2 as { data: ArrayLike<unknown> }).data[0]), false, "the attn2 switch is off");
});

test('GateAdvisor\'s capture planner returns every attn2 output, the same on the gated and the compute-all graph', { skip }, async () => {
  const capture = async (prepared: CachedUnet) => {
    let got: Readonly<Record<string, Tensor>> = {};
    const [out] = await runSameInputsOn(prepared, captureAttentionStepper(prepared.layout, 'attn2', (_i, outputs) => (got = outputs)));
    return { out: out!, got };
  };
  const gated = await capture(cached);
  const split = await capture(withComputeAll);
  const names = cached.layout.full.gates.filter((g) => g.kind === 'attn2').map((g) => g.output).sort();
  assert.deepEqual(Object.keys(gated.got).sort(), names);
  assert.deepEqual(Object.keys(split.got).sort(), names);
  for (const n of names) assert.ok(maxRelError(split.got[n]!, gated.got[n]!) < 1e-6, n);
  assert.ok(maxRelError(gated.out, await plainOut()) < 1e-6, 'the plain forward');
});

test('a plan that reuses what no earlier step cached is refused before anything runs', { skip }, () => {
  assert.throws(() => planStepper(handPlan([step(0, {}), step(1, { crossAttn: 'reuse' })]), cached.layout), /reuse|cache/i);
});

test('the gated graph reads attn2 to_k / to_v weights only inside the compute branch of its If nodes', { skip }, () => {
  const proto = decodeModel(readFileSync(cached.files.full));
  const main = proto.graph!;
  const isKv = (name: string) => /attn2\/to_[kv]\//.test(name);
  assert.equal(main.node.filter((n) => isKv(n.name)).length, 0, 'no to_k / to_v node outside the If nodes');
  const ifs = main.node.filter((n) => n.opType === 'If' && n.name.includes('attn2'));
  assert.ok(ifs.length > 0);
  for (const node of ifs) {
    const branch = (name: string): GraphProto => node.attribute.find((a) => a.name === name)!.g!;
    assert.ok(branch('then_branch').node.some((n) => isKv(n.name)), `${node.name}: the compute branch holds to_k / to_v`);
    assert.deepEqual(branch('else_branch').node.map((n) => n.opType), ['Identity'], `${node.name}: the reuse branch only passes the cache through`);
  }
});

test('a sampling run with a gate past the last step is the plain run, byte for byte', { skip }, async () => {
  const plan = planTgate({ steps: 6, gateStep: 6 });
  assert.equal(plan.kind, 'plain');
  const [h, w] = model.io.unet.fixedLatentSize ?? [16, 16];
  const shape = [1, model.io.unet.latentChannels, h, w];
  const text = randn([1, 77, model.io.unet.crossAttentionDim], 3);
  const neg = zeros([1, 77, model.io.unet.crossAttentionDim]);
  const run = (planner?: StepPlanner) =>
    sample({
      unet: OnnxUnetRunner.forModel(model),
      scheduler: createScheduler('ddim', model.schedulerConfig, 6),
      positive: text, negative: neg, cfg: 7, latent: zeros(shape), noise: randn(shape, 11),
      ...samplingExtras(h, w),
      ...(planner ? { planner } : {}),
    });
  const plain = await run();
  const gated = await run(planStepper(plan, null));
  assert.deepEqual(gated.latent.data, plain.latent.data);
});

test('a TGATE run samples with the gated graph and one pass after the gate; a compute-all graph takes the steps computing every module and samples the same latent', { skip }, async () => {
  const plan = planTgate({ steps: 8, gateStep: 4, warmUp: 1, spInterval: 2 });
  const [h, w] = model.io.unet.fixedLatentSize ?? [16, 16];
  const shape = [1, model.io.unet.latentChannels, h, w];
  const run = (prepared: CachedUnet) =>
    sample({
      unet: prepared.runner,
      scheduler: createScheduler('ddim', model.schedulerConfig, 8),
      positive: randn([1, 77, model.io.unet.crossAttentionDim], 3),
      negative: zeros([1, 77, model.io.unet.crossAttentionDim]),
      cfg: 7, latent: zeros(shape), noise: randn(shape, 11),
      ...samplingExtras(h, w),
      planner: planStepper(plan, prepared.layout),
    });
  const gated = await run(cached);
  assert.deepEqual(gated.plans.map((p) => p.batch), ['cfg', 'cfg', 'cfg', 'cfg', 'uncond', 'uncond', 'uncond', 'uncond']);
  assert.ok(gated.plans.every((p) => p.variant === cached.layout.full.key));
  assert.ok(gated.latent.data.every(Number.isFinite));

  // Steps computing every module run on the compute-all graph; those reusing something (self-attention at
  // intervals before the gate, cross-attention after it) on the gated graph.
  const split = await run(withComputeAll);
  const { full, computeAll } = withComputeAll.layout;
  const reuses = plan.steps.map((st) => st.crossAttn === 'reuse' || st.selfAttn === 'reuse');
  assert.ok(reuses.includes(false) && reuses.slice(4).every(Boolean), reuses.join());
  assert.deepEqual(split.plans.map((p) => p.variant), reuses.map((r) => (r ? full.key : computeAll!.key)));
  const err = maxRelError(split.latent, gated.latent);
  assert.ok(err < 1e-4, `max relative error between the designs ${err}`);
});

test('DeepCache with a branch the UNet does not have is a clear error naming the model', { skip }, async () => {
  await assert.rejects(prepareCachedUnet(model, { attn2: false, attn1: false, deepBranch: 40 }), (e: unknown) => {
    assert.ok(e instanceof CachedUnetError, String(e));
    assert.match((e as Error).message, /UNet of model/);
    return true;
  });
});

test('a UNet whose attention cannot be found is a CachedUnetError naming the model, with onnx-graph\'s reason', { skip }, async () => {
  const dir = tempDir('no-attention');
  const path = join(dir, 'unet', 'model.onnx');
  mkdirSync(dirname(path), { recursive: true });
  writeModel(path, fakeUnetWithoutText(4, 16));
  const fake = { name: 'no-attention', io: model.io, unet: { ...model.unet, path } } as unknown as DiffusionModel;
  await assert.rejects(prepareCachedUnet(fake, { attn2: true, attn1: false }), (e: unknown) => {
    assert.ok(e instanceof CachedUnetError, String(e));
    assert.match((e as Error).message, /^the UNet of model "no-attention" \(.*model\.onnx\): /);
    assert.ok((e as Error).cause, 'the onnx-graph error is kept as the cause');
    return true;
  });
});

test('over the session budget, one UNet session at a time: the gated UNet replaces the plain one, stays open between gated runs, and closes when the plain one reopens', { skip }, async () => {
  const pool = new SessionPool();
  const own = await openModelFolder(TEST_MODEL, { pool });
  try {
    const before = pool.openCount; // text encoder, UNet, VAE(s): opened to read their metadata
    // Room for what is open and a tenth of a UNet more: the plain and the gated UNet do not fit together.
    pool.memoryBudgetBytes = pool.openBytes + Math.floor(weightFileBytes(own.unet.lease.path) / 10);
    const prepared = await prepareCachedUnet(own, { attn2: true, attn1: false }); // sessions in the model's own pool
    const [first] = await runSameInputsOn(prepared, planStepper(handPlan([step(0, {})]), prepared.layout));
    assert.equal(pool.openCount, before, 'the gated session replaced the plain one');
    assert.equal(pool.closedForRoom, 1, 'only the plain UNet was closed for it');
    await prepared.release();
    assert.equal(pool.openCount, before, 'released after the run, but kept open while idle');
    assert.equal(pool.idleCount, 1);
    const opened = pool.opened;
    const again = await prepareCachedUnet(own, { attn2: true, attn1: false });
    const [second] = await runSameInputsOn(again, planStepper(handPlan([step(0, {})]), again.layout));
    assert.equal(pool.opened, opened, 'the next gated run reuses the idle session instead of reopening the file');
    assert.deepEqual(second!.data, first!.data);
    await again.release();
    const plain = (await OnnxUnetRunner.forModel(own).run('full', sameFeeds(2), [own.io.unet.outSample]))[own.io.unet.outSample]!;
    assert.equal(pool.openCount, before, 'the plain UNet reopened and the idle gated session was closed: one copy of the weights');
    assert.equal(pool.idleCount, 0);
    assert.ok(maxRelError(first!, plain) < 1e-6);
  } finally {
    await own.release();
  }
});

test('within the session budget, plain and gated runs alternate without opening a session after the first of each', { skip }, async () => {
  const pool = new SessionPool({}, { memoryBudgetBytes: 4 * 1024 ** 3 });
  const own = await openModelFolder(TEST_MODEL, { pool });
  try {
    let opened = 0;
    for (let round = 0; round < 3; round++) {
      const gated = await prepareCachedUnet(own, { attn2: true, attn1: false });
      await runSameInputsOn(gated, planStepper(handPlan([step(0, {})]), gated.layout));
      await gated.release();
      await OnnxUnetRunner.forModel(own).run('full', sameFeeds(2), [own.io.unet.outSample]);
      if (round === 0) opened = pool.opened;
    }
    assert.equal(pool.opened, opened, 'no session opened after the first round');
    assert.equal(pool.closedForRoom, 0);
    assert.equal(pool.idleCount, 1, 'the gated UNet idles open beside the plain one');
  } finally {
    await own.release();
  }
});

test('alternating sessions (DeepCache, a compute-all graph) do not spin even in a spinning pool; the If-gated graph alone keeps the pool\'s setting', { skip }, async () => {
  // Two spinning thread pools taking turns on the same cores steal each other's time (DeepCache measured slower
  // than plain with spinning on); a single gated session may spin as the user asked.
  const pool = new SessionPool({ intraOpSpinning: true });
  const own = await openModelFolder(TEST_MODEL, { pool });
  try {
    const deep = await prepareCachedUnet(own, { attn2: true, attn1: false, deepBranch: 0 });
    const keys = [deep.layout.full.key, deep.layout.shallow!.key];
    assert.deepEqual(keys.map((k) => deep.runner.leaseOf(k)!.spinning), [false, false]);
    const [latent] = await runSameInputsOn(deep, planStepper(handPlan([step(0, {})]), deep.layout));
    assert.ok(latent!.data.every(Number.isFinite));
    await deep.release();
    const twoGraphs = await prepareCachedUnet(own, { attn2: true, attn1: false }, { separateComputeGraph: true });
    assert.deepEqual([twoGraphs.layout.full.key, twoGraphs.layout.computeAll!.key].map((k) => twoGraphs.runner.leaseOf(k)!.spinning), [false, false]);
    await twoGraphs.release();
    const gated = await prepareCachedUnet(own, { attn2: true, attn1: false });
    assert.equal(gated.runner.leaseOf(gated.layout.full.key)!.spinning, true);
    await gated.release();
  } finally {
    await own.release();
  }
});

test('re-exporting the UNet: the next preparation deletes the gated and shallow graphs of the old content', { skip }, async () => {
  const folder = join(tempDir('reexport'), 'model');
  cpSync(TEST_MODEL, folder, { recursive: true, filter: (src) => !src.includes('.gategraph-derived') });
  const cacheDir = join(folder, 'unet', '.gategraph-derived');
  const prepare = async () => {
    const m = await openModelFolder(folder);
    const c = await prepareCachedUnet(m, { attn2: true, attn1: false, deepBranch: 0 }, { separateComputeGraph: true });
    await c.release();
    await m.release();
    return c.files;
  };
  const before = await prepare();
  assert.ok(before.shallow && before.computeAll && existsSync(before.full) && existsSync(before.shallow) && existsSync(before.computeAll));
  assert.deepEqual(await prepare(), before, 'the same content finds the same files');

  const unetPath = join(folder, 'unet', 'model.onnx');
  const proto = decodeModel(readFileSync(unetPath));
  proto.docString = 're-exported';
  writeFileSync(unetPath, encodeModel(proto));
  const after = await prepare();
  assert.notEqual(after.full, before.full);
  assert.ok(!existsSync(before.full) && !existsSync(before.full.replace(/\.onnx$/, '.done')), 'the old gated graph and its marker are gone');
  assert.ok(!existsSync(before.shallow), 'the shallow graph cut from it is gone');
  assert.ok(!existsSync(before.computeAll), 'the compute-all graph of the old content is gone');
  // A float16 UNet's float32 conversion lives in the same folder; it is not one of the preparation's graphs.
  const conversions = readdirSync(cacheDir)
    .filter((n) => n.endsWith('.json') && !n.startsWith('prepared-'))
    .filter((n) => JSON.parse(readFileSync(join(cacheDir, n), 'utf8')).spec?.conversion !== undefined)
    .map((n) => n.replace(/\.json$/, '.onnx'));
  const onnxFiles = readdirSync(cacheDir).filter((n) => n.endsWith('.onnx') && !conversions.includes(n)).sort();
  // The gated graph, the compute-all graph, the shallow graph and the probe cut that found which gates survive
  // in the shallow branch.
  assert.equal(onnxFiles.length, 4, `only the current content's graphs stay: ${onnxFiles.join(', ')}`);
  assert.ok([after.full, after.shallow!, after.computeAll!].every((f) => onnxFiles.includes(basename(f))));
  const prepared = readdirSync(cacheDir).filter((n) => n.startsWith('prepared-'));
  assert.equal(prepared.length, 1, `one preparation record, the current content's: ${prepared.join(', ')}`);
  assert.deepEqual(JSON.parse(readFileSync(join(cacheDir, prepared[0]!), 'utf8')).files, after);
  const unetSource = join(cacheDir, conversions[0] ?? '');
  for (const name of readdirSync(cacheDir).filter((n) => n.endsWith('.json') && !n.startsWith('prepared-') && !conversions.includes(n.replace(/\.json$/, '.onnx')))) {
    const record = JSON.parse(readFileSync(join(cacheDir, name), 'utf8')) as { model: string; modelSha256: string };
    const cutFromUnet = name === basename(after.computeAll!).replace(/\.onnx$/, '.json');
    const from = cutFromUnet ? (conversions.length ? unetSource : unetPath) : after.full;
    assert.equal(record.model, from, `${name} was cut from the current ${cutFromUnet ? 'UNet' : 'gated graph'}`);
  }
});

test('a later preparation of the same content reads the preparation record instead of decoding the model, unless a file it names changed', { skip }, async () => {
  const folder = join(tempDir('prepared-record'), 'model');
  cpSync(TEST_MODEL, folder, { recursive: true, filter: (src) => !src.includes('.gategraph-derived') });
  const cacheDir = join(folder, 'unet', '.gategraph-derived');
  const unetPath = join(folder, 'unet', 'model.onnx');
  let touches = 0;
  const prepare = async () => {
    const m = await openModelFolder(folder);
    // A new mtime on the same bytes of the file the preparation reads (the UNet, or its float32 conversion):
    // this process's memo misses (as in a new process), the content hash does not.
    const at = new Date(Date.now() + 1000 * ++touches);
    utimesSync(m.unet.path, at, at);
    const c = await prepareCachedUnet(m, { attn2: true, attn1: false });
    await c.release();
    await m.release();
    return c;
  };
  const first = await prepare();
  const [name] = readdirSync(cacheDir).filter((n) => n.startsWith('prepared-'));
  assert.ok(name, 'a record was written');
  const recordPath = join(cacheDir, name);
  // Mark the record so its use shows: only the record says this.
  const record = JSON.parse(readFileSync(recordPath, 'utf8'));
  record.layout.full.key = 'tgate-from-record';
  writeFileSync(recordPath, JSON.stringify(record));
  const second = await prepare();
  assert.equal(second.layout.full.key, 'tgate-from-record', 'the layout came from the record');
  assert.deepEqual(second.files, first.files);

  // A derived file rewritten (new size or time) makes the record untrusted: prepared again, record rewritten.
  const later = new Date(Date.now() + 60_000);
  utimesSync(first.files.full, later, later);
  const third = await prepare();
  assert.equal(third.layout.full.key, first.layout.full.key, 'the record was not used');
  assert.notEqual(JSON.parse(readFileSync(recordPath, 'utf8')).layout.full.key, 'tgate-from-record', 'and was rewritten');
});
