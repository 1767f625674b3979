// The VAE built in TypeScript from single-file LDM checkpoints and standalone VAE files (onnx-graph's
// src/build/vae.ts): on the test checkpoints (tools/test-checkpoints, CI widths) the built vae_decoder and
// vae_encoder run by onnxruntime equal PyTorch on the same weights (float32, fp16, bf16, SD-2.1-v's file, the standalone
// ft-MSE-style file); the decoder's mid-block attention fuses and still matches; the engine opens the pair as a VAE
// folder; unused keys are reported and a missing one is an error naming it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { fuseAttention, loadModel, saveModel } from '@gategraph/onnx-graph';
import { buildVaeDecoder, buildVaeEncoder, CheckpointError, openSafetensors, WeightSource, writeBuiltModel, type BuiltVae, type CheckpointReader, type VaeOverrides } from '@gategraph/onnx-graph/build';
import { decodeLatents, encodeImage, openVaeFolder } from '../src/index.ts';
import { checkpointReferenceTensor, checkpointReferenceValues, readCheckpointReference, testCheckpoints, type CheckpointReference } from './fixtures/test-checkpoints.ts';
import { relativeError } from './fixtures/reference-calls.ts';

// CI-width VAEs (tools/test-models/arch.py: [8, 16, 16, 16]) use 4 GroupNorm groups; full-size ones need nothing.
const CI: VaeOverrides = { groups: 4 };

let dir: string;
let reference: CheckpointReference;
let out: string;
before(() => {
  dir = testCheckpoints();
  reference = readCheckpointReference(dir);
  out = mkdtempSync(join(tmpdir(), 'gategraph-single-file-vae-'));
});
after(() => rmSync(out, { recursive: true, force: true }));

function source(file: string): WeightSource {
  return new WeightSource(openSafetensors(join(dir, file)));
}


/** Writes a built graph as `<out>/<name>/model.onnx` (+ data, + config.json); returns the .onnx path. */
function write(vae: BuiltVae, src: WeightSource, name: string): string {
  const path = join(out, name, 'model.onnx');
  writeBuiltModel(vae.built, src, path);
  writeFileSync(join(out, name, 'config.json'), JSON.stringify(vae.diffusersConfig));
  return path;
}

async function run(path: string, feeds: Record<string, ort.Tensor>, output: string): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1, logSeverityLevel: 3 });
  try {
    return (await session.run(feeds))[output]!.data as Float32Array;
  } finally {
    await session.release();
  }
}


const CASES = [
  { file: 'sd15.safetensors', tag: 'sd15' },
  { file: 'sd15-fp16.safetensors', tag: 'sd15-fp16' },
  { file: 'sd15-bf16.safetensors', tag: 'sd15-bf16' },
  { file: 'sd21v.safetensors', tag: 'sd21v' },
  { file: 'vae-ft.safetensors', tag: 'vae-ft' },
];

for (const c of CASES) {
  test(`${c.file}: the built VAE decoder and encoder equal PyTorch on the same weights`, async (t) => {
    const decSource = source(c.file);
    const dec = buildVaeDecoder(decSource, CI);
    const decPath = write(dec, decSource, `${c.tag}/vae_decoder`);
    const decodeCall = reference.calls.find((x) => x.name === `${c.tag}.vae_decode`)!;
    const decoded = await run(decPath, { latent_sample: checkpointReferenceTensor(dir, reference, decodeCall.inputs.latent!) }, 'sample');
    const decErr = relativeError(decoded, checkpointReferenceValues(dir, reference, decodeCall.outputs.image!).data as Float32Array);

    const encSource = source(c.file);
    const enc = buildVaeEncoder(encSource, CI);
    const encPath = write(enc, encSource, `${c.tag}/vae_encoder`);
    const encodeCall = reference.calls.find((x) => x.name === `${c.tag}.vae_encode`)!;
    const params = await run(encPath, { sample: checkpointReferenceTensor(dir, reference, encodeCall.inputs.image!) }, 'latent_parameters');
    const encErr = relativeError(params, checkpointReferenceValues(dir, reference, encodeCall.outputs.parameters!).data as Float32Array);
    t.diagnostic(`decode: max |onnx - torch| / max |torch| = ${decErr.toExponential(2)}; encode (mean, logvar): ${encErr.toExponential(2)}`);
    assert.ok(decErr < reference.tolerance.rel, `decoder relative error ${decErr}`);
    assert.ok(encErr < reference.tolerance.rel, `encoder relative error ${encErr}`);

    assert.deepEqual(dec.config.blockOutChannels, [8, 16, 16, 16]);
    assert.equal(dec.config.layersPerBlock, 2);
    assert.deepEqual(enc.config, dec.config);
    assert.equal(dec.diffusersConfig.scaling_factor, 0.18215);
    assert.equal(dec.diffusersConfig.norm_num_groups, 4);
    assert.equal(dec.diffusersConfig.mid_block_add_attention, true);
    // Every VAE tensor is used by one of the two graphs; each names the other half by count.
    assert.deepEqual(dec.keys.unknown, []);
    assert.deepEqual(enc.keys.unknown, []);
    assert.equal(dec.keys.used + enc.keys.used, 244);
    assert.equal(dec.keys.otherComponents.vae_encoder, enc.keys.used);
    assert.equal(enc.keys.otherComponents.vae_decoder, dec.keys.used);
    if (c.file === 'vae-ft.safetensors') {
      assert.deepEqual(dec.keys.otherComponents, { vae_encoder: enc.keys.used });
      assert.deepEqual(dec.keys.ignored.map((i) => i.key), ['model_ema.decay', 'model_ema.num_updates']);
      for (const i of dec.keys.ignored) assert.match(i.reason, /EMA/);
    } else {
      assert.ok((dec.keys.otherComponents.unet ?? 0) > 0 && (dec.keys.otherComponents.text_encoder ?? 0) > 0);
    }
  });
}

test('the decoder\'s mid-block attention fuses, and the fused decoder still equals PyTorch', async (t) => {
  const model = loadModel(join(out, 'sd15', 'vae_decoder', 'model.onnx'));
  const fused = fuseAttention(model.proto, { baseDir: model.baseDir });
  assert.deepEqual(fused.report.skipped, []);
  assert.deepEqual(fused.report.fused.map((f) => [f.node, f.heads]), [['/decoder/mid_block/attentions.0/MultiHeadAttention', 1]]);
  const encoder = loadModel(join(out, 'sd15', 'vae_encoder', 'model.onnx'));
  assert.equal(fuseAttention(encoder.proto, { baseDir: encoder.baseDir }).report.fused.length, 1);
  // Saved next to the original so the external data resolves.
  const path = join(out, 'sd15', 'vae_decoder', 'fused.onnx');
  saveModel(fused.model, path, { baseDir: model.baseDir });
  const call = reference.calls.find((x) => x.name === 'sd15.vae_decode')!;
  const decoded = await run(path, { latent_sample: checkpointReferenceTensor(dir, reference, call.inputs.latent!) }, 'sample');
  const err = relativeError(decoded, checkpointReferenceValues(dir, reference, call.outputs.image!).data as Float32Array);
  t.diagnostic(`fused decoder: relative error ${err.toExponential(2)}`);
  assert.ok(err < reference.tolerance.rel, `relative error ${err}`);
});

test('the engine opens the built pair as a VAE folder and round-trips through it', async () => {
  const vae = await openVaeFolder(join(out, 'vae-ft'));
  try {
    assert.equal(vae.io.vae.encoderOutput, 'latent_parameters');
    assert.equal(vae.io.vae.encoderOutputKind, 'parameters');
    assert.equal(vae.io.vae.scaleFactor, 8);
    assert.equal(vae.io.vae.scalingFactor, 0.18215);
    const image = { data: new Float32Array(1 * 16 * 24 * 3).fill(0.5), shape: [1, 16, 24, 3] };
    const latents = await encodeImage(vae, image);
    assert.deepEqual(latents.shape, [1, 4, 2, 3]);
    const decoded = await decodeLatents(vae, latents);
    assert.deepEqual(decoded.shape, [1, 16, 24, 3]);
  } finally {
    await vae.release();
  }
});

test('a missing VAE tensor is an error naming it', () => {
  const missing = 'first_stage_model.decoder.mid.attn_1.k.weight';
  const reader = openSafetensors(join(dir, 'sd15.safetensors'));
  const without: CheckpointReader = { path: reader.path, tensors: () => reader.tensors().filter((t) => t.name !== missing), readBytes: (n) => reader.readBytes(n) };
  assert.throws(() => buildVaeDecoder(new WeightSource(without), CI), (err: unknown) => {
    assert.ok(err instanceof CheckpointError);
    assert.equal(err.code, 'missing_key');
    assert.equal(err.key, missing);
    assert.ok(err.message.includes(missing));
    return true;
  });
  // The encoder does not need it.
  assert.deepEqual(buildVaeEncoder(new WeightSource(without), CI).keys.unknown, []);
  // A file without any VAE names the key it looked for.
  const unetOnly: CheckpointReader = { path: reader.path, tensors: () => reader.tensors().filter((t) => !t.name.startsWith('first_stage_model.')), readBytes: (n) => reader.readBytes(n) };
  assert.throws(() => buildVaeEncoder(new WeightSource(unetOnly), CI), (err: unknown) => err instanceof CheckpointError && err.key === 'first_stage_model.decoder.conv_in.weight');
});

test('a width the default GroupNorm groups cannot split says which override to pass', () => {
  assert.throws(() => buildVaeDecoder(source('vae-ft.safetensors')), /do not split into 32 GroupNorm groups.*overrides\.groups/);
});
