// SDXL's conditioning on the SDXL-shaped test model (tools/test-models `sdxl`: SDXL's block structure at narrow
// widths, random weights): both encoders' raw penultimate layers joined and the second encoder's projected pooled
// output equal diffusers' encode_prompt in PyTorch on the same weights; the sampler feeds text_embeds and time_ids
// per branch, and the size conditioning reaches the UNet.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createScheduler,
  defaultSdxlSizes,
  encodePrompt,
  encodeSdxlPrompt,
  isSdxlTextModel,
  OnnxUnetRunner,
  openModelFolder,
  randn,
  sample,
  SessionPool,
  sdxlRefinerTimeIds,
  sdxlTimeIds,
  textEncoderVariant,
  zeros,
  type DiffusionModel,
  type Tensor,
} from '../src/index.ts';
import { publishedTestModels, readReference, referenceValues } from './fixtures/published-models.ts';
import { relativeError } from './fixtures/reference-calls.ts';
import { readTableRows } from '../src/text-encoder-variants.ts';
import { writeSafetensors } from './safetensors-bytes.ts';

const pool = new SessionPool();
let folder: string;
let model: DiffusionModel;
before(async () => {
  folder = join(publishedTestModels(), 'sdxl');
  model = await openModelFolder(folder, { pool });
});
after(async () => {
  await model?.release();
  await pool.freeAll();
});

/** Row `row` of a reference tensor, as a batch of one. */
function rowOf(name: string, row: number): Tensor {
  const { data, shape } = referenceValues(folder, readReference(folder), name);
  const per = shape.slice(1).reduce((a, b) => a * b, 1);
  return { data: Float32Array.from((data as ArrayLike<number>) as Float32Array).subarray(row * per, (row + 1) * per), shape: [1, ...shape.slice(1)] };
}

test('an SDXL folder opens with its second text encoder and the UNet\'s added conditioning', () => {
  assert.ok(isSdxlTextModel(model));
  const added = model.io.unet.added!;
  assert.deepEqual({ textEmbeds: added.textEmbeds, timeIds: added.timeIds, count: added.timeIdsCount }, { textEmbeds: 'text_embeds', timeIds: 'time_ids', count: 6 });
  assert.equal(model.io.unet.crossAttentionDim, model.io.text.hiddenSize + model.io.text2!.hiddenSize);
  assert.equal(added.textEmbedsDim, rowOf('text_encoder_2.text_embeds', 0).shape[1], 'text_embeds are the projection\'s width');
  assert.equal(model.tokenizer2!.padId, 0, 'tokenizer_2 pads with "!"');
});

test('SDXL prompts encode as diffusers\' encode_prompt: raw penultimate layers joined, the projected pooled output', async () => {
  const reference = readReference(folder) as ReturnType<typeof readReference> & { tokenizers: Record<string, { cases: Array<{ text: string; ids: number[] }> }> };
  const call = reference.calls.find((c) => c.component === 'text_encoder')!;
  const ids = referenceValues(folder, reference, call.inputs.input_ids!);
  const rows = ids.shape[0]!;
  const length = ids.shape[1]!;
  for (let row = 0; row < rows; row++) {
    const rowIds = Array.from((ids.data as ArrayLike<number>) as number[]).slice(row * length, (row + 1) * length);
    const text = reference.tokenizers.tokenizer!.cases.find((c) => c.ids.every((id, i) => id === rowIds[i]))!.text;
    const encoded = await encodeSdxlPrompt(model as Parameters<typeof encodeSdxlPrompt>[0], text);
    const prompt = rowOf('conditioning.prompt_embeds', row);
    assert.deepEqual(encoded.hiddenStates.shape, prompt.shape, `${JSON.stringify(text)}: shape`);
    assert.ok(relativeError(encoded.hiddenStates.data, prompt.data) <= 1e-4, `${JSON.stringify(text)}: prompt_embeds`);
    assert.ok(relativeError(encoded.pooled.data, rowOf('text_encoder_2.text_embeds', row).data) <= 1e-4, `${JSON.stringify(text)}: pooled_prompt_embeds`);
  }
});

test('sampling feeds each branch its own text_embeds and time_ids; the size conditioning changes the result', async () => {
  const shape = [1, model.io.unet.latentChannels, 8, 8];
  const positive = await encodeSdxlPrompt(model as Parameters<typeof encodeSdxlPrompt>[0], 'a photo of a cat');
  const negative = await encodeSdxlPrompt(model as Parameters<typeof encodeSdxlPrompt>[0], '');
  const run = (sizes: ReturnType<typeof defaultSdxlSizes>) =>
    sample({
      unet: OnnxUnetRunner.forModel(model),
      scheduler: createScheduler('euler', model.schedulerConfig, 4),
      positive: positive.hiddenStates,
      negative: negative.hiddenStates,
      added: {
        positive: { textEmbeds: positive.pooled, timeIds: sdxlTimeIds(sizes) },
        negative: { textEmbeds: negative.pooled, timeIds: sdxlTimeIds(sizes) },
      },
      cfg: 5,
      latent: zeros(shape),
      noise: randn(shape, 3),
    });
  const square = await run(defaultSdxlSizes(1024, 1024));
  const cropped = await run({ ...defaultSdxlSizes(1024, 1024), cropW: 256, cropH: 128 });
  assert.ok(square.latent.data.every(Number.isFinite));
  assert.ok(relativeError(cropped.latent.data, square.latent.data) > 1e-4, 'time_ids reach the UNet');
  await assert.rejects(
    sample({ unet: OnnxUnetRunner.forModel(model), scheduler: createScheduler('euler', model.schedulerConfig, 2), positive: positive.hiddenStates, cfg: 1, latent: zeros(shape), noise: randn(shape, 3) }),
    /takes text_embeds and time_ids/,
  );
});

test('the SDXL refiner: its one encoder conditions as the base model\'s second (raw penultimate layer, pooled output); 5 time_ids', async () => {
  const refinerFolder = join(publishedTestModels(), 'sdxl-refiner');
  const refiner = await openModelFolder(refinerFolder, { pool });
  try {
    assert.equal(refiner.io.text.sdxlRefiner, true);
    assert.equal(refiner.io.unet.added?.timeIdsCount, 5);
    const reference = readReference(refinerFolder) as ReturnType<typeof readReference> & { tokenizers: Record<string, { cases: Array<{ text: string; ids: number[] }> }> };
    const call = reference.calls.find((c) => c.component === 'text_encoder_2')!;
    const ids = referenceValues(refinerFolder, reference, call.inputs.input_ids!);
    const length = ids.shape[1]!;
    const row = (name: string, k: number): Tensor => {
      const { data, shape } = referenceValues(refinerFolder, reference, name);
      const per = shape.slice(1).reduce((a, b) => a * b, 1);
      return { data: Float32Array.from(data as ArrayLike<number>).subarray(k * per, (k + 1) * per), shape: [1, ...shape.slice(1)] };
    };
    for (let k = 0; k < ids.shape[0]!; k++) {
      const rowIds = Array.from(ids.data as ArrayLike<number>).slice(k * length, (k + 1) * length);
      const text = reference.tokenizers.tokenizer_2!.cases.find((c) => c.ids.every((id, i) => id === rowIds[i]))!.text;
      const encoded = await encodePrompt(refiner, text, { rawHiddenStates: true });
      assert.ok(relativeError(encoded.hiddenStates.data, row('conditioning.prompt_embeds', k).data) <= 1e-4, `${JSON.stringify(text)}: prompt_embeds`);
      assert.ok(relativeError(encoded.pooled!.data, row('text_encoder_2.text_embeds', k).data) <= 1e-4, `${JSON.stringify(text)}: pooled`);
    }
    const shape = [1, refiner.io.unet.latentChannels, 8, 8];
    const text = await encodePrompt(refiner, 'a photo of a cat', { rawHiddenStates: true });
    const run = (score: number) =>
      sample({
        unet: OnnxUnetRunner.forModel(refiner),
        scheduler: createScheduler('euler', refiner.schedulerConfig, 3),
        positive: text.hiddenStates,
        added: { positive: { textEmbeds: text.pooled!, timeIds: sdxlRefinerTimeIds(defaultSdxlSizes(1024, 1024), score) } },
        cfg: 1,
        latent: zeros(shape),
        noise: randn(shape, 5),
      });
    assert.ok(relativeError((await run(2.5)).latent.data, (await run(6)).latent.data) > 1e-4, 'the aesthetic score reaches the UNet');
  } finally {
    await refiner.release();
  }
});

test('an SDXL embedding file (clip_l and clip_g tensors) feeds each encoder its own vectors', async () => {
  // The vectors of `embedding:cat` are the encoders' own token embeddings of the word: the prompt must encode
  // exactly as the word itself, through each encoder's embedding input, on both the joined context and the pooled text.
  const sdxlModel = model as Parameters<typeof encodeSdxlPrompt>[0];
  const rowsOf = async (encoder: DiffusionModel['textEncoder'], tokenizer: DiffusionModel['tokenizer']) => {
    const ids = tokenizer.tokenIds('cat');
    const table = (await textEncoderVariant(encoder, { tokenEmbeddingsInput: true })).report.tokenEmbeddings!.table;
    const rows = readTableRows(table, ids);
    const width = table.dims[1]!;
    const data = new Float32Array(ids.length * width);
    ids.forEach((id, i) => data.set(rows.get(id)!, i * width));
    return { dtype: 'F32', shape: [ids.length, width], bytes: new Uint8Array(data.buffer) };
  };
  const folder = mkdtempSync(join(tmpdir(), 'gg-sdxl-embedding-'));
  writeSafetensors(join(folder, 'cat.safetensors'), { clip_l: await rowsOf(model.textEncoder, model.tokenizer), clip_g: await rowsOf(model.textEncoder2!, model.tokenizer2!) });
  const word = await encodeSdxlPrompt(sdxlModel, 'a photo of a cat');
  const embedded = await encodeSdxlPrompt(sdxlModel, 'a photo of a embedding:cat', { embeddingFolders: [folder] });
  assert.deepEqual(embedded.warnings, []);
  assert.ok(relativeError(embedded.hiddenStates.data, word.hiddenStates.data) <= 1e-5, 'the joined context');
  assert.ok(relativeError(embedded.pooled.data, word.pooled.data) <= 1e-5, 'the pooled text');
});
