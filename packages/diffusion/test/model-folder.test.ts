// Opening ONNX model folders: metadata read from real onnxruntime sessions, and one clear error per way a
// folder can be broken (each made in a temp copy of the test model).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  OnnxUnetRunner,
  SessionPool,
  createScheduler,
  encodePrompt,
  listModelFolders,
  openModelFolder,
  openUnet,
  randn,
  sample,
  zeros,
  ModelFolderError,
  encodeImage,
  syntheticFitImages,
  type DiffusionModel,
} from '../src/index.ts';
import { copyTestModel, requireTestModel, tempDir } from './fixtures/test-model.ts';
import { fakeTextEncoder, fakeUnetWithoutText, writeModel } from './fixtures/onnx-builder.ts';
import { writeWithExternalData, writeWithNewOutputs } from './fixtures/onnx-rewrite.ts';

const pool = new SessionPool({ intraOpNumThreads: 1 });
after(() => pool.freeAll());

const json = (path: string): Record<string, unknown> => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

async function openError(dir: string): Promise<ModelFolderError> {
  try {
    const m = await openModelFolder(dir, { pool });
    await m.release();
  } catch (err) {
    assert.ok(err instanceof ModelFolderError, `expected a ModelFolderError, got ${String(err)}`);
    assert.ok(err.message.includes(dir), `the message should name the folder: ${err.message}`);
    return err;
  }
  assert.fail(`opening ${dir} should have failed`);
}

test('opens the test model and reports what its ONNX graphs and configs declare', async () => {
  const dir = requireTestModel();
  const model = await openModelFolder(dir, { pool });
  try {
    const unetConfig = json(join(dir, 'unet', 'config.json'));
    const vaeConfig = json(join(dir, 'vae_decoder', 'config.json'));
    const textConfig = json(join(dir, 'text_encoder', 'config.json'));
    assert.equal(model.name, basename(dir));
    assert.deepEqual(model.schedulerConfig, json(join(dir, 'scheduler', 'scheduler_config.json')));
    assert.deepEqual(model.io.text, {
      inputIds: 'input_ids',
      inputIdsType: 'int64', // tiny-sd's export feeds torch.long ids
      sequenceLength: 77,
      hiddenSize: textConfig.hidden_size,
      lastHiddenState: 'last_hidden_state',
      pooled: 'pooler_output',
    });
    const u = model.io.unet;
    assert.equal(u.timestepType, 'float32');
    assert.equal(u.timestepShape, 'batch');
    assert.equal(u.latentChannels, unetConfig.in_channels);
    assert.equal(u.crossAttentionDim, unetConfig.cross_attention_dim);
    assert.deepEqual(u.fixedLatentSize, [unetConfig.sample_size, unetConfig.sample_size]);
    assert.equal(u.sequenceLength, 77);
    const blocks = (vaeConfig.block_out_channels as number[]).length;
    assert.equal(model.io.vae.scaleFactor, 2 ** (blocks - 1));
    assert.equal(model.io.vae.scalingFactor, vaeConfig.scaling_factor);
    assert.equal(model.io.vae.encoderOutputKind, 'mean');
    assert.deepEqual(model.io.vae.fixedImageSize, [vaeConfig.sample_size, vaeConfig.sample_size]);
    assert.equal(model.vaeEncoder?.name, 'vae_encoder');
    assert.deepEqual(model.warnings, []);
    assert.equal(model.unet.externalData, undefined);
  } finally {
    await model.release();
  }
});

test('listModelFolders lists the subfolders that hold a model (symlinks too), sorted', () => {
  const models = tempDir('list');
  symlinkSync(requireTestModel(), join(models, 'tiny-sd'));
  mkdirSync(join(models, 'a-model', 'unet'), { recursive: true });
  writeFileSync(join(models, 'a-model', 'model_index.json'), '{}');
  writeFileSync(join(models, 'a-model', 'unet', 'model.onnx'), '');
  mkdirSync(join(models, 'notes'));
  writeFileSync(join(models, 'notes', 'readme.txt'), 'not a model');
  writeFileSync(join(models, 'model_index.json'), '{}');
  assert.deepEqual(listModelFolders(models), ['a-model', 'tiny-sd']);
  assert.deepEqual(listModelFolders(join(models, 'does-not-exist')), []);
});

test('a missing folder and a folder without model_index.json are named as such', async () => {
  const root = tempDir('missing');
  const nowhere = join(root, 'nowhere');
  assert.match((await openError(nowhere)).message, /does not exist/);
  const dir = copyTestModel('noindex');
  rmSync(join(dir, 'model_index.json'));
  assert.match((await openError(dir)).message, /model_index\.json is missing/);
});

test('missing components are all listed', async () => {
  const dir = copyTestModel('nocomp');
  rmSync(join(dir, 'vae_decoder'), { recursive: true });
  rmSync(join(dir, 'tokenizer', 'tokenizer.json'));
  const err = await openError(dir);
  assert.match(err.message, /missing components: vae_decoder\/model\.onnx, tokenizer\/tokenizer\.json/);
});

test('a truncated model.onnx is reported with onnxruntime\'s reason and which file it is', async () => {
  const dir = copyTestModel('corrupt');
  const file = join(dir, 'unet', 'model.onnx');
  truncateSync(file, Math.floor(statSync(file).size / 3));
  const err = await openError(dir);
  assert.equal(err.component, 'unet');
  assert.match(err.message, /unet\/model\.onnx could not be loaded by onnxruntime \(.+\); the file may be truncated/);
  assert.equal(pool.leasedCount, 0, 'a failed open releases the leases it took');
});

test('an ONNX file of another component is recognised as the wrong one, listing its inputs', async () => {
  const dir = copyTestModel('wrongcomp');
  copyFileSync(join(dir, 'vae_encoder', 'model.onnx'), join(dir, 'unet', 'model.onnx'));
  const err = await openError(dir);
  assert.match(err.message, /unet\/model\.onnx does not look like a UNet: it has no input "timestep" \(its inputs: sample float32 \[batch, 3, 64, 64\]/);
});

test('a UNet without encoder_hidden_states says which inputs it has', async () => {
  const dir = copyTestModel('notext');
  writeModel(join(dir, 'unet', 'model.onnx'), fakeUnetWithoutText(4, 16));
  const err = await openError(dir);
  assert.match(err.message, /has no input "encoder_hidden_states" \(its inputs: sample float32 \[batch, 4, 16, 16\]; timestep float32 \[batch\]/);
});

test('a text encoder whose hidden size differs from the UNet\'s cross-attention dim is refused', async () => {
  const dir = copyTestModel('mismatch');
  writeModel(join(dir, 'text_encoder', 'model.onnx'), fakeTextEncoder(77, 64));
  const err = await openError(dir);
  assert.match(err.message, /the text encoder's hidden size is 64 but the UNet's cross-attention dim is \d+: text_encoder and unet come from different models/);
});

test('input_ids are fed with the dtype the text encoder declares (int32 here)', async () => {
  const dir = copyTestModel('int32');
  const hidden = (await openModelFolder(dir, { pool }).then(async (m) => {
    await m.release();
    return m.io.text.hiddenSize;
  }));
  writeModel(join(dir, 'text_encoder', 'model.onnx'), fakeTextEncoder(77, hidden, 'int32'));
  const model = await openModelFolder(dir, { pool });
  try {
    assert.equal(model.io.text.inputIdsType, 'int32');
    assert.equal(model.io.text.pooled, undefined);
    const r = await encodePrompt(model, 'a red circle');
    assert.deepEqual(r.hiddenStates.shape, [1, 77, hidden]);
    assert.equal(r.pooled, undefined);
    // the fake encoder returns id * k / hidden: channel 1 of each position gives the id back
    const ids = Array.from({ length: 77 }, (_, j) => Math.round(r.hiddenStates.data[j * hidden + 1]! * hidden));
    assert.deepEqual(ids, model.tokenizer.encode('a red circle').ids);
  } finally {
    await model.release();
  }
});

test('components with external weights (model.onnx_data, weights.pb) load by path and compute the same', async () => {
  const src = requireTestModel();
  const dir = copyTestModel('external');
  const unet = writeWithExternalData(join(src, 'unet', 'model.onnx'), join(dir, 'unet', 'model.onnx'), join(dir, 'unet', 'model.onnx_data'), 'model.onnx_data');
  const text = writeWithExternalData(join(src, 'text_encoder', 'model.onnx'), join(dir, 'text_encoder', 'model.onnx'), join(dir, 'text_encoder', 'weights.pb'), 'weights.pb');
  assert.ok(unet.tensors > 10 && text.tensors > 5);
  // the graph file is now a small fraction of the original: the weights really are elsewhere
  assert.ok(statSync(join(dir, 'unet', 'model.onnx')).size < statSync(join(src, 'unet', 'model.onnx')).size / 4);

  const run = async (m: DiffusionModel) => {
    const pos = await encodePrompt(m, 'a red circle');
    const shape = [1, m.io.unet.latentChannels, ...(m.io.unet.fixedLatentSize ?? [16, 16])];
    const r = await sample({ unet: OnnxUnetRunner.forModel(m), scheduler: createScheduler('euler', m.schedulerConfig, 2), positive: pos.hiddenStates, cfg: 1, latent: zeros(shape), noise: randn(shape, 5) });
    return { text: pos.hiddenStates, latent: r.latent };
  };
  const external = await openModelFolder(dir, { pool });
  const inline = await openModelFolder(src, { pool });
  try {
    assert.equal(external.unet.externalData, 'model.onnx_data');
    assert.equal(external.textEncoder.externalData, 'weights.pb');
    const a = await run(external);
    const b = await run(inline);
    assert.deepEqual(a.text.data, b.text.data);
    assert.deepEqual(a.latent.data, b.latent.data);
  } finally {
    await external.release();
    await inline.release();
  }
  // and a missing weights file is an onnxruntime load error naming the component
  rmSync(join(dir, 'unet', 'model.onnx_data'));
  await pool.freeAll();
  const err = await openError(dir);
  assert.match(err.message, /unet\/model\.onnx could not be loaded by onnxruntime/);
});

test('a VAE encoder returning latent_parameters (mean and logvar) encodes to the mean', async () => {
  const dir = copyTestModel('params');
  const file = join(dir, 'vae_encoder', 'model.onnx');
  // latent_parameters = concat(latent_sample, -latent_sample) on channels: the mean first, a stand-in logvar after
  writeWithNewOutputs(join(requireTestModel(), 'vae_encoder', 'model.onnx'), file, [
    { op: 'Neg', inputs: ['latent_sample'], outputs: ['fake_logvar'] },
    { op: 'Concat', inputs: ['latent_sample', 'fake_logvar'], outputs: ['latent_parameters'], attributes: { axis: 1 } },
  ], ['latent_parameters']);
  const withParams = await openModelFolder(dir, { pool });
  const plain = await openModelFolder(requireTestModel(), { pool });
  try {
    assert.equal(withParams.io.vae.encoderOutput, 'latent_parameters');
    assert.equal(withParams.io.vae.encoderOutputKind, 'parameters');
    const [H, W] = plain.io.vae.fixedImageSize ?? [64, 64];
    const images = syntheticFitImages(2, H, W, 3);
    const a = await encodeImage(withParams, images);
    const b = await encodeImage(plain, images);
    assert.deepEqual(a.shape, b.shape);
    assert.deepEqual(a.data, b.data);
  } finally {
    await withParams.release();
    await plain.release();
  }
});

test('openUnet opens a UNet alone (its folder, or a model folder\'s unet/) with the io openModelFolder reads, and samples the same', async () => {
  const src = requireTestModel();
  const model = await openModelFolder(src, { pool });
  const alone = await openUnet(join(src, 'unet'), { pool });
  const viaModelFolder = await openUnet(src, { pool });
  try {
    assert.deepEqual(alone.io.unet, model.io.unet);
    assert.equal(alone.name, basename(src)); // a folder named "unet" is named after its parent
    assert.equal(alone.dir, join(src, 'unet'));
    assert.equal(viaModelFolder.dir, alone.dir);
    assert.equal(alone.unet.path, model.unet.path);
    // the same UNet, fed the same embeddings, gives the same latent
    const text = (await encodePrompt(model, 'a red circle')).hiddenStates;
    const shape = [1, model.io.unet.latentChannels, ...(model.io.unet.fixedLatentSize ?? [16, 16])];
    const run = async (m: Parameters<typeof OnnxUnetRunner.forModel>[0]) =>
      (await sample({ unet: OnnxUnetRunner.forModel(m), scheduler: createScheduler('euler', model.schedulerConfig, 2), positive: text, cfg: 1, latent: zeros(shape), noise: randn(shape, 3) })).latent;
    assert.deepEqual((await run(alone)).data, (await run(model)).data);
  } finally {
    await alone.release();
    await viaModelFolder.release();
    await model.release();
  }
});

test('openUnet on a folder without model.onnx names the folder and what to give instead', async () => {
  const dir = tempDir('nounet');
  await assert.rejects(openUnet(dir, { pool }), (err: unknown) => {
    assert.ok(err instanceof ModelFolderError);
    assert.match(err.message, new RegExp(`${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: there is no model\\.onnx here \\(nor unet/model\\.onnx\\)`));
    return true;
  });
});
