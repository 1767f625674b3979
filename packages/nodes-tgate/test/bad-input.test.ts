import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { validatePrompt, type ApiPrompt } from '@gategraph/core';
import { encodePng } from '@gategraph/diffusion';
import { loadModel, saveModel } from '@gategraph/onnx-graph';
import { defaultPrompt, host, noModel, packRegistry, readJson, repoRoot, runUnvalidated, testModelDir, validateAndRun } from './helpers.ts';

/** The default workflow with some inputs changed: `{ '5': { width: 66 } }`. */
function changed(edits: Record<string, Record<string, unknown>>): ApiPrompt {
  const prompt = defaultPrompt();
  for (const [id, inputs] of Object.entries(edits)) Object.assign(prompt[id]!.inputs, inputs);
  return prompt;
}

/** Runs a prompt (validated when it passes validation, else as is, as an API client bypassing it would) and returns the error. */
async function failure(prompt: ApiPrompt) {
  const registry = await packRegistry();
  const validation = await validatePrompt(prompt, registry);
  const { result } = Object.keys(validation.nodeErrors).length
    ? await runUnvalidated(prompt, ['9'])
    : await runUnvalidated(validation.prompt, validation.outputs);
  assert.equal(result.status, 'error', 'the run should fail');
  return result.error!;
}

/** A model folder in the test host's models/ made of the test model's parts, with `replace` swapping some files. */
function brokenModel(name: string, replace: (dir: string) => void, parts = ['text_encoder', 'tokenizer', 'scheduler', 'vae_decoder', 'vae_encoder']) {
  const dir = join(host.paths.models, name);
  mkdirSync(join(dir, 'unet'), { recursive: true });
  copyFileSync(join(testModelDir, 'model_index.json'), join(dir, 'model_index.json'));
  copyFileSync(join(testModelDir, 'unet', 'config.json'), join(dir, 'unet', 'config.json'));
  for (const part of parts) symlinkSync(join(testModelDir, part), join(dir, part), 'dir');
  replace(dir);
}

test('a ckpt_name that is not a model folder is refused by validation, naming the value', { skip: noModel }, async () => {
  const validation = await validatePrompt(changed({ '4': { ckpt_name: 'no-such-model' } }), await packRegistry());
  const error = validation.nodeErrors['4']?.errors[0];
  assert.equal(error?.type, 'value_not_in_list');
  assert.match(error!.message, /ckpt_name.*"no-such-model".*"tiny-sd"/);
});

test('a model folder missing at run time is a clear error, and the process keeps running', { skip: noModel }, async () => {
  const error = await failure(changed({ '4': { ckpt_name: 'gone' } }));
  assert.equal(error.node_id, '4');
  assert.equal(error.node_type, 'CheckpointLoaderSimple');
  assert.equal(error.exception_type, 'NodeInputError');
  assert.match(error.message, /^ckpt_name "gone": no such model folder in .*models/);
});

test('a corrupt ONNX file names the folder, the component and what to do', { skip: noModel }, async () => {
  brokenModel('corrupt', (dir) => writeFileSync(join(dir, 'unet', 'model.onnx'), 'this is not protobuf'.repeat(50)));
  const error = await failure(changed({ '4': { ckpt_name: 'corrupt' } }));
  assert.equal(error.node_type, 'CheckpointLoaderSimple');
  assert.equal(error.exception_type, 'NodeInputError');
  assert.match(error.message, /^ckpt_name "corrupt" cannot be loaded\. Model folder .*corrupt: unet\/model\.onnx could not be loaded by onnxruntime/);
  assert.match(error.message, /re-export or re-download it/);
});

test('an ONNX file without the expected tensors says what it has instead', { skip: noModel }, async () => {
  brokenModel('swapped', (dir) => copyFileSync(join(testModelDir, 'vae_decoder', 'model.onnx'), join(dir, 'unet', 'model.onnx')));
  const error = await failure(changed({ '4': { ckpt_name: 'swapped' } }));
  assert.equal(error.exception_type, 'NodeInputError');
  assert.match(error.message, /^ckpt_name "swapped" cannot be loaded\. .*unet\/model\.onnx does not look like a UNet: it has no input "sample" \(its inputs: latent_sample/);
});

test('a model folder missing a component lists what is missing', { skip: noModel }, async () => {
  brokenModel(
    'partial',
    (dir) => copyFileSync(join(testModelDir, 'unet', 'model.onnx'), join(dir, 'unet', 'model.onnx')),
    ['tokenizer', 'scheduler', 'vae_decoder'],
  );
  const error = await failure(changed({ '4': { ckpt_name: 'partial' } }));
  assert.match(error.message, /^ckpt_name "partial" cannot be loaded\. .*missing component: text_encoder\/model\.onnx/);
});

test('a width that is not a multiple of the VAE factor is refused by the sampler with sizes that work', { skip: noModel }, async () => {
  const error = await failure(changed({ '5': { width: 66 } }));
  assert.equal(error.node_id, '3');
  assert.equal(error.node_type, 'KSampler');
  assert.equal(error.exception_type, 'NodeInputError');
  assert.equal(
    error.message,
    "latent_image is an empty 66x64 latent, but tiny-sd's VAE works in blocks of 4 pixels, so width and height must be multiples of 4: " +
      'set the EmptyLatentImage to 64 or 68 wide and 64 high',
  );
});

test('a size the model was not exported for is refused with the size it takes', { skip: noModel }, async () => {
  const error = await failure(changed({ '5': { width: 128, height: 96 } }));
  assert.equal(error.node_type, 'KSampler');
  assert.match(error.message, /^latent_image is 128x96 pixels \(latent 32x24\), but tiny-sd's UNet was exported for 64x64 pixels only/);
});

/** A copy of the test model whose UNet graph declares free latent sizes (the graph itself is the same). */
function freeSizeModel(name: string): void {
  brokenModel(name, (dir) => {
    const file = loadModel(join(testModelDir, 'unet', 'model.onnx'));
    const graph = file.proto.graph!;
    for (const info of [...graph.input, ...graph.output]) {
      if (info.name !== 'sample' && info.name !== 'out_sample') continue;
      const dims = info.type!.value.case === 'tensorType' ? info.type!.value.value.shape!.dim : [];
      dims[2]!.value = { case: 'dimParam', value: 'height' };
      dims[3]!.value = { case: 'dimParam', value: 'width' };
    }
    saveModel(file.proto, join(dir, 'unet', 'model.onnx'), { baseDir: file.baseDir });
  });
}

test('a size too large for memory is refused when queued and before sampling, saying the largest that fits', { skip: noModel }, async () => {
  freeSizeModel('free-size');
  const prompt = changed({ '4': { ckpt_name: 'free-size' }, '5': { width: 8192, height: 8192 } });
  const memory =
    /^latent_image is 8192x8192 pixels x 1 image\(s\): sampling it with free-size needs an estimated [\d.]+ [PTG]iB of activations, above the limit of [\d.]+ [GM]iB \(.*\)\. The largest square size within the limit at this batch size is (\d+)x\1 \(free-size was trained at 64x64\)\.$/;

  const queued = (await validatePrompt(prompt, await packRegistry(), { context: { paths: host.paths } })).nodeErrors['3']?.errors[0];
  assert.equal(queued?.type, 'custom_validation_failed');
  assert.equal(queued?.extra_info.input_name, 'latent_image');
  assert.match(queued!.message, memory);

  const error = await failure(prompt);
  assert.equal(error.node_type, 'KSampler');
  assert.equal(error.exception_type, 'NodeInputError');
  assert.equal(error.message, queued!.message, 'the same words when queued and when run');
  const max = Number(/is (\d+)x/.exec(error.message.split('The largest')[1]!)![1]);
  assert.ok(max >= 64 && max < 8192 && max % 4 === 0, `the largest size ${max} should be a multiple of 4 between 64 and 8192`);

  const latent = await failure(changed({ '5': { width: 16384, height: 16384, batch_size: 4096 } }));
  assert.equal(latent.node_type, 'EmptyLatentImage');
  assert.match(latent.message, /^batch_size 4096 of 16384x16384 images needs 256\.0 GiB for the latent alone, above the limit/);
});

test('sizes the model cannot take are refused when queued, on the sampler, with the run-time message', { skip: noModel }, async () => {
  const registry = await packRegistry();
  const cases: Array<[Record<string, Record<string, unknown>>, RegExp]> = [
    // ComfyUI's default workflow size: the first thing a newcomer tries on the embedded model.
    [{ '5': { width: 512, height: 512 } }, /^latent_image is 512x512 pixels \(latent 128x128\), but tiny-sd's UNet was exported for 64x64 pixels only: set the EmptyLatentImage to width 64, height 64$/],
    [{ '5': { width: 66 } }, /^latent_image is an empty 66x64 latent, but tiny-sd's VAE works in blocks of 4 pixels, .*set the EmptyLatentImage to 64 or 68 wide and 64 high$/],
  ];
  for (const [edits, message] of cases) {
    const validation = await validatePrompt(changed(edits), registry, { context: { paths: host.paths } });
    assert.equal(validation.ok, false);
    assert.deepEqual(Object.keys(validation.nodeErrors), ['3'], 'only the sampler is in error');
    const error = validation.nodeErrors['3']!.errors[0]!;
    assert.equal(error.type, 'custom_validation_failed');
    assert.equal(error.extra_info.input_name, 'latent_image');
    assert.match(error.message, message);
    assert.equal((await failure(changed(edits))).message, error.message, 'the sampler says the same when reached');
  }

  // Through TGATE's patch nodes, and with a second sampler chained on the first one's latent.
  const gated = readJson<ApiPrompt>(join(repoRoot, 'workflows', 'tgate.json'));
  const latentId = Object.keys(gated).find((id) => gated[id]!.class_type === 'EmptyLatentImage')!;
  const samplerId = Object.keys(gated).find((id) => gated[id]!.class_type === 'KSampler')!;
  Object.assign(gated[latentId]!.inputs, { width: 512, height: 512 });
  const gatedErrors = (await validatePrompt(gated, registry, { context: { paths: host.paths } })).nodeErrors;
  assert.match(gatedErrors[samplerId]?.errors[0]?.message ?? '', /exported for 64x64 pixels only/);

  const chained = changed({ '5': { width: 512, height: 512 } });
  chained['10'] = { class_type: 'KSamplerAdvanced', inputs: { ...chainedSampler(), latent_image: ['3', 0] } };
  chained['9']!.inputs.images = ['11', 0];
  chained['11'] = { class_type: 'VAEDecode', inputs: { samples: ['10', 0], vae: ['4', 2] } };
  const chainedErrors = (await validatePrompt(chained, registry, { context: { paths: host.paths } })).nodeErrors;
  assert.deepEqual(Object.keys(chainedErrors).sort(), ['3'], 'the first sampler is the one to fix; the second depends on it');

  // The size the model takes passes.
  const ok = await validatePrompt(changed({ '5': { width: 64, height: 64 } }), registry, { context: { paths: host.paths } });
  assert.equal(ok.ok, true);
});

/** KSamplerAdvanced's inputs continuing the default workflow's sampler. */
function chainedSampler(): Record<string, unknown> {
  return {
    model: ['4', 0], add_noise: 'disable', noise_seed: 1, steps: 4, cfg: 6, sampler_name: 'euler', scheduler: 'normal',
    positive: ['6', 0], negative: ['7', 0], start_at_step: 2, end_at_step: 4, return_with_leftover_noise: 'disable',
  };
}

test('an unknown sampler is not in the list for validation, and the engine names the valid ones when reached anyway', { skip: noModel }, async () => {
  const prompt = changed({ '3': { sampler_name: 'heun_plus_plus' } });
  const validation = await validatePrompt(prompt, await packRegistry());
  const error = validation.nodeErrors['3']?.errors[0];
  assert.equal(error?.type, 'value_not_in_list');
  assert.match(error!.message, /sampler_name.*"heun_plus_plus"/);

  const { result } = await runUnvalidated(prompt, ['9']);
  assert.equal(result.error?.node_type, 'KSampler');
  assert.equal(result.error?.exception_type, 'NodeInputError');
  assert.match(result.error?.message ?? '', /^sampler_name: unknown sampler "heun_plus_plus"; valid sampler names are: euler, euler_cfg_pp, .*, uni_pc, uni_pc_bh2$/);
});

test('an image file that is not an image is a clear LoadImage error', { skip: noModel }, async () => {
  writeFileSync(join(host.paths.input, 'notes.png'), 'just some text, not a picture');
  const png = encodePng({ width: 8, height: 8, channels: 3, data: new Uint8Array(8 * 8 * 3).fill(200) });
  writeFileSync(join(host.paths.input, 'cut.png'), png.subarray(0, png.length - 20));
  const load = (image: string): ApiPrompt => ({
    '1': { class_type: 'LoadImage', inputs: { image } },
    '2': { class_type: 'PreviewImage', inputs: { images: ['1', 0] } },
  });

  let { result } = await validateAndRun(load('notes.png'));
  assert.equal(result.error?.node_type, 'LoadImage');
  assert.equal(result.error?.exception_type, 'NodeInputError');
  assert.equal(result.error?.message, 'image "notes.png" cannot be loaded: it is not an image in a format LoadImage reads (PNG, JPEG, WebP, GIF, TIFF); it starts with bytes 6a 75 73 74 20 73 6f 6d');

  ({ result } = await validateAndRun(load('cut.png')));
  assert.match(result.error?.message ?? '', /^image "cut\.png" cannot be loaded: it looks like a PNG but cannot be decoded \(.*\); the file may be truncated or damaged$/);

  // And after all these failures the same process still runs the default workflow.
  ({ result } = await validateAndRun(defaultPrompt()));
  assert.equal(result.status, 'success', JSON.stringify(result.error));
});

test('a prompt text past the length limit is refused when queued, before anything tokenizes it', { skip: noModel }, async () => {
  const text = 'a red circle '.repeat(2000);
  const validation = await validatePrompt(changed({ '6': { text } }), await packRegistry(), { context: { paths: host.paths } });
  const error = validation.nodeErrors['6']?.errors[0];
  assert.equal(error?.type, 'custom_validation_failed');
  assert.equal(error?.message, 'text is 26,000 characters long; prompts may have at most 20,000');
  const atLimit = await validatePrompt(changed({ '6': { text: 'x'.repeat(20_000) } }), await packRegistry(), { context: { paths: host.paths } });
  assert.equal(atLimit.nodeErrors['6'], undefined);
});

test('LoadImage refuses an image whose header declares more pixels than it decodes, before decoding it', { skip: noModel }, async () => {
  // A PNG header declaring 16000x16000 pixels over almost no data: decoding it would take gigabytes.
  const png = encodePng({ width: 1, height: 1, channels: 3, data: new Uint8Array(3) });
  const bomb = Buffer.from(png);
  bomb.writeUInt32BE(16000, 16);
  bomb.writeUInt32BE(16000, 20);
  writeFileSync(join(host.paths.input, 'bomb.png'), bomb);
  const { result } = await runUnvalidated({ '1': { class_type: 'LoadImage', inputs: { image: 'bomb.png' } }, '2': { class_type: 'PreviewImage', inputs: { images: ['1', 0] } } }, ['2']);
  assert.equal(result.error?.node_type, 'LoadImage');
  assert.match(result.error!.message, /it is 16000x16000 pixels \(256\.0 megapixels\); images of up to 67\.1 megapixels \(8192x8192\) are loaded/);
});
