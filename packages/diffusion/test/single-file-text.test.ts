// The CLIP text encoders built in TypeScript from single-file LDM checkpoints (onnx-graph's src/build/text-encoder.ts):
// on the test checkpoints (tools/test-checkpoints, CI widths) the built graph run by onnxruntime equals PyTorch on the
// same weights (SD-1.5's CLIP-L layout in float32, fp16, bf16; SD-2.1-v's OpenCLIP-H layout, built as diffusers' 23
// layers); discoverClipText finds every encoder layer (each layer's output equals PyTorch's hidden state) and the
// engine's clip-skip variant (clipTextModelPath, hiddenLayer) works on the built graph unchanged; standalone
// text-encoder files are found without the LDM prefix; unused keys are reported and a missing one names itself.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { clipTextModelPath, cloneModel, discoverClipText, loadModel, makeValueInfo, saveModel, TensorProto_DataType } from '@gategraph/onnx-graph';
import { applyLoras, buildClipText, CheckpointError, openSafetensors, toFloat32, WeightSource, writeBuiltModel, type BuiltClipText, type CheckpointReader, type ClipTextOverrides } from '@gategraph/onnx-graph/build';
import { checkpointReferenceValues, readCheckpointReference, testCheckpoints, type CheckpointReference } from './fixtures/test-checkpoints.ts';
import { relativeError } from './fixtures/reference-calls.ts';

// What the shapes of a CI-width checkpoint cannot tell (tools/test-models/arch.py): 8 channels per head, so 4 heads
// for SD-1's 32-wide encoder and 3 for SD-2's 24-wide one. Full-size encoders default to width / 64.
const SD1_CI: ClipTextOverrides = { heads: 4 };
const SD2_CI: ClipTextOverrides = { heads: 3 };

let dir: string;
let reference: CheckpointReference;
let out: string;
before(() => {
  dir = testCheckpoints();
  reference = readCheckpointReference(dir);
  out = mkdtempSync(join(tmpdir(), 'gategraph-single-file-text-'));
});
after(() => rmSync(out, { recursive: true, force: true }));

function source(file: string, reader?: CheckpointReader): WeightSource {
  return new WeightSource(reader ?? openSafetensors(join(dir, file)));
}

/** Writes a built encoder as `<out>/<name>/model.onnx` (+ data, + config.json); returns the .onnx path. */
function write(text: BuiltClipText, src: WeightSource, name: string): string {
  const path = join(out, name, 'model.onnx');
  writeBuiltModel(text.built, src, path);
  writeFileSync(join(out, name, 'config.json'), JSON.stringify(text.diffusersConfig));
  return path;
}

/** input_ids of a reference tensor name, `NAME[1:2]` meaning its row 1 alone. */
function idsOf(spec: string): ort.Tensor {
  const m = /^(.*)\[(\d+):(\d+)\]$/.exec(spec);
  const { data, shape } = checkpointReferenceValues(dir, reference, m ? m[1]! : spec);
  const width = shape[1]!;
  const rows = m ? [Number(m[2]), Number(m[3])] : [0, shape[0]!];
  const ids = BigInt64Array.from((data as number[]).slice(rows[0]! * width, rows[1]! * width), (v) => BigInt(v));
  return new ort.Tensor('int64', ids, [rows[1]! - rows[0]!, width]);
}

function expected(name: string): Float32Array {
  return checkpointReferenceValues(dir, reference, name).data as Float32Array;
}

async function run(path: string, ids: ort.Tensor, fetches?: string[]): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1, logSeverityLevel: 3 });
  try {
    const result = await session.run({ input_ids: ids }, fetches ?? session.outputNames);
    return Object.fromEntries(Object.entries(result).map(([k, v]) => [k, v.data as Float32Array]));
  } finally {
    await session.release();
  }
}


/** Rows [batch, width] of `states` [batch, tokens, width] at each batch item's largest id (CLIP's EOS). */
function atEos(states: Float32Array, ids: ort.Tensor, width: number): Float32Array {
  const [batch, tokens] = ids.dims as [number, number];
  const data = ids.data as BigInt64Array;
  const out = new Float32Array(batch * width);
  for (let b = 0; b < batch; b++) {
    let at = 0;
    for (let t = 1; t < tokens; t++) if (data[b * tokens + t]! > data[b * tokens + at]!) at = t;
    out.set(states.subarray((b * tokens + at) * width, (b * tokens + at + 1) * width), b * width);
  }
  return out;
}

/** LayerNorm over the last axis (eps 1e-5) with a checkpoint's weight and bias, in float64. */
function layerNorm(x: Float32Array, src: WeightSource, key: string): Float32Array {
  const read = (k: string) => toFloat32(src.reader.readBytes(k), src.reader.tensors().find((t) => t.name === k)!.dtype, k);
  const weight = read(`${key}.weight`);
  const bias = read(`${key}.bias`);
  const width = weight.length;
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / width; r++) {
    const row = x.subarray(r * width, (r + 1) * width);
    const mean = row.reduce((a, v) => a + v, 0) / width;
    const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / width;
    for (let i = 0; i < width; i++) out[r * width + i] = ((row[i]! - mean) / Math.sqrt(variance + 1e-5)) * weight[i]! + bias[i]!;
  }
  return out;
}

const CASES = [
  { file: 'sd15.safetensors', tag: 'sd15', overrides: SD1_CI, layers: 12, act: 'quick_gelu' },
  { file: 'sd15-fp16.safetensors', tag: 'sd15-fp16', overrides: SD1_CI, layers: 12, act: 'quick_gelu' },
  { file: 'sd15-bf16.safetensors', tag: 'sd15-bf16', overrides: SD1_CI, layers: 12, act: 'quick_gelu' },
  { file: 'sd21v.safetensors', tag: 'sd21v', overrides: SD2_CI, layers: 23, act: 'gelu' },
];

for (const c of CASES) {
  test(`${c.file}: the built text encoder equals PyTorch on the same weights, and its clip-skip variant too`, async (t) => {
    const src = source(c.file);
    const text = buildClipText(src, c.overrides);
    const path = write(text, src, c.tag);
    assert.equal(text.config.layers, c.layers);
    assert.equal(text.diffusersConfig.num_hidden_layers, c.layers);
    assert.equal(text.diffusersConfig.hidden_act, c.act);
    assert.deepEqual(text.keys.unknown, [], 'every text-encoder tensor is used or ignored with a reason');

    // The CFG pair ("" and the prompt): SD-1's conditioning is last_hidden_state; SD-2's is OpenCLIP's penultimate
    // layer through the final norm, which the 23-layer graph returns as last_hidden_state.
    const pair = reference.calls.find((x) => x.name === `${c.tag}.text`)!;
    const ids = idsOf(pair.inputs.input_ids!);
    const got = await run(path, ids);
    const width = text.config.hiddenSize;
    const last = expected(c.tag === 'sd21v' ? pair.outputs.penultimate! : pair.outputs.last_hidden_state!);
    const lastError = relativeError(got.last_hidden_state!, last);
    // transformers' pooler_output: the last hidden state at the EOS (largest id); SD-2's references carry no
    // 23-layer pooled output, so it is read off the penultimate reference the same way.
    const pooled = c.tag === 'sd21v' ? atEos(last, ids, width) : expected(pair.outputs.pooler_output!);
    const pooledError = relativeError(got.pooler_output!, pooled);

    // discoverClipText finds every layer: each one's output equals PyTorch's hidden state (where the references
    // have the per-layer states: sd15, sd21v).
    const model = loadModel(path);
    const structure = discoverClipText(model.proto);
    assert.equal(structure.layers.length, c.layers);
    assert.equal(structure.tokenEmbedding.weight, 'text_model.embeddings.token_embedding.weight');
    const prompt = reference.calls.find((x) => x.name === `${c.tag}.text.prompt`)!;
    const promptIds = idsOf(prompt.inputs.input_ids!);
    let layerError = 0;
    if (prompt.outputs['hidden_states.1']) {
      const probe = cloneModel(model.proto);
      for (const tensor of structure.layers) probe.graph!.output.push(makeValueInfo(tensor, TensorProto_DataType.FLOAT, ['batch_size', 'sequence_length', width]));
      const probePath = join(out, c.tag, 'layers.onnx');
      saveModel(probe, probePath, { baseDir: model.baseDir, externalData: 'auto' });
      const states = await run(probePath, promptIds, structure.layers);
      structure.layers.forEach((tensor, i) => {
        layerError = Math.max(layerError, relativeError(states[tensor]!, expected(prompt.outputs[`hidden_states.${i + 1}`]!)));
      });
    }

    // Clip skip -2 (ComfyUI's CLIPSetLastLayer -2), as the engine derives it: final norm of layer L-2's output.
    const skip = await clipTextModelPath(path, { hiddenLayer: c.layers - 2 });
    const skipped = (await run(skip.path, promptIds, ['last_hidden_state'])).last_hidden_state!;
    const skipExpected =
      c.tag === 'sd21v'
        ? layerNorm(expected(prompt.outputs[`hidden_states.${c.layers - 1}`]!), src, 'cond_stage_model.model.ln_final')
        : expected(prompt.outputs.clip_skip_2!);
    const skipError = relativeError(skipped, skipExpected);

    t.diagnostic(
      `relative to max |torch|: last_hidden_state ${lastError.toExponential(2)}, pooler_output ${pooledError.toExponential(2)}, ` +
        `clip skip -2 ${skipError.toExponential(2)}${prompt.outputs['hidden_states.1'] ? `, worst layer output ${layerError.toExponential(2)}` : ''}`,
    );
    assert.ok(lastError < reference.tolerance.rel, `last_hidden_state: relative error ${lastError}`);
    assert.ok(pooledError < reference.tolerance.rel, `pooler_output: relative error ${pooledError}`);
    assert.ok(layerError < reference.tolerance.rel, `layer outputs: relative error ${layerError}`);
    assert.ok(skipError < reference.tolerance.rel, `clip skip -2: relative error ${skipError}`);
  });
}

test('a LoRA patched in while building (clip strength -0.5) gives PyTorch\'s merged text encoder', async (t) => {
  const src = source('sd15.safetensors');
  const lora = reference.lora as { file: string; strength_clip: number };
  applyLoras(src, [{ path: join(dir, lora.file), strengthModel: 0, strengthClip: lora.strength_clip }]);
  const path = write(buildClipText(src, SD1_CI), src, 'sd15-lora');
  const pair = reference.calls.find((x) => x.name === 'lora.text')!;
  const got = await run(path, idsOf(pair.inputs.input_ids!));
  const prompt = reference.calls.find((x) => x.name === 'lora.text.prompt')!;
  const skip = await clipTextModelPath(path, { hiddenLayer: 10 });
  const skipped = (await run(skip.path, idsOf(prompt.inputs.input_ids!), ['last_hidden_state'])).last_hidden_state!;
  const errors = [
    relativeError(got.last_hidden_state!, expected(pair.outputs.last_hidden_state!)),
    relativeError(got.pooler_output!, expected(pair.outputs.pooler_output!)),
    relativeError(skipped, expected(prompt.outputs.clip_skip_2!)),
  ];
  t.diagnostic(`relative to max |torch|: last_hidden_state ${errors[0]!.toExponential(2)}, pooler_output ${errors[1]!.toExponential(2)}, clip skip -2 ${errors[2]!.toExponential(2)}`);
  for (const e of errors) assert.ok(e < reference.tolerance.rel, `relative error ${e}`);
  // The LoRA moved the output well beyond the tolerance (so the check above sees it).
  assert.ok(relativeError(got.last_hidden_state!, expected('sd15.text.last_hidden_state')) > 100 * reference.tolerance.rel);
});

test('SD-2: the last OpenCLIP layer, text_projection and logit_scale are ignored with reasons; all 24 layers can be built', async () => {
  const src = source('sd21v.safetensors');
  const text = buildClipText(src, SD2_CI);
  assert.equal(text.config.storedLayers, 24);
  const ignored = new Map(text.keys.ignored.map((i) => [i.key, i.reason]));
  const resblock23 = [...ignored.keys()].filter((k) => k.startsWith('cond_stage_model.model.transformer.resblocks.23.'));
  assert.equal(resblock23.length, 12);
  assert.match(ignored.get(resblock23[0]!)!, /diffusers' SD-2 text encoder stops at layer 23.*penultimate/);
  assert.match(ignored.get('cond_stage_model.model.text_projection')!, /projection/);
  assert.match(ignored.get('cond_stage_model.model.logit_scale')!, /temperature/);
  assert.ok((text.keys.otherComponents.unet ?? 0) > 0 && (text.keys.otherComponents.vae ?? 0) > 0);

  // layers: 24 gives OpenCLIP's last layer through the final norm (the reference's last_hidden_state).
  const all = buildClipText(source('sd21v.safetensors'), { ...SD2_CI, layers: 24 });
  assert.ok(!all.keys.ignored.some((i) => i.key.includes('resblocks.23.')));
  const pair = reference.calls.find((x) => x.name === 'sd21v.text')!;
  const got = await run(write(all, src, 'sd21v-24'), idsOf(pair.inputs.input_ids!), ['last_hidden_state']);
  assert.ok(relativeError(got.last_hidden_state!, expected(pair.outputs.last_hidden_state!)) < reference.tolerance.rel);
});

test('SD-1: only position_ids is ignored; other components are counted', () => {
  const text = buildClipText(source('sd15.safetensors'), SD1_CI);
  assert.equal(text.keys.used, 196);
  assert.ok(text.keys.ignored.some((i) => i.key === 'cond_stage_model.transformer.text_model.embeddings.position_ids'));
  assert.ok(!text.keys.ignored.some((i) => i.key.startsWith('cond_stage_model.') && !i.key.endsWith('position_ids')));
  assert.ok((text.keys.otherComponents.unet ?? 0) > 0 && (text.keys.otherComponents.vae ?? 0) > 0);
});

/** The checkpoint's text-encoder tensors under other names (`rename` maps a checkpoint key, undefined drops it). */
function renamed(file: string, rename: (key: string) => string | undefined): CheckpointReader {
  const inner = openSafetensors(join(dir, file));
  const back = new Map<string, string>();
  for (const t of inner.tensors()) {
    const name = rename(t.name);
    if (name !== undefined) back.set(name, t.name);
  }
  return {
    path: inner.path,
    tensors: () => inner.tensors().flatMap((t) => (rename(t.name) === undefined ? [] : [{ ...t, name: rename(t.name)! }])),
    readBytes: (name) => inner.readBytes(back.get(name) ?? name),
  };
}

test('standalone text-encoder files (and old SD-1 files without `text_model.`) are found', async () => {
  const pair = reference.calls.find((x) => x.name === 'sd15.text')!;
  const layouts: Array<{ name: string; file: string; strip: string; add?: string; overrides: ClipTextOverrides; prefix: string; reference: string }> = [
    { name: 'sd15-text_model', file: 'sd15.safetensors', strip: 'cond_stage_model.transformer.', overrides: SD1_CI, prefix: 'text_model.', reference: pair.outputs.last_hidden_state! },
    // SD-1 checkpoints saved before transformers added the `text_model.` level
    { name: 'sd15-old-ldm', file: 'sd15.safetensors', strip: 'cond_stage_model.transformer.text_model.', overrides: SD1_CI, add: 'cond_stage_model.transformer.', prefix: 'cond_stage_model.transformer.', reference: pair.outputs.last_hidden_state! },
    { name: 'sd15-bare', file: 'sd15.safetensors', strip: 'cond_stage_model.transformer.text_model.', overrides: SD1_CI, prefix: '', reference: pair.outputs.last_hidden_state! },
    { name: 'sd21-open_clip', file: 'sd21v.safetensors', strip: 'cond_stage_model.model.', overrides: SD2_CI, prefix: '', reference: 'sd21v.text.penultimate' },
  ];
  for (const l of layouts) {
    const src = source(l.file, renamed(l.file, (k) => (k.startsWith(l.strip) ? (l.add ?? '') + k.slice(l.strip.length) : undefined)));
    const text = buildClipText(src, l.overrides);
    assert.equal(text.config.prefix, l.prefix, l.name);
    assert.deepEqual(text.keys.unknown, [], l.name);
    const ids = idsOf(l.file === 'sd21v.safetensors' ? 'text.input_ids.sd21' : pair.inputs.input_ids!);
    const got = await run(write(text, src, l.name), ids, ['last_hidden_state']);
    assert.ok(relativeError(got.last_hidden_state!, expected(l.reference)) < reference.tolerance.rel, l.name);
  }
});

test('a missing text-encoder tensor is an error naming it', () => {
  const cases = [
    { file: 'sd15.safetensors', key: 'cond_stage_model.transformer.text_model.encoder.layers.5.mlp.fc2.weight', overrides: SD1_CI },
    { file: 'sd21v.safetensors', key: 'cond_stage_model.model.transformer.resblocks.3.attn.in_proj_weight', overrides: SD2_CI },
    { file: 'sd21v.safetensors', key: 'cond_stage_model.model.ln_final.bias', overrides: SD2_CI },
  ];
  for (const c of cases) {
    const src = source(c.file, renamed(c.file, (k) => (k === c.key ? undefined : k)));
    assert.throws(
      () => buildClipText(src, c.overrides),
      (err: unknown) => {
        assert.ok(err instanceof CheckpointError);
        assert.equal(err.code, 'missing_key');
        assert.equal(err.key, c.key);
        assert.ok(err.message.includes(c.key));
        return true;
      },
    );
  }
  // No text encoder at all (a standalone VAE file): the SD-1 key it looked for is named.
  assert.throws(() => buildClipText(source('vae-ft.safetensors')), (err: unknown) => err instanceof CheckpointError && err.code === 'missing_key' && /token_embedding/.test(err.key ?? ''));
});

test('a width the default 64 channels per head cannot split says which override to pass', () => {
  assert.throws(() => buildClipText(source('sd21v.safetensors')), /overrides\.heads/);
});
