// Prompts as ComfyUI reads them, on the embedded model's real text encoder and UNet: weights, clip skip,
// textual inversion, chunks of 77 and CFG between prompts of different lengths. References are computed here
// from plain encodes, a graph that exposes the layer outputs, and the token embedding table read from the file.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { deriveModel, discoverClipText, encodeModel, loadModel, makeValueInfo, saveModel, valueInfoType } from '@gategraph/onnx-graph';
import {
  chooseClipLayer,
  ClipLayerError,
  clipLayerCount,
  createScheduler,
  EmbeddingFileError,
  encodePrompt,
  maxAbsDiff,
  OnnxUnetRunner,
  openModelFolder,
  randn,
  sample,
  zeros,
  type DiffusionModel,
  type FeedValue,
  type Tensor,
  type UnetRunner,
} from '../src/index.ts';
import { requireTestModel, tempDir } from './fixtures/test-model.ts';
import { f32, u16, writeSafetensors } from './safetensors-bytes.ts';

const dir = requireTestModel();
const model = await openModelFolder(dir);
after(() => model.release());
const D = model.io.text.hiddenSize;
const L = model.io.text.sequenceLength;

/** Rows j of a [1, L, D] encoding. */
const rowOf = (t: Tensor, j: number) => t.data.subarray(j * D, (j + 1) * D);
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

test('(word:w): positions weighing w are z_empty + (z - z_empty) * w, from two plain encodes; the rest as encoded', async () => {
  const z = (await encodePrompt(model, 'a red circle on a gray background')).hiddenStates;
  const empty = (await encodePrompt(model, '')).hiddenStates;
  const cases: Array<[string, Record<number, number>]> = [
    ['a (red:1.5) circle on a gray background', { 2: 1.5 }],
    ['a ((red)) circle on a (gray background:0.6)', { 2: 1.1 * 1.1, 6: 0.6, 7: 0.6 }],
    ['(a red circle on a gray background:0)', { 1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0 }],
  ];
  for (const [prompt, weights] of cases) {
    const got = (await encodePrompt(model, prompt)).hiddenStates;
    for (let j = 0; j < L; j++) {
      const w = weights[j];
      const expected = w === undefined ? rowOf(z, j) : rowOf(z, j).map((v, d) => rowOf(empty, j)[d]! + (v - rowOf(empty, j)[d]!) * w);
      const err = maxDiff(rowOf(got, j), expected);
      assert.ok(err < 1e-5, `${prompt}: position ${j} off by ${err}`);
    }
  }
  // Weights of 1.0 everywhere: exactly the plain encode, no empty-prompt pass.
  assert.equal(maxAbsDiff((await encodePrompt(model, '(a red circle on a gray background:1.0)')).hiddenStates, z), 0);
  await assert.rejects(encodePrompt(model, '(red:nan)'), /weight of "red" is NaN/);
});

test('clip skip: stop_at_clip_layer -k gives final_layer_norm(output of layer N - k); -1 and beyond N are the model itself', async () => {
  const file = loadModel(model.textEncoder.path);
  const s = discoverClipText(file.proto);
  const N = s.layers.length;
  const capture = await ort.InferenceSession.create(encodeModel(deriveModel(file.proto, { capture: s.layers }).model));
  const prompt = 'a small blue square at the top left';
  const plain = await encodePrompt(model, prompt);
  const layers = (await capture.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(plain.ids, BigInt), [1, L]) })) as Record<string, ort.Tensor>;
  await capture.release();
  const init = (name: string) => new Float32Array(Uint8Array.from(file.proto.graph!.initializer.find((t) => t.name === name)!.rawData).buffer);
  const [weight, bias] = [init('text_model.final_layer_norm.weight'), init('text_model.final_layer_norm.bias')];
  const eps = model.textEncoder.config.layer_norm_eps as number;
  for (let k = 2; k <= N; k++) {
    const got = await encodePrompt(model, prompt, { stopAtClipLayer: -k });
    const x = layers[s.layers[N - k]!]!.data as Float32Array;
    for (let j = 0; j < L; j++) {
      const row = x.subarray(j * D, (j + 1) * D);
      const mean = row.reduce((a, v) => a + v, 0) / D;
      const sd = Math.sqrt(row.reduce((a, v) => a + (v - mean) ** 2, 0) / D + eps);
      const expected = row.map((v, d) => ((v - mean) / sd) * weight[d]! + bias[d]!);
      const err = maxDiff(rowOf(got.hiddenStates, j), expected);
      assert.ok(err < 1e-5, `-${k}, position ${j}: off by ${err}`);
    }
    assert.ok(maxAbsDiff(got.pooled!, plain.pooled!) < 1e-5, 'the pooled output is the last layer\'s, as ComfyUI\'s');
  }
  assert.equal(maxAbsDiff((await encodePrompt(model, prompt, { stopAtClipLayer: -1 })).hiddenStates, plain.hiddenStates), 0);
  assert.equal(maxAbsDiff((await encodePrompt(model, prompt, { stopAtClipLayer: -(N + 1) })).hiddenStates, plain.hiddenStates), 0);
  // clip skip and weights together: the empty prompt goes through the same layer
  const weighted = (await encodePrompt(model, 'a small (blue:1.3) square at the top left', { stopAtClipLayer: -2 })).hiddenStates;
  const skipped = (await encodePrompt(model, prompt, { stopAtClipLayer: -2 })).hiddenStates;
  const skippedEmpty = (await encodePrompt(model, '', { stopAtClipLayer: -2 })).hiddenStates;
  const expected = rowOf(skipped, 3).map((v, d) => rowOf(skippedEmpty, 3)[d]! + (v - rowOf(skippedEmpty, 3)[d]!) * 1.3);
  assert.ok(maxDiff(rowOf(weighted, 3), expected) < 1e-5);
});

test('clip skip on SD-2.x\'s 23-layer export: -2 is the export, -3 its layer 21, -1 is refused; SD-1.x maps as it is', () => {
  const sd2 = clipLayerCount(1024, 23);
  assert.deepEqual(sd2, { exported: 23, full: 24 });
  assert.deepEqual(chooseClipLayer(-2, sd2), { kind: 'export' });
  assert.deepEqual(chooseClipLayer(-3, sd2), { kind: 'layer', index: 21 });
  assert.deepEqual(chooseClipLayer(-24, sd2), { kind: 'layer', index: 0 });
  assert.throws(() => chooseClipLayer(-1, sd2), (err: unknown) => err instanceof ClipLayerError && /layer 24 of the 24-layer text encoder.*use -2 or lower/.test(err.message));
  const sd1 = clipLayerCount(768, 12);
  assert.deepEqual(sd1, { exported: 12, full: 12 });
  assert.deepEqual(chooseClipLayer(-1, sd1), { kind: 'export' });
  assert.deepEqual(chooseClipLayer(-2, sd1), { kind: 'layer', index: 10 });
  assert.deepEqual(chooseClipLayer(-12, sd1), { kind: 'layer', index: 0 });
  assert.deepEqual(chooseClipLayer(-13, sd1), { kind: 'export' }, 'beyond the layers: ComfyUI uses the last');
  assert.throws(() => chooseClipLayer(0, sd1), /negative whole number/);
  // a 24-layer OpenCLIP export (not diffusers') is taken whole
  assert.deepEqual(clipLayerCount(1024, 24), { exported: 24, full: 24 });
});

/** The token embedding table of the test model's text encoder, read from its file. */
function tokenTable(): Float32Array {
  const file = loadModel(model.textEncoder.path);
  const t = file.proto.graph!.initializer.find((x) => x.name === 'text_model.embeddings.token_embedding.weight')!;
  return new Float32Array(Uint8Array.from(t.rawData).buffer);
}
const rowsOf = (table: Float32Array, words: string[]) => words.flatMap((w) => model.tokenizer.tokenIds(w)).flatMap((id) => [...table.subarray(id * D, (id + 1) * D)]);

test('textual inversion: an embedding of known words\' token embeddings encodes as those words', async () => {
  const embeddings = join(tempDir('embeddings'), 'embeddings');
  mkdirSync(join(embeddings, 'sub'), { recursive: true });
  const table = tokenTable();
  // A1111's layout: one tensor emb_params [n, D]
  writeSafetensors(join(embeddings, 'redcircle.safetensors'), { emb_params: { dtype: 'F32', shape: [2, D], bytes: f32(rowsOf(table, ['red', 'circle'])) } });
  // SDXL-style file in a subfolder: the clip_l tensor is SD-1.x's; one vector, float16
  const half = rowsOf(table, ['blue']).map((v) => f16(v));
  writeSafetensors(join(embeddings, 'sub', 'blueish.safetensors'), {
    clip_g: { dtype: 'F32', shape: [1, 1280], bytes: f32(new Float32Array(1280)) },
    clip_l: { dtype: 'F16', shape: [1, D], bytes: u16(half) },
  });
  writeSafetensors(join(embeddings, 'wide.safetensors'), { emb_params: { dtype: 'F32', shape: [1, 768], bytes: f32(new Float32Array(768).fill(1)) } });
  writeFileSync(join(embeddings, 'pickled.pt'), 'not read');
  writeSafetensors(join(embeddings, 'ints.safetensors'), { emb_params: { dtype: 'I64', shape: [1, 2], bytes: new Uint8Array(16) } });
  const opts = { embeddingFolders: [embeddings] };

  const reference = await encodePrompt(model, 'a red circle on a gray background');
  const got = await encodePrompt(model, 'a embedding:redcircle on a gray background', opts);
  assert.deepEqual(got.warnings, []);
  const err = maxAbsDiff(got.hiddenStates, reference.hiddenStates);
  assert.ok(err < 1e-5, `a 2-vector embedding of "red circle" vs the words: ${err}`);
  assert.ok(maxAbsDiff(got.pooled!, reference.pooled!) < 1e-5, 'the pooled output is still read at the end token');
  // weights, clip skip and a float16 embedding found in a subfolder
  const blue = await encodePrompt(model, 'a (embedding:blueish:1.2) square', { ...opts, stopAtClipLayer: -2 });
  const blueRef = await encodePrompt(model, 'a (blue:1.2) square', { stopAtClipLayer: -2 });
  assert.ok(maxAbsDiff(blue.hiddenStates, blueRef.hiddenStates) < 1e-3, 'float16 rows are within float16 rounding of the words');
  // unknown: warned and dropped; another width: warned and left out, as ComfyUI does
  const unknown = await encodePrompt(model, 'a embedding:nothere red circle', opts);
  assert.deepEqual(unknown.warnings, ['embedding:nothere does not exist, ignoring it (as ComfyUI does)']);
  assert.equal(maxAbsDiff(unknown.hiddenStates, (await encodePrompt(model, 'a red circle')).hiddenStates), 0);
  const wide = await encodePrompt(model, 'a embedding:wide red circle', opts);
  assert.match(wide.warnings.join(), /embedding:wide holds 768-wide vectors \(an SD-1.x embedding\) but this text encoder's are 128 wide/);
  assert.equal(maxAbsDiff(wide.hiddenStates, unknown.hiddenStates), 0);
  // pickles are never loaded
  await assert.rejects(encodePrompt(model, 'embedding:pickled', opts), (e: unknown) => e instanceof EmbeddingFileError && /pickled\.pt, a PyTorch pickle/.test(e.message));
  await assert.rejects(encodePrompt(model, 'embedding:ints', opts), (e: unknown) => e instanceof EmbeddingFileError && /embedding:ints: .*tensor "emb_params" is I64/.test(e.message));
});

/** float32 -> float16 bits, round to nearest even (normal range only: the test's values are small). */
function f16(v: number): number {
  const f = new Float32Array([v]);
  const bits = new Uint32Array(f.buffer)[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = ((bits >>> 23) & 0xff) - 127 + 15;
  if (exp <= 0) return sign;
  let mant = bits & 0x7fffff;
  let half = sign | (exp << 10) | (mant >>> 13);
  mant &= 0x1fff;
  if (mant > 0x1000 || (mant === 0x1000 && half & 1)) half++;
  return half;
}

/** A copy of the test model whose UNet takes any encoder_hidden_states length (the same graph, its input declared [batch, sequence, D]). */
async function anyLengthModel(): Promise<DiffusionModel> {
  const root = join(tempDir('any-length'), 'model');
  mkdirSync(join(root, 'unet'), { recursive: true });
  for (const part of ['model_index.json', 'scheduler', 'tokenizer', 'text_encoder', 'vae_decoder', 'vae_encoder']) symlinkSync(join(dir, part), join(root, part));
  copyFileSync(join(dir, 'unet', 'config.json'), join(root, 'unet', 'config.json'));
  const unet = loadModel(join(dir, 'unet', 'model.onnx'));
  const inputs = unet.proto.graph!.input;
  const at = inputs.findIndex((v) => v.name === 'encoder_hidden_states');
  const t = valueInfoType(inputs[at]!);
  inputs[at] = makeValueInfo('encoder_hidden_states', t.elemType, [t.dims![0]!, 'sequence', t.dims![2]!]);
  saveModel(unet.proto, join(root, 'unet', 'model.onnx'), { baseDir: unet.baseDir });
  return openModelFolder(root);
}

const long = (n: number) => Array.from({ length: n }, (_, i) => ['red', 'circle', 'blue', 'square'][i % 4]).join(' ');

test('prompts over 75 tokens: chunks encoded one by one and concatenated on a UNet that takes them, cut where it does not', async () => {
  const any = await anyLengthModel();
  after(() => any.release());
  assert.equal(any.io.unet.sequenceLength, undefined);
  const prompt = long(160);
  const enc = await encodePrompt(any, prompt);
  assert.deepEqual(enc.hiddenStates.shape, [1, 3 * L, D]);
  assert.equal(enc.chunks, 3);
  assert.equal(enc.truncated, undefined);
  // each chunk is the encoding of its 75 (75, 10) tokens alone; the pooled output is the first chunk's
  const parts = [long(75), long(150).split(' ').slice(75).join(' '), long(160).split(' ').slice(150).join(' ')];
  for (const [k, text] of parts.entries()) {
    const alone = await encodePrompt(model, text);
    const chunk = { data: enc.hiddenStates.data.subarray(k * L * D, (k + 1) * L * D), shape: [1, L, D] };
    assert.equal(maxAbsDiff(chunk, alone.hiddenStates), 0, `chunk ${k}`);
    if (k === 0) assert.equal(maxAbsDiff(enc.pooled!, alone.pooled!), 0);
  }
  // tiny-sd's own UNet takes 77 positions: one chunk, and what was cut is reported
  const cut = await encodePrompt(model, prompt);
  assert.deepEqual(cut.hiddenStates.shape, [1, L, D]);
  assert.equal(cut.truncated, long(160).split(' ').slice(75).join(' '));
  // a cap on chunks applies to the any-length UNet too
  assert.equal((await encodePrompt(any, prompt, { maxChunks: 2 })).chunks, 2);
});

/** A UnetRunner over the real one that records each call's rows and encoder_hidden_states length. */
class Recording implements UnetRunner {
  calls: Array<{ rows: number; length: number }> = [];
  constructor(private readonly inner: UnetRunner) {}
  get io() {
    return this.inner.io;
  }
  get variants() {
    return this.inner.variants;
  }
  run(variant: string, feeds: Record<string, FeedValue>, fetches: readonly string[]) {
    const ehs = feeds[this.io.encoderHiddenStates] as Tensor;
    this.calls.push({ rows: ehs.shape[0]!, length: ehs.shape[1]! });
    return this.inner.run(variant, feeds, fetches);
  }
}

test("CFG between prompts of different lengths: ComfyUI's lcm repetition in one call up to 4x, two calls beyond; same result", async () => {
  const any = await anyLengthModel();
  after(() => any.release());
  const neg = (await encodePrompt(any, '')).hiddenStates;
  const pos = (await encodePrompt(any, 'a large red circle at the top left on a gray background')).hiddenStates;
  // Repeating a prompt's chunk leaves attention's result unchanged: [c, c] guides as c does.
  const repeated = (n: number): Tensor => {
    const data = new Float32Array(n * L * D);
    for (let r = 0; r < n; r++) data.set(pos.data, r * L * D);
    return { data, shape: [1, n * L, D] };
  };
  const shape = [1, any.io.unet.latentChannels, 16, 16];
  const run = async (positive: Tensor) => {
    const unet = new Recording(OnnxUnetRunner.forModel(any));
    const out = await sample({ unet, scheduler: createScheduler('euler', any.schedulerConfig, 4, { schedule: 'karras' }), positive, negative: neg, cfg: 6, latent: zeros(shape), noise: randn(shape, 5) });
    return { latent: out.latent, calls: unet.calls };
  };
  const base = await run(pos);
  assert.deepEqual(base.calls, new Array(4).fill({ rows: 2, length: L }));
  const shared = await run(repeated(2));
  assert.deepEqual(shared.calls, new Array(4).fill({ rows: 2, length: 2 * L }), '77 and 154: the negative repeated to 154, one call');
  const separate = await run(repeated(5));
  assert.deepEqual(separate.calls, new Array(4).fill([{ rows: 1, length: L }, { rows: 1, length: 5 * L }]).flat(), '77 and 385 (5x): two calls');
  for (const [what, r] of [['shared', shared], ['separate', separate]] as const) {
    const err = maxAbsDiff(r.latent, base.latent);
    assert.ok(err < 1e-4, `${what}: max |latent - the 77-token run's| = ${err}`);
  }
});
