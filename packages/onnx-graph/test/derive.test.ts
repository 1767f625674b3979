import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deepFeature, deriveModel, discoverUNet, encodeModel, OnnxGraphError, upLayers } from '../src/index.ts';
import { maxRelError, run, skipReason, testUNet, unetFeeds } from './helpers.ts';

const TOLERANCE = 1e-4;

function setup() {
  const file = testUNet();
  const unet = discoverUNet(file.proto);
  const attn1 = unet.attention.filter((a) => a.kind === 'attn1').map((a) => a.output);
  const attn2 = unet.attention.filter((a) => a.kind === 'attn2').map((a) => a.output);
  const deep = deepFeature(unet, 0);
  return { file, unet, attn1, attn2, deep };
}

test('capture form: same out_sample as the full graph, plus every requested module output', { skip: skipReason }, async () => {
  const { file, attn1, attn2, deep } = setup();
  const { model, report } = deriveModel(file.proto, { capture: [...attn1, ...attn2, deep.tensor] });
  assert.equal(report.removed.nodes, 0);
  assert.deepEqual(report.droppedInputs, []);
  const feeds = unetFeeds();
  const full = await run(file.proto, feeds);
  const captured = await run(model, feeds);
  assert.equal(maxRelError(captured.out_sample!, full.out_sample!), 0);
  for (const name of [...attn1, ...attn2, deep.tensor]) {
    const t = captured[name];
    assert.ok(t, `missing captured output ${name}`);
    assert.equal(t.dims[0], 2, `${name} keeps the CFG batch`);
    // The declared output shape (inferred statically, batch symbolic) matches what ORT produced.
    const declared = report.outputs.find((o) => o.name === name)!;
    assert.deepEqual(declared.dims!.map((d, i) => (typeof d === 'number' ? d : t.dims[i])), [...t.dims], name);
    assert.equal(declared.dims![0], 'batch');
  }
});

test('attn2 reuse fed the values captured at the same step reproduces the full forward, without the text path', { skip: skipReason }, async () => {
  const { file, unet, attn2 } = setup();
  const feeds = unetFeeds(2, 3);
  const capture = deriveModel(file.proto, { capture: attn2 }).model;
  const captured = await run(capture, feeds);
  const { model, report } = deriveModel(file.proto, { reuse: attn2 });
  // Cross-attention was the only reader of the text: the derived graph no longer takes it.
  assert.deepEqual(report.droppedInputs, ['encoder_hidden_states']);
  assert.deepEqual(report.inputs.map((i) => i.name).slice(0, 2), ['sample', 'timestep']);
  assert.equal(report.inputs.length, 2 + attn2.length);
  assert.ok(report.removed.initializerBytes > 0 && report.removed.nodes > 0);
  // No to_k / to_v (nor to_q / to_out) node or weight of any attn2 is left.
  const originalKV = new Set(
    file.proto.graph!.node.filter((n) => /\/attn2\/to_[kvq]\//.test(n.name)).flatMap((n) => n.input).filter((i) => unet.index.initializers.has(i)),
  );
  assert.equal(originalKV.size, attn2.length * 3);
  assert.ok(model.graph!.node.every((n) => !n.name.includes('/attn2/')));
  assert.ok(model.graph!.initializer.every((t) => !originalKV.has(t.name) && !/attn2/.test(t.name)));
  const reused = await run(model, { ...feeds, ...Object.fromEntries(attn2.map((n) => [n, captured[n]!])) });
  assert.ok(maxRelError(reused.out_sample!, captured.out_sample!) < TOLERANCE);
});

test('attn1 reuse reproduces the full forward', { skip: skipReason }, async () => {
  const { file, attn1 } = setup();
  const feeds = unetFeeds(2, 5);
  const captured = await run(deriveModel(file.proto, { capture: attn1 }).model, feeds);
  const { model, report } = deriveModel(file.proto, { reuse: attn1 });
  assert.deepEqual(report.droppedInputs, []);
  assert.ok(model.graph!.node.every((n) => !n.name.includes('/attn1/')));
  const reused = await run(model, { ...feeds, ...Object.fromEntries(attn1.map((n) => [n, captured[n]!])) });
  assert.ok(maxRelError(reused.out_sample!, captured.out_sample!) < TOLERANCE);
});

test('DeepCache shallow graph fed the captured deep feature reproduces the full forward', { skip: skipReason }, async () => {
  const { file, unet, deep } = setup();
  const layers = upLayers(unet);
  // Branch 0 (pipeline convention) enters the second-to-last up layer, whose skip is down_blocks.0's first layer.
  assert.deepEqual(deep.enters, layers[layers.length - 2]);
  assert.match(deep.tensor, /^\/up_blocks\.\d+\//);
  const feeds = unetFeeds(2, 9);
  const captured = await run(deriveModel(file.proto, { capture: [deep.tensor] }).model, feeds);
  const { model, report } = deriveModel(file.proto, { reuse: [deep.tensor] });
  const paths = new Set(model.graph!.node.map((n) => unet.pathOf(file.proto.graph!.node.find((m) => m.name === n.name)!) ?? ''));
  const has = (prefix: string) => [...paths].some((p) => p === prefix || p.startsWith(`${prefix}/`));
  assert.ok(!has('mid_block'), 'the mid block is gone');
  assert.ok(!has(unet.downBlocks[1]!.path), 'the deeper down blocks are gone');
  assert.ok(has('conv_in') && has('conv_out') && has(deep.enters.resnet) && has(unet.downBlocks[0]!.resnets[0]!));
  assert.ok(!has(unet.upBlocks[0]!.path));
  assert.ok(report.kept.initializerBytes < report.removed.initializerBytes, 'the shallow branch holds the smaller part of the weights');
  const shallow = await run(model, { ...feeds, [deep.tensor]: captured[deep.tensor]! });
  assert.ok(maxRelError(shallow.out_sample!, captured.out_sample!) < TOLERANCE);
  // The helper convention caches one layer later: only the very last up layer runs.
  const helper = deepFeature(unet, 0, 'helper');
  assert.deepEqual(helper.enters, layers[layers.length - 1]);
});

test('combinations compose: attn2 reuse + attn1 capture, shallow + attn2 reuse', { skip: skipReason }, async () => {
  const { file, attn1, attn2, deep } = setup();
  const before = encodeModel(file.proto);
  const feeds = unetFeeds(2, 11);
  const full = await run(deriveModel(file.proto, { capture: [...attn1, ...attn2, deep.tensor] }).model, feeds);
  const cached = Object.fromEntries([...attn2, deep.tensor].map((n) => [n, full[n]!]));

  const gated = deriveModel(file.proto, { reuse: attn2, capture: attn1 });
  const out = await run(gated.model, { ...feeds, ...cached });
  assert.ok(maxRelError(out.out_sample!, full.out_sample!) < TOLERANCE);
  for (const n of attn1) assert.ok(maxRelError(out[n]!, full[n]!) < TOLERANCE, n);

  const both = deriveModel(file.proto, { reuse: [deep.tensor, ...attn2] });
  // attn2 modules inside the cut-away deep part have no reader left: they are not inputs of the shallow graph.
  const kept = both.report.inputs.map((i) => i.name);
  assert.ok(kept.includes(deep.tensor));
  assert.ok(kept.filter((n) => attn2.includes(n)).length < attn2.length);
  const out2 = await run(both.model, { ...feeds, ...cached });
  assert.ok(maxRelError(out2.out_sample!, full.out_sample!) < TOLERANCE);
  assert.deepEqual(encodeModel(file.proto), before, 'the input model is never modified');
});

test('bad specs are refused with the reason', { skip: skipReason }, () => {
  const { file, attn2 } = setup();
  assert.throws(() => deriveModel(file.proto, { capture: [attn2[0]!], reuse: [attn2[0]!] }), /both captured and reused/);
  assert.throws(() => deriveModel(file.proto, { reuse: ['encoder_hidden_states'] }), (e: unknown) => e instanceof OnnxGraphError && /already a graph input/.test(e.message));
  assert.throws(() => deriveModel(file.proto, { capture: ['nope'] }), /no node produces it/);
});
