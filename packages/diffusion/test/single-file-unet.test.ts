// The SD-1.x/2.x UNet built in TypeScript from single-file LDM checkpoints (onnx-graph's src/build/): on the test
// checkpoints (tools/test-checkpoints, CI widths) each built graph run by onnxruntime equals PyTorch on the same
// weights (float32, fp16, bf16, SD-2.1-v with linear projections, 9-channel inpainting); it is found by the engine
// as an exported UNet (openUnet), has the same attention modules, blocks, MACs and DeepCache cuts as the CI ONNX
// export of the same architecture, fuses like one; it is cached by the checkpoint's content; a missing tensor is
// an error naming it and an unknown one is reported.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { countMacs, deepFeature, discoverUNet, fuseAttention, loadModel, type UNetStructure } from '@gategraph/onnx-graph';
// The build toolkit is not re-exported by @gategraph/onnx-graph's index yet.
import { CheckpointError, unetFromCheckpoint, type UnetOverrides } from '@gategraph/onnx-graph';
import { openUnet, SafetensorsFile } from '../src/index.ts';
import { publishedTestModels } from './fixtures/published-models.ts';
import { checkpointReferenceValues, runUnetReferenceCall, readCheckpointReference, testCheckpoints, type CheckpointReference } from './fixtures/test-checkpoints.ts';

// What the shapes of a CI-width checkpoint cannot tell (tools/test-models/arch.py's CI configs): 4 GroupNorm groups,
// 2 heads per SD-1 block, 8 channels per SD-2 head. Full-size checkpoints need none of this.
const SD1_CI: UnetOverrides = { heads: 2, groups: 4 };
const SD2_CI: UnetOverrides = { headDim: 8, groups: 4 };

let dir: string;
let reference: CheckpointReference;
let cacheDir: string;
before(() => {
  dir = testCheckpoints();
  reference = readCheckpointReference(dir);
  cacheDir = mkdtempSync(join(tmpdir(), 'gategraph-single-file-'));
});
test.after(() => rmSync(cacheDir, { recursive: true, force: true }));



function errors(a: Float32Array, b: Float32Array): { abs: number; rel: number } {
  assert.equal(a.length, b.length);
  let abs = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    abs = Math.max(abs, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return { abs, rel: abs / scale };
}

const CASES: Array<{ file: string; call: string; overrides: UnetOverrides; channels: number }> = [
  { file: 'sd15.safetensors', call: 'sd15.unet', overrides: SD1_CI, channels: 4 },
  { file: 'sd15-fp16.safetensors', call: 'sd15-fp16.unet', overrides: SD1_CI, channels: 4 },
  { file: 'sd15-bf16.safetensors', call: 'sd15-bf16.unet', overrides: SD1_CI, channels: 4 },
  { file: 'sd21v.safetensors', call: 'sd21v.unet', overrides: SD2_CI, channels: 4 },
  { file: 'sd15-inpaint.safetensors', call: 'sd15-inpaint.unet', overrides: SD1_CI, channels: 9 },
];

for (const c of CASES) {
  test(`${c.file}: the built UNet equals PyTorch on the same weights`, async (t) => {
    const unet = await unetFromCheckpoint(join(dir, c.file), { cacheDir, overrides: c.overrides });
    assert.equal(unet.fromCache, false);
    const { out, expected } = await runUnetReferenceCall(dir, reference, unet.modelPath, c.call);
    const e = errors(out, expected);
    t.diagnostic(`max |onnx - torch| = ${e.abs.toExponential(2)}, relative to max |torch| ${e.rel.toExponential(2)}`);
    assert.ok(e.rel < reference.tolerance.rel, `relative error ${e.rel}`);
    assert.equal(unet.config.inChannels, c.channels);
    assert.deepEqual(unet.keys.unknown, [], 'every UNet tensor is used');
    // The engine opens the folder as an exported UNet.
    const opened = await openUnet(unet.dir);
    try {
      assert.equal(opened.io.unet.sampleChannels, c.channels);
      assert.equal(opened.io.unet.latentChannels, 4);
      assert.equal(opened.io.unet.timestepType, 'float32');
      assert.equal(opened.io.unet.timestepShape, 'batch');
      assert.equal(opened.io.unet.crossAttentionDim, unet.config.contextDim);
    } finally {
      await opened.release();
    }
  });
}

test('the checkpoint reader can be packages/diffusion\'s SafetensorsFile', async () => {
  const unet = await unetFromCheckpoint(join(dir, 'sd15-fp16.safetensors'), {
    cacheDir: mkdtempSync(join(cacheDir, 'reader-')),
    overrides: SD1_CI,
    openReader: (p) => SafetensorsFile.open(p),
  });
  const { out, expected } = await runUnetReferenceCall(dir, reference, unet.modelPath, 'sd15-fp16.unet');
  assert.ok(errors(out, expected).rel < reference.tolerance.rel);
});

test('a second load is a cache hit keyed by content; other overrides are another entry', async () => {
  const ckpt = join(dir, 'sd15.safetensors');
  const first = await unetFromCheckpoint(ckpt, { cacheDir, overrides: SD1_CI });
  const started = performance.now();
  const again = await unetFromCheckpoint(ckpt, { cacheDir, overrides: { groups: 4, heads: 2 } });
  assert.equal(again.fromCache, true);
  assert.equal(again.modelPath, first.modelPath);
  assert.ok(performance.now() - started < 1000);
  const other = await unetFromCheckpoint(ckpt, { cacheDir, overrides: { ...SD1_CI, sampleSize: 96 } });
  assert.notEqual(other.key, first.key);
  assert.equal(other.diffusersConfig.sample_size, 96);
});

test('keys the UNet does not use are reported: non-weights as ignored, other components by count, unknown ones by name', async () => {
  const plain = await unetFromCheckpoint(join(dir, 'sd15.safetensors'), { cacheDir, overrides: SD1_CI });
  assert.deepEqual(plain.keys.unknown, []);
  const ignored = plain.keys.ignored.map((i) => i.key);
  for (const k of ['betas', 'alphas_cumprod', 'posterior_mean_coef2', 'model_ema.decay', 'model_ema.num_updates']) assert.ok(ignored.includes(k), k);
  assert.ok((plain.keys.otherComponents.vae ?? 0) > 0 && (plain.keys.otherComponents.text_encoder ?? 0) > 0);
  assert.equal(plain.keys.used, 684);

  const extra = await unetFromCheckpoint(join(dir, 'sd15-extra-key.safetensors'), { cacheDir, overrides: SD1_CI });
  assert.deepEqual(extra.keys.unknown, ['model.diffusion_model.unknown_module.weight']);
});

test('a missing tensor is an error naming it', async () => {
  const missing = 'model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight';
  await assert.rejects(unetFromCheckpoint(join(dir, 'sd15-missing-key.safetensors'), { cacheDir, overrides: SD1_CI }), (err: unknown) => {
    assert.ok(err instanceof CheckpointError);
    assert.equal(err.code, 'missing_key');
    assert.equal(err.key, missing);
    assert.ok(err.message.includes(missing));
    return true;
  });
});

test('a width the default GroupNorm groups cannot split says which override to pass', async () => {
  await assert.rejects(unetFromCheckpoint(join(dir, 'sd15.safetensors'), { cacheDir }), /do not split into 32 GroupNorm groups.*overrides\.groups/);
});

function summary(u: UNetStructure) {
  return {
    attention: u.attention.map((a) => `${a.path} ${a.kind} ${a.transformerBlock}`),
    blocks: [u.downBlocks, u.midBlock, u.upBlocks],
  };
}

for (const [file, layout, overrides] of [
  ['sd15.safetensors', 'sd15-optimum', SD1_CI],
  ['sd21v.safetensors', 'sd21-v', SD2_CI],
] as const) {
  test(`${file}: the same modules, MACs and DeepCache cuts as the CI ONNX export (${layout}); attention fuses like it`, async () => {
    const built = loadModel((await unetFromCheckpoint(join(dir, file), { cacheDir, overrides })).modelPath);
    const exported = loadModel(join(publishedTestModels(), layout, 'unet', 'model.onnx'));
    const a = discoverUNet(built.proto);
    const b = discoverUNet(exported.proto);
    assert.deepEqual(summary(a), summary(b));
    assert.equal(a.attention.length, 32);
    const sizes = { batch: 2, height: 128, width: 192 }; // latents divisible by 8: the export cannot run others
    const ma = countMacs(built.proto, sizes, { baseDir: built.baseDir });
    const mb = countMacs(exported.proto, sizes, { baseDir: exported.baseDir });
    assert.equal(ma.total, mb.total);
    assert.equal(ma.weightMacs, mb.weightMacs);
    assert.deepEqual(ma.byCategory, mb.byCategory);
    for (const k of [0, 1, 2]) assert.equal(deepFeature(a, k).tensor, deepFeature(b, k).tensor);
    const fused = fuseAttention(built.proto, { baseDir: built.baseDir });
    assert.equal(fused.report.fused.length, a.attention.length);
    assert.deepEqual(fused.report.skipped, []);
  });
}

test('latents that do not divide by 8 run (each upsampler resizes to the skip it meets)', async () => {
  const unet = await unetFromCheckpoint(join(dir, 'sd15.safetensors'), { cacheDir, overrides: SD1_CI });
  const session = await ort.InferenceSession.create(unet.modelPath, { intraOpNumThreads: 1, logSeverityLevel: 3 });
  try {
    const r = await session.run({
      sample: new ort.Tensor('float32', new Float32Array(4 * 13 * 10).fill(0.5), [1, 4, 13, 10]),
      timestep: new ort.Tensor('float32', Float32Array.from([500]), [1]),
      encoder_hidden_states: new ort.Tensor('float32', new Float32Array(77 * 32).fill(0.1), [1, 77, 32]),
    });
    assert.deepEqual(r.out_sample!.dims, [1, 4, 13, 10]);
    assert.ok((r.out_sample!.data as Float32Array).every(Number.isFinite));
  } finally {
    await session.release();
  }
});
