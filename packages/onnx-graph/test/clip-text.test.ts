// The CLIP text encoder derivations on the embedded model's real text encoder (a transformers CLIPTextModel
// exported with scope names), checked against references computed here: each layer's output read from a capture
// graph, normalised with the final layer norm's weights in JS.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { clipTextModelPath, deriveClipText, deriveModel, discoverClipText, loadModel, OnnxGraphError, recomputeOutput, type ModelFile } from '../src/index.ts';
import { run, testModelDir } from './helpers.ts';

const encoderPath = join(testModelDir, 'text_encoder', 'model.onnx');
const skip = existsSync(encoderPath) ? false : `no text encoder at ${encoderPath}`;
const config = () => JSON.parse(readFileSync(join(testModelDir, 'text_encoder', 'config.json'), 'utf8')) as { layer_norm_eps: number; hidden_size: number; num_hidden_layers: number };

let file: ModelFile | undefined;
const encoder = () => (file ??= loadModel(encoderPath));

function floats(f: ModelFile, name: string): Float32Array {
  const t = f.proto.graph!.initializer.find((x) => x.name === name)!;
  return new Float32Array(Uint8Array.from(t.rawData).buffer); // a copy: rawData views the file's Buffer
}

/** A prompt's ids (tiny-sd: bos 46, words, eos 47, padded with eos) and the tensor the encoder takes. */
const IDS = [46, 2, 30, 14, 25, 2, 18, 7, 47, ...new Array<number>(68).fill(47)];
const idsTensor = () => new ort.Tensor('int64', BigInt64Array.from(IDS, BigInt), [1, 77]);

function layerNorm(x: Float32Array, weight: Float32Array, bias: Float32Array, eps: number): Float32Array {
  const D = weight.length;
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / D; r++) {
    const row = x.subarray(r * D, (r + 1) * D);
    const mean = row.reduce((s, v) => s + v, 0) / D;
    const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / D;
    for (let d = 0; d < D; d++) out[r * D + d] = ((row[d]! - mean) / Math.sqrt(variance + eps)) * weight[d]! + bias[d]!;
  }
  return out;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('discoverClipText finds every encoder layer\'s output, the final layer norm and the token embedding lookup', { skip }, () => {
  const s = discoverClipText(encoder().proto);
  assert.equal(s.prefix, 'text_model');
  assert.equal(s.layers.length, config().num_hidden_layers);
  s.layers.forEach((t, i) => assert.match(t, new RegExp(`^/text_model/encoder/layers\\.${i}/`)));
  assert.deepEqual(s.finalLayerNorm, { path: 'text_model/final_layer_norm', input: s.layers.at(-1), output: 'last_hidden_state' });
  assert.deepEqual(s.tokenEmbedding, { output: '/text_model/embeddings/token_embedding/Gather_output_0', weight: 'text_model.embeddings.token_embedding.weight' });
});

test('hiddenLayer i: last_hidden_state = final_layer_norm(output of layer i); the pooled output stays the last layer\'s', { skip }, async () => {
  const f = encoder();
  const s = discoverClipText(f.proto);
  const plain = await run(f.proto, { input_ids: idsTensor() });
  const captured = await run(deriveModel(f.proto, { capture: s.layers }).model, { input_ids: idsTensor() });
  const weight = floats(f, 'text_model.final_layer_norm.weight');
  const bias = floats(f, 'text_model.final_layer_norm.bias');
  for (let i = 0; i < s.layers.length; i++) {
    const { model, report } = deriveClipText(f, { hiddenLayer: i });
    assert.deepEqual(report, { layers: s.layers.length, hiddenLayer: i });
    const out = await run(model, { input_ids: idsTensor() });
    const expected = layerNorm(captured[s.layers[i]!]!.data as Float32Array, weight, bias, config().layer_norm_eps);
    const err = maxDiff(out.last_hidden_state!.data as Float32Array, expected);
    assert.ok(err < 1e-5, `layer ${i}: max |derived - layer norm of the layer's output| = ${err}`);
    assert.ok(maxDiff(out.pooler_output!.data as Float32Array, plain.pooler_output!.data as Float32Array) < 1e-6, `layer ${i}: pooled unchanged`);
  }
  // The last layer is the model itself: nothing is copied.
  assert.equal(deriveClipText(f, { hiddenLayer: s.layers.length - 1 }).model, f.proto);
  assert.throws(() => deriveClipText(f, { hiddenLayer: s.layers.length }), /has layers 0\.\.2/);
});

test('tokenEmbeddingsInput: fed the lookup\'s rows, the derived encoder reproduces the model; the table is located on disk', { skip }, async () => {
  const f = encoder();
  const { model, report } = deriveClipText(f, { tokenEmbeddingsInput: true, hiddenLayer: 1 });
  const te = report.tokenEmbeddings!;
  assert.equal(te.input, '/text_model/embeddings/token_embedding/Gather_output_0');
  const table = floats(f, 'text_model.embeddings.token_embedding.weight');
  const D = config().hidden_size;
  assert.deepEqual(te.table.dims, [table.length / D, D]);
  // The location points at the table's bytes in the .onnx file.
  const onDisk = readFileSync(te.table.file).subarray(te.table.offset, te.table.offset + table.byteLength);
  assert.deepEqual(new Float32Array(Uint8Array.from(onDisk).buffer), table);
  const rows = new Float32Array(IDS.length * D);
  IDS.forEach((id, j) => rows.set(table.subarray(id * D, (id + 1) * D), j * D));
  const out = await run(model, { input_ids: idsTensor(), [te.input]: new ort.Tensor('float32', rows, [1, 77, D]) });
  const reference = await run(deriveClipText(f, { hiddenLayer: 1 }).model, { input_ids: idsTensor() });
  assert.ok(maxDiff(out.last_hidden_state!.data as Float32Array, reference.last_hidden_state!.data as Float32Array) < 1e-6);
  assert.ok(maxDiff(out.pooler_output!.data as Float32Array, reference.pooler_output!.data as Float32Array) < 1e-6);
  assert.ok(!model.graph!.initializer.some((t) => t.name === 'text_model.embeddings.token_embedding.weight'), 'the table is not in the derived graph');
});

test('recomputeOutput refuses modules that read several tensors and outputs they do not produce', { skip }, () => {
  const f = encoder();
  const s = discoverClipText(f.proto);
  const refused = (spec: Parameters<typeof recomputeOutput>[1], message: RegExp) =>
    assert.throws(() => recomputeOutput(f.proto, spec), (err: unknown) => err instanceof OnnxGraphError && message.test(err.message));
  refused({ module: 'text_model/encoder/layers.1', from: s.layers[0]!, output: 'last_hidden_state' }, /reads 2 tensors/);
  refused({ module: 'text_model/final_layer_norm', from: s.layers[0]!, output: 'pooler_output' }, /not a graph output produced by module/);
  refused({ module: 'text_model/final_layer_norm', from: 'nothing', output: 'last_hidden_state' }, /no node produces tensor "nothing"/);
  refused({ module: 'text_model/nowhere', from: s.layers[0]!, output: 'last_hidden_state' }, /no node lies in module/);
});

test('clipTextModelPath caches each variant by content', { skip }, async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'clip-text-cache-'));
  try {
    const first = await clipTextModelPath(encoderPath, { hiddenLayer: 0, tokenEmbeddingsInput: true }, { cacheDir });
    const again = await clipTextModelPath(encoderPath, { tokenEmbeddingsInput: true, hiddenLayer: 0 }, { cacheDir });
    const other = await clipTextModelPath(encoderPath, { hiddenLayer: 1 }, { cacheDir });
    assert.equal(first.fromCache, false);
    assert.equal(again.fromCache, true);
    assert.equal(again.path, first.path);
    assert.notEqual(other.path, first.path);
    assert.deepEqual(again.report, first.report);
    const session = await ort.InferenceSession.create(first.path);
    assert.deepEqual([...session.inputNames].sort(), ['/text_model/embeddings/token_embedding/Gather_output_0', 'input_ids']);
    await session.release();
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});
