import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import {
  countMacs,
  discoverUNet,
  fuseAttention,
  fusedAttentionModelPath,
  loadModel,
  makeValueInfo,
  newGraph,
  newModel,
  newNode,
  newTensor,
  saveModel,
  TensorProto_DataType as DT,
  type ModelProto,
  type NodeProto,
} from '../src/index.ts';
import { publishedTestModels } from '../../diffusion/test/fixtures/published-models.ts';
import { maxRelError, randomTensor, run, skipReason, testUNet, unetFeeds } from './helpers.ts';

test('fused attention: every attention module of the test UNet becomes one MultiHeadAttention node, with the same outputs, modules and MACs', { skip: skipReason }, async () => {
  const { proto } = testUNet();
  const { model, report } = fuseAttention(proto);
  const before = discoverUNet(proto);
  const after = discoverUNet(model);
  assert.equal(report.fused.length, before.attention.length, JSON.stringify(report.skipped));
  assert.equal(report.skipped.length, 0);
  assert.equal(model.graph!.node.filter((n) => n.opType === 'Softmax').length, 0, 'no unfused softmax left');
  // TGATE and DeepCache find the same modules with the same output tensors.
  assert.deepEqual(after.attention.map((a) => [a.path, a.output]), before.attention.map((a) => [a.path, a.output]));
  for (const a of after.attention) {
    const fused = model.graph!.node.filter((n) => n.opType === 'MultiHeadAttention' && after.pathOf(n) === a.path);
    assert.equal(fused.length, 1, a.path);
  }
  const feeds = unetFeeds(2, 5);
  const plain = await run(proto, feeds);
  const fused = await run(model, feeds);
  assert.ok(maxRelError(fused.out_sample!, plain.out_sample!) < 1e-5, `${maxRelError(fused.out_sample!, plain.out_sample!)}`);
  const sizes = { batch: 2, width: 128, height: 128 };
  const [m0, m1] = [countMacs(proto, sizes), countMacs(model, sizes)];
  assert.equal(m1.total, m0.total);
  assert.equal(m1.activationMatMul, m0.activationMatMul);
});

test('fused attention on the published layouts: optimum, diffusers\' script, SD-2.x with single-head blocks, and the VAE decoder', async () => {
  const root = publishedTestModels();
  const cases: Array<[string, string]> = [
    ['sd15-optimum', 'unet'],
    ['sd15-diffusers-script', 'unet'],
    ['sd21-v', 'unet'],
    ['sd15-optimum', 'vae_decoder'],
  ];
  for (const [layout, component] of cases) {
    const file = loadModel(join(root, layout, component, 'model.onnx'));
    const { model, report } = fuseAttention(file.proto, { baseDir: file.baseDir });
    const softmaxes = file.proto.graph!.node.filter((n) => n.opType === 'Softmax').length;
    assert.equal(report.fused.length, softmaxes, `${layout}/${component}: ${JSON.stringify(report.skipped)}`);
    if (layout === 'sd21-v') assert.ok(report.fused.some((f) => f.heads === 1) && report.fused.some((f) => f.heads === 2), 'one- and two-head blocks');
    const feeds: Record<string, ort.Tensor> = component === 'unet'
      ? {
          sample: randomTensor([2, 4, 8, 8], 3),
          timestep: layout === 'sd15-diffusers-script' ? new ort.Tensor('int64', BigInt64Array.from([601n, 601n]), [2]) : new ort.Tensor('float32', Float32Array.from([601]), []),
          encoder_hidden_states: randomTensor([2, 77, layout === 'sd21-v' ? 24 : 32], 4),
        }
      : { latent_sample: randomTensor([1, 4, 8, 8], 5) };
    const out = component === 'unet' ? 'out_sample' : 'sample';
    const timestepFeeds = await adaptTimestep(file.proto, feeds);
    const plain = await run(join(root, layout, component, 'model.onnx'), timestepFeeds);
    const dir = mkdtempSync(join(tmpdir(), 'fused-'));
    try {
      const path = join(dir, 'model.onnx');
      saveModel(model, path, { baseDir: file.baseDir, externalData: 'copy' });
      const fused = await run(path, timestepFeeds);
      assert.ok(maxRelError(fused[out]!, plain[out]!) < 1e-5, `${layout}/${component}: ${maxRelError(fused[out]!, plain[out]!)}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

/** The timestep as the export declares it (int64 [B], float [B] or a float scalar). */
async function adaptTimestep(model: ModelProto, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const input = model.graph!.input.find((i) => i.name === 'timestep');
  if (!input) return feeds;
  const t = input.type!.value;
  if (t.case !== 'tensorType') return feeds;
  const rank = t.value.shape?.dim.length ?? 0;
  const batch = feeds.sample!.dims[0]!;
  const dims = rank === 0 ? [] : [batch];
  const n = rank === 0 ? 1 : batch;
  const timestep = t.value.elemType === DT.INT64
    ? new ort.Tensor('int64', new BigInt64Array(n).fill(601n), dims)
    : new ort.Tensor('float32', new Float32Array(n).fill(601), dims);
  return { ...feeds, timestep };
}

/** One attention over x [2, 6, 8] (2 heads of 4), spelled out as an export does, with variants the fusion must refuse. */
function attentionModel(variant: 'plain' | 'mask' | 'softmax-axis' | 'scaled-v' | 'heads-minor'): ModelProto {
  const nodes: NodeProto[] = [];
  const inits = [];
  const f32 = (name: string, dims: number[], values: number[]) => newTensor({ name, dataType: DT.FLOAT, dims: dims.map(BigInt), floatData: values });
  const i64 = (name: string, values: number[]) => newTensor({ name, dataType: DT.INT64, dims: [BigInt(values.length)], int64Data: values.map(BigInt) });
  let seed = 7;
  const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5);
  for (const w of ['wq', 'wk', 'wv']) inits.push(f32(w, [8, 8], Array.from({ length: 64 }, rnd)));
  const split = variant === 'heads-minor' ? [2, 6, 4, 2] : [2, 6, 2, 4];
  inits.push(i64('split', split), i64('merge', [2, 6, 8]), f32('scale', [], [0.5]), f32('mask', [6], [0, -1, 0, -2, 0, 0]));
  const node = (opType: string, input: string[], output: string, attribute: Parameters<typeof newNode>[0]['attribute'] = []) =>
    nodes.push(newNode({ opType, input, output: [output], name: `/attn1/${output}`, attribute }));
  const perm = (p: number[]) => [{ name: 'perm', type: 7, ints: p.map(BigInt) }];
  for (const [p, w] of [['q', 'wq'], ['k', 'wk'], ['v', 'wv']] as const) {
    node('MatMul', ['x', w], p);
    node('Reshape', [p, 'split'], `${p}_split`);
  }
  // Heads-minor: channels split as [head channels, heads], heads taken from the last factor. Valid attention, but not
  // the head-major split MultiHeadAttention computes.
  const minor = variant === 'heads-minor';
  node('Transpose', ['q_split'], 'qh', perm(minor ? [0, 3, 1, 2] : [0, 2, 1, 3]));
  node('Transpose', ['k_split'], 'kt', perm(minor ? [0, 3, 2, 1] : [0, 2, 3, 1]));
  node('Transpose', ['v_split'], 'vh', perm(minor ? [0, 3, 1, 2] : [0, 2, 1, 3]));
  node('MatMul', ['qh', 'kt'], 'scores_raw');
  node('Mul', ['scores_raw', 'scale'], 'scores');
  let logits = 'scores';
  if (variant === 'mask') {
    node('Add', ['scores', 'mask'], 'masked');
    logits = 'masked';
  }
  node('Softmax', [logits], 'probs', [{ name: 'axis', type: 2, i: variant === 'softmax-axis' ? 2n : -1n }]);
  let values = 'vh';
  if (variant === 'scaled-v') {
    node('Mul', ['vh', 'scale'], 'vh_scaled');
    values = 'vh_scaled';
  }
  node('MatMul', ['probs', values], 'ctx');
  node('Transpose', ['ctx'], 'ctx_t', perm(minor ? [0, 2, 3, 1] : [0, 2, 1, 3]));
  node('Reshape', ['ctx_t', 'merge'], 'attn_out');
  node('Relu', ['attn_out'], 'y');
  const graph = newGraph({
    name: 'attention',
    node: nodes,
    initializer: inits,
    input: [makeValueInfo('x', DT.FLOAT, [2, 6, 8])],
    output: [makeValueInfo('y', DT.FLOAT, [2, 6, 8])],
  });
  return newModel(graph, 14);
}

test('fused attention refuses what it cannot prove equal, and the graph is left as it was', async () => {
  const x = randomTensor([2, 6, 8], 9);
  const plain = attentionModel('plain');
  const fused = fuseAttention(plain);
  assert.equal(fused.report.fused.length, 1);
  assert.equal(fused.report.fused[0]!.heads, 2);
  assert.equal(fused.report.fused[0]!.scale, 0.5);
  assert.ok(maxRelError((await run(fused.model, { x })).y!, (await run(plain, { x })).y!) < 1e-6);
  const reasons: Record<string, RegExp> = {
    mask: /Add/,
    'softmax-axis': /softmax over axis 2/,
    'scaled-v': /V is scaled/,
    'heads-minor': /contract|batch axis/,
  };
  for (const [variant, reason] of Object.entries(reasons)) {
    const model = attentionModel(variant as Parameters<typeof attentionModel>[0]);
    const { model: out, report } = fuseAttention(model);
    assert.equal(report.fused.length, 0, variant);
    assert.match(report.skipped[0]!.reason, reason, variant);
    assert.equal(out.graph!.node.length, model.graph!.node.length, `${variant}: nothing removed`);
  }
});

test('fusedAttentionModelPath: written once next to the model, reused, and a model with nothing to fuse is remembered as such', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fused-cache-'));
  try {
    const source = join(dir, 'model.onnx');
    saveModel(attentionModel('plain'), source);
    const first = await fusedAttentionModelPath(source);
    assert.ok(first && !first.fromCache);
    const again = await fusedAttentionModelPath(source);
    assert.ok(again?.fromCache);
    assert.equal(again.path, first.path);
    const masked = join(dir, 'masked', 'model.onnx');
    saveModel(attentionModel('mask'), masked);
    assert.equal(await fusedAttentionModelPath(masked), undefined);
    assert.equal(await fusedAttentionModelPath(masked), undefined);
    assert.deepEqual(readdirSync(join(dir, 'masked', '.gategraph-derived')).filter((f) => !f.startsWith('.')).map((f) => f.split('.').pop()), ['unfused']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
