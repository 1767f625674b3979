import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildIfGated, deepFeature, deriveModel, discoverUNet } from '../src/index.ts';
import { maxRelError, run, skipReason, testUNet, unetFeeds } from './helpers.ts';

test('If-gated graph: one graph computes and captures attn2 when told, passes cached values through otherwise', { skip: skipReason }, async () => {
  const { proto } = testUNet();
  const unet = discoverUNet(proto);
  const attn2 = unet.attention.filter((a) => a.kind === 'attn2');
  const gated = buildIfGated(proto, unet, attn2);
  assert.equal(gated.gates.length, attn2.length);
  assert.equal(gated.model.graph!.initializer.length, proto.graph!.initializer.length, 'one copy of the weights');
  const feeds = unetFeeds(2, 31);
  const full = await run(deriveModel(proto, { capture: attn2.map((a) => a.output) }).model, feeds);
  const dummy = Object.fromEntries(gated.gates.map((g) => {
    const dims = g.cachedInput.dims!.map((d) => (typeof d === 'number' ? d : 1));
    return [g.cachedInput.name, new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)), dims)];
  }));
  const on = await run(gated.model, { ...feeds, ...dummy, [gated.condition]: new ort.Tensor('bool', [true], []) });
  assert.ok(maxRelError(on.out_sample!, full.out_sample!) < 1e-6);
  for (const g of gated.gates) assert.ok(maxRelError(on[g.output]!, full[g.output]!) < 1e-6, g.module);
  const cached = Object.fromEntries(gated.gates.map((g) => [g.cachedInput.name, full[g.output]!]));
  const off = await run(gated.model, { ...feeds, ...cached, [gated.condition]: new ort.Tensor('bool', [false], []) });
  assert.ok(maxRelError(off.out_sample!, full.out_sample!) < 1e-4);
});

test('If-gating composes: attn1 gated on its own condition, and a DeepCache shallow graph derived from the gated graph', { skip: skipReason }, async () => {
  const { proto } = testUNet();
  const unet = discoverUNet(proto);
  const attn1 = unet.attention.filter((a) => a.kind === 'attn1');
  const attn2 = unet.attention.filter((a) => a.kind === 'attn2');
  const g2 = buildIfGated(proto, unet, attn2, { condition: 'compute_attn2' });
  // The gated graph is still discoverable: each attn2 module is now its If node, with the same output name.
  const unet2 = discoverUNet(g2.model);
  assert.deepEqual(unet2.attention.map((a) => a.output), unet.attention.map((a) => a.output));
  const g12 = buildIfGated(g2.model, unet2, unet2.attention.filter((a) => a.kind === 'attn1'), { condition: 'compute_attn1' });
  const feeds = unetFeeds(1, 41);
  const deep = deepFeature(unet, 0);
  const full = await run(deriveModel(proto, { capture: [...attn1, ...attn2].map((a) => a.output).concat(deep.tensor) }).model, feeds);
  const cachedInputs = (gates: typeof g2.gates) => Object.fromEntries(gates.map((g) => [g.cachedInput.name, full[g.output]!]));
  const cached = { ...cachedInputs(g2.gates), ...cachedInputs(g12.gates) };
  const bool = (v: boolean) => new ort.Tensor('bool', [v], []);
  // Self-attention computed, cross-attention from the cache (a TGATE FI step with fi_interval 1).
  const fi = await run(g12.model, { ...feeds, ...cached, compute_attn1: bool(true), compute_attn2: bool(false) });
  assert.ok(maxRelError(fi.out_sample!, full.out_sample!) < 1e-4);
  // TGATE + DeepCache: the shallow branch of the gated graph, fed the deep feature.
  // The gates' outputs are graph outputs: keep only out_sample, or they would keep the deep path alive.
  const shallow = deriveModel(g12.model, { reuse: [deep.tensor], outputs: ['out_sample'] });
  assert.ok(shallow.report.inputs.length < g12.model.graph!.input.length, 'cached inputs of gates in the cut-away part are dropped');
  const out = await run(shallow.model, { ...feeds, ...cached, [deep.tensor]: full[deep.tensor]!, compute_attn1: bool(false), compute_attn2: bool(false) });
  assert.ok(maxRelError(out.out_sample!, full.out_sample!) < 1e-4);
});
