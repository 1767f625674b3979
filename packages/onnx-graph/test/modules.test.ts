import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cloneModel, discoverUNet, OnnxGraphError, parseScope, type ModelProto } from '../src/index.ts';
import { newNode } from '../src/proto.ts';
import { expectedTransformerBlocks, skipReason, testUNet, unetConfig } from './helpers.ts';

test('parseScope splits torch export names and ignores unscoped ones', () => {
  assert.deepEqual(parseScope('/down_blocks.0/attentions.0/transformer_blocks.0/attn2/to_q/MatMul'), [
    'down_blocks.0', 'attentions.0', 'transformer_blocks.0', 'attn2', 'to_q',
  ]);
  assert.equal(parseScope('Identity_0'), undefined);
});

test('finds every attn1 and attn2 module, one per transformer block of the UNet config', { skip: skipReason }, () => {
  const unet = discoverUNet(testUNet().proto);
  const n = expectedTransformerBlocks(unetConfig());
  assert.deepEqual(unet.prefix, []);
  assert.equal(unet.attention.filter((a) => a.kind === 'attn1').length, n);
  assert.equal(unet.attention.filter((a) => a.kind === 'attn2').length, n);
  for (const a of unet.attention) {
    assert.match(a.output, new RegExp(`^/${a.path.replace(/\./g, '\\.')}/to_out\\.0/`), `${a.path} output ${a.output}`);
    // Cross-attention reads the text; self-attention does not.
    assert.equal(a.inputs.includes('encoder_hidden_states'), a.kind === 'attn2', a.path);
  }
  const c = unetConfig();
  assert.equal(unet.downBlocks.length, c.down_block_types.length);
  assert.equal(unet.upBlocks.length, c.up_block_types.length);
  assert.equal(unet.downBlocks[0]!.resnets.length, c.layers_per_block);
  assert.equal(unet.upBlocks[0]!.resnets.length, c.layers_per_block + 1);
  assert.ok(unet.midBlock?.attentions.length === 1);
  assert.equal(unet.downBlocks[0]!.sampler, 'down_blocks.0/downsamplers.0');
  assert.deepEqual(unet.boundary('conv_in').inputs, ['sample']);
});

test('a wrapper prefix (/unet/...) is detected and stripped', { skip: skipReason }, () => {
  const model = cloneModel(testUNet().proto);
  for (const node of model.graph!.node) if (node.name.startsWith('/')) node.name = `/unet${node.name}`;
  const plain = discoverUNet(testUNet().proto);
  const wrapped = discoverUNet(model);
  assert.deepEqual(wrapped.prefix, ['unet']);
  assert.deepEqual(wrapped.attention.map((a) => [a.path, a.output]), plain.attention.map((a) => [a.path, a.output]));
});

function expectError(model: ModelProto, code: string, pattern: RegExp) {
  assert.throws(() => discoverUNet(model), (err: unknown) => {
    assert.ok(err instanceof OnnxGraphError);
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    return true;
  });
}

test('a graph fused by the transformer optimizer gets a clear error naming the fused ops and the export to use', { skip: skipReason }, () => {
  const model = cloneModel(testUNet().proto);
  const g = model.graph!;
  // What onnxruntime.transformers.optimizer leaves: attention replaced by com.microsoft nodes, scopes gone.
  g.node = g.node.filter((n) => !/\/attn[12]\//.test(n.name));
  g.node.push(newNode({ name: 'MultiHeadAttention_0', opType: 'MultiHeadAttention', domain: 'com.microsoft', input: ['q', 'k', 'v'], output: ['o'] }));
  g.node.push(newNode({ name: 'GroupNorm_0', opType: 'GroupNorm', domain: 'com.microsoft', input: ['x'], output: ['y'] }));
  expectError(model, 'fused_attention', /transformer optimizer.*1 fused com\.microsoft attention node.*GroupNorm.*optimum-cli export onnx/s);
});

test('a graph without scope names, or without attention scopes, gets a clear error', { skip: skipReason }, () => {
  const unnamed = cloneModel(testUNet().proto);
  unnamed.graph!.node.forEach((n, i) => (n.name = `${n.opType}_${i}`));
  expectError(unnamed, 'no_attention_scopes', /no module scope names.*torch < 1\.13/s);
  const noAttention = cloneModel(testUNet().proto);
  noAttention.graph!.node = noAttention.graph!.node.filter((n) => !/\/attn[12]\//.test(n.name));
  expectError(noAttention, 'no_attention_scopes', /no "\.\.\.\/transformer_blocks\.N\/attn1"/);
});
