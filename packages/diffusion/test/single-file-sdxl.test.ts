// SDXL single-file checkpoints (Stability's SGM layout: model.diffusion_model.* with label_emb,
// conditioner.embedders.0.transformer.* CLIP ViT-L/14, conditioner.embedders.1.model.* OpenCLIP ViT-bigG/14,
// first_stage_model.*; the refiner's bigG alone at conditioner.embedders.0.model.) and ComfyUI's standalone
// clip_l / clip_g files, built by onnx-graph's builders into model folders and checked against PyTorch references
// on the same weights (tools/test-checkpoints: sdxl-small, sdxl-refiner-small, clip_l-small, clip_g-small, float16
// files at widths the builders' defaults fit, so nothing is overridden, as for a user's file).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import {
  detectCheckpoint,
  detectSdxlTextEncoderFile,
  detectTextEncoderFile,
  encodeSdxlPrompt,
  modelFolderFromCheckpoint,
  openModelFolder,
  openTextEncoderFolder,
  sdxlTextEncoderFolderFromFiles,
  SessionPool,
  type SingleFileFamily,
} from '../src/index.ts';
import { relativeError } from './fixtures/reference-calls.ts';
import { checkpointReferenceValues, readCheckpointReference, runUnetReferenceCall, testCheckpoints, type CheckpointReference } from './fixtures/test-checkpoints.ts';

const pool = new SessionPool();
const cacheDir = mkdtempSync(join(tmpdir(), 'gg-single-file-sdxl-'));
let dir: string;
let reference: CheckpointReference;
before(() => {
  dir = testCheckpoints();
  reference = readCheckpointReference(dir);
});
after(async () => {
  await pool.freeAll();
  rmSync(cacheDir, { recursive: true, force: true });
});

const SDXL: SingleFileFamily = { text: 'sdxl', prediction: 'epsilon' };
const REFINER: SingleFileFamily = { text: 'sdxl-refiner', prediction: 'epsilon' };
/** The references are float32 PyTorch on the float16 weights upcast: a float32 graph matches to float32 rounding. */
const TOLERANCE = 1e-4;

/** The ids of a reference input (`text.input_ids.X` or its row 1 alone, `...[1:2]`). */
function idsOf(name: string): ort.Tensor {
  const row = name.endsWith('[1:2]');
  const { data, shape } = checkpointReferenceValues(dir, reference, row ? name.slice(0, -5) : name);
  const ids = BigInt64Array.from((data as number[]).map(BigInt));
  const width = shape[1]!;
  return row ? new ort.Tensor('int64', ids.slice(width, 2 * width), [1, width]) : new ort.Tensor('int64', ids, shape);
}

/**
 * Runs every output of a text reference call on `modelPath`: `penultimate` is the raw state SDXL conditions on,
 * which an optimum export names `hidden_states.<layers - 1>`.
 */
async function checkTextCall(modelPath: string, call: string, layers: number): Promise<number> {
  const c = reference.calls.find((x) => x.name === call);
  assert.ok(c, `reference call ${call}`);
  const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1, logSeverityLevel: 3 });
  try {
    const names = Object.fromEntries(Object.keys(c.outputs).map((o) => [o, o === 'penultimate' ? `hidden_states.${layers - 1}` : o]));
    const result = await session.run({ input_ids: idsOf(c.inputs.input_ids!) }, Object.values(names));
    for (const [output, tensor] of Object.entries(c.outputs)) {
      const want = checkpointReferenceValues(dir, reference, tensor);
      const got = result[names[output]!]!;
      assert.deepEqual([...got.dims], want.shape, `${call} ${output}: shape`);
      const error = relativeError(got.data as Float32Array, want.data as Float32Array);
      assert.ok(error <= TOLERANCE, `${call} ${output}: relative error ${error.toExponential(2)}`);
    }
    return Object.keys(c.outputs).length;
  } finally {
    await session.release();
  }
}

async function checkUnetCall(modelPath: string, call: string): Promise<void> {
  const { out, expected } = await runUnetReferenceCall(dir, reference, modelPath, call);
  const error = relativeError(out, expected);
  assert.ok(error <= TOLERANCE, `${call}: relative error ${error.toExponential(2)}`);
}

test('SDXL and refiner single files are detected as what they are, with both text encoders where they lie', () => {
  const base = detectCheckpoint(join(dir, 'sdxl-small.safetensors'));
  assert.ok(!('refusal' in base), 'refusal' in base ? base.refusal : '');
  assert.deepEqual(base.family, SDXL);
  assert.equal(base.info.textEncoder?.prefix, 'conditioner.embedders.0.transformer.text_model.');
  assert.equal(base.info.textEncoder2?.prefix, 'conditioner.embedders.1.model.');
  assert.equal(base.info.unet.contextDim, 128);
  const refiner = detectCheckpoint(join(dir, 'sdxl-refiner-small.safetensors'));
  assert.ok(!('refusal' in refiner), 'refusal' in refiner ? refiner.refusal : '');
  assert.deepEqual(refiner.family, REFINER);
  assert.equal(refiner.info.textEncoder?.prefix, 'conditioner.embedders.0.model.');
  assert.equal(refiner.info.textEncoder2, null);
});

test('sdxl-small.safetensors builds into an SDXL folder whose every component equals PyTorch on the same weights', async () => {
  const built = await modelFolderFromCheckpoint(join(dir, 'sdxl-small.safetensors'), SDXL, { cacheDir });
  assert.deepEqual(Object.keys(built.components).sort(), ['text_encoder', 'text_encoder_2', 'unet', 'vae_decoder', 'vae_encoder']);
  // Every tensor of the file is used by one component or left out with a reason.
  for (const c of Object.values(built.components)) assert.deepEqual(c.keys.unknown, [], `${c.component}: unknown keys`);
  assert.equal(await checkTextCall(built.components.text_encoder!.modelPath, 'sdxl-small.text_l', 12), 3);
  await checkTextCall(built.components.text_encoder!.modelPath, 'sdxl-small.text_l.prompt', 12);
  assert.equal(await checkTextCall(built.components.text_encoder_2!.modelPath, 'sdxl-small.text_g', 32), 3);
  await checkTextCall(built.components.text_encoder_2!.modelPath, 'sdxl-small.text_g.prompt', 32);
  await checkUnetCall(built.components.unet!.modelPath, 'sdxl-small.unet');

  const model = await openModelFolder(built.dir, { pool });
  try {
    assert.deepEqual(model.io.unet.added && { dim: model.io.unet.added.textEmbedsDim, ids: model.io.unet.added.timeIdsCount }, { dim: 64, ids: 6 });
    assert.equal(model.io.vae.scalingFactor, 0.13025);
    assert.equal(model.schedulerConfig._class_name, 'EulerDiscreteScheduler');
    // CLIP-L pads with its end token, bigG with "!" (id 0), as SDXL's tokenizers do.
    assert.equal(model.tokenizer.padId, model.tokenizer.eosId);
    assert.equal(model.tokenizer2?.padId, 0);
    // The prompt as SDXL's pipeline encodes it: both encoders' raw penultimate states side by side, bigG's
    // projected pooled output.
    const encoded = await encodeSdxlPrompt(model, reference.prompt);
    assert.deepEqual(encoded.hiddenStates.shape, [1, 77, 128]);
    const l = checkpointReferenceValues(dir, reference, 'sdxl-small.text_l.penultimate').data as Float32Array;
    const g = checkpointReferenceValues(dir, reference, 'sdxl-small.text_g.penultimate').data as Float32Array;
    const joined = new Float32Array(77 * 128);
    for (let t = 0; t < 77; t++) {
      joined.set(l.subarray((77 + t) * 64, (78 + t) * 64), t * 128);
      joined.set(g.subarray((77 + t) * 64, (78 + t) * 64), t * 128 + 64);
    }
    assert.ok(relativeError(encoded.hiddenStates.data, joined) <= TOLERANCE, 'prompt context');
    const pooled = (checkpointReferenceValues(dir, reference, 'sdxl-small.text_g.text_embeds').data as Float32Array).subarray(64, 128);
    assert.ok(relativeError(encoded.pooled.data, pooled) <= TOLERANCE, 'pooled text_embeds');
  } finally {
    await model.release();
  }
});

test('sdxl-refiner-small.safetensors builds into a refiner folder: bigG in the first encoder\'s place, 5 time ids', async () => {
  const built = await modelFolderFromCheckpoint(join(dir, 'sdxl-refiner-small.safetensors'), REFINER, { cacheDir });
  assert.deepEqual(Object.keys(built.components).sort(), ['text_encoder_2', 'unet', 'vae_decoder', 'vae_encoder']);
  for (const c of Object.values(built.components)) assert.deepEqual(c.keys.unknown, [], `${c.component}: unknown keys`);
  await checkUnetCall(built.components.unet!.modelPath, 'sdxl-refiner-small.unet');
  // The refiner holds the base's bigG weights: the base's references apply.
  await checkTextCall(built.components.text_encoder_2!.modelPath, 'sdxl-small.text_g', 32);
  const model = await openModelFolder(built.dir, { pool });
  try {
    assert.equal(model.io.text.sdxlRefiner, true);
    assert.equal(model.io.unet.added?.timeIdsCount, 5);
    const index = JSON.parse(readFileSync(join(built.dir, 'model_index.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(index.text_encoder, undefined);
  } finally {
    await model.release();
  }
});

test('ComfyUI\'s clip_l / clip_g files: told apart by their tensors, built as SDXL\'s pair (DualCLIPLoader)', async () => {
  const l = join(dir, 'clip_l-small.safetensors');
  const g = join(dir, 'clip_g-small.safetensors');
  const roles = [detectSdxlTextEncoderFile(l), detectSdxlTextEncoderFile(g)].map((d) => ('role' in d ? d.role : d.refusal));
  assert.deepEqual(roles, ['l', 'g']);
  // CLIPLoader (one SD-1.x / 2.x encoder) names the node that takes bigG.
  const single = detectTextEncoderFile(g);
  assert.ok('refusal' in single && /DualCLIPLoader \(type sdxl\)/.test(single.refusal), 'refusal' in single ? single.refusal : 'accepted');

  const pair = await sdxlTextEncoderFolderFromFiles(l, g, { cacheDir });
  await checkTextCall(pair.components.text_encoder.modelPath, 'sdxl-small.text_l', 12);
  await checkTextCall(pair.components.text_encoder_2.modelPath, 'sdxl-small.text_g', 32);
  const encoders = await openTextEncoderFolder(pair.dir, { pool });
  try {
    assert.equal(encoders.io.text2?.pooled, 'text_embeds');
    const fromFiles = await encodeSdxlPrompt(encoders, reference.prompt);
    const fromCheckpoint = await (async () => {
      const built = await modelFolderFromCheckpoint(join(dir, 'sdxl-small.safetensors'), SDXL, { cacheDir });
      const model = await openTextEncoderFolder(built.dir, { pool });
      try {
        return await encodeSdxlPrompt(model, reference.prompt);
      } finally {
        await model.release();
      }
    })();
    assert.ok(relativeError(fromFiles.hiddenStates.data, fromCheckpoint.hiddenStates.data) <= 1e-6, 'the same weights give the same context');
  } finally {
    await encoders.release();
  }
});
