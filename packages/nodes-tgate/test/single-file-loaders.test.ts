// ComfyUI's model files through the loader nodes: a single-file .safetensors checkpoint in models/checkpoints
// (sd15-small from tools/test-checkpoints: SD-1.5's layout at widths every builder default fits, CLIP's full
// vocabulary), a VAE file in models/vae and a LoRA in models/loras, as ComfyUI's workflows name them.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { validatePrompt, type ApiPrompt, type ExecutionEvent, type Logger } from '@gategraph/core';
import { decodePng } from '@gategraph/diffusion';
import { listCheckpoints } from '../src/folders.ts';
import { testCheckpoints } from '../../diffusion/test/fixtures/test-checkpoints.ts';
import { host, packRegistry, readJson, repoRoot, savedImages, validateAndRun } from './helpers.ts';
import { copyTensors, makeLora, writeSafetensors } from './model-files.ts';

const CKPT = 'v1-5-pruned-emaonly.safetensors';
const checkpoints = join(host.paths.models, 'checkpoints');
const vaes = join(host.paths.models, 'vae');
const loras = join(host.paths.models, 'loras');
const configs = join(host.paths.models, 'configs');
const textEncoders = join(host.paths.models, 'text_encoders');

/** An LDM inference config in the layout of ComfyUI's models/configs/v1-inference.yaml, for sd15-small's widths. */
function ldmConfig(options: { parameterization?: string; heads?: number; text?: string } = {}): string {
  return [
    'model:',
    '  base_learning_rate: 1.0e-04',
    '  target: ldm.models.diffusion.ddpm.LatentDiffusion',
    '  params:',
    ...(options.parameterization ? [`    parameterization: "${options.parameterization}"`] : []),
    '    scale_factor: 0.18215',
    '    unet_config:',
    '      target: ldm.modules.diffusionmodules.openaimodel.UNetModel',
    '      params:',
    '        in_channels: 4',
    '        out_channels: 4',
    '        model_channels: 32',
    `        num_heads: ${options.heads ?? 1}`,
    '        context_dim: 64',
    '    cond_stage_config:',
    `      target: ${options.text ?? 'ldm.modules.encoders.modules.FrozenCLIPEmbedder'}`,
    '',
  ].join('\n');
}

before(() => {
  const source = join(testCheckpoints(), 'sd15-small.safetensors');
  for (const dir of [checkpoints, vaes, loras, configs, textEncoders]) mkdirSync(dir, { recursive: true });
  // The checkpoint's text encoder as ComfyUI's clip_l.safetensors keeps it (transformers' names).
  writeSafetensors(join(textEncoders, 'clip-l.safetensors'), copyTensors(source, 'cond_stage_model.transformer.', ''));
  writeFileSync(join(configs, 'small-inference.yaml'), ldmConfig());
  writeFileSync(join(configs, 'small-inference-v.yaml'), ldmConfig({ parameterization: 'v' }));
  writeFileSync(join(configs, 'small-2-heads.yaml'), ldmConfig({ heads: 2 }));
  writeFileSync(join(configs, 'v2-inference.yaml'), ldmConfig({ text: 'ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder' }));
  symlinkSync(source, join(checkpoints, CKPT));
  // The checkpoint's own VAE as a standalone file (ComfyUI's models/vae files have no first_stage_model. prefix).
  const vae = copyTensors(source, 'first_stage_model.', '');
  writeSafetensors(join(vaes, 'own-vae.safetensors'), vae);
  // The same VAE with its output shifted: a VAE that is not the checkpoint's must change the image.
  const bias = vae.get('decoder.conv_out.bias')!;
  assert.equal(bias.dtype, 'F32');
  const shifted = new Float32Array(bias.bytes.slice().buffer).map((v) => v + 0.5);
  vae.set('decoder.conv_out.bias', { ...bias, bytes: new Uint8Array(shifted.buffer) });
  writeSafetensors(join(vaes, 'brighter-vae.safetensors'), vae);
  writeSafetensors(join(loras, 'style.safetensors'), makeLora(source));
  // The checkpoint with one tensor no SD-1.x graph reads (as merges and variant architectures carry).
  const extra = copyTensors(source, '', '');
  extra.set('model.diffusion_model.extra_head.weight', { dtype: 'F32', shape: [2], bytes: new Uint8Array(8) });
  writeSafetensors(join(checkpoints, 'with-extra.safetensors'), extra);
  // A file in the wrong folder: a LoRA where VAEs go.
  writeSafetensors(join(vaes, 'not-a-vae.safetensors'), makeLora(source));
});

/** ComfyUI's default workflow (the shipped default.json is its graph) on the checkpoint file, at 64x64, 8 steps. */
function workflow(prefix: string, ckpt = CKPT): ApiPrompt {
  const prompt = readJson<ApiPrompt>(join(repoRoot, 'workflows', 'default.json'));
  prompt['4']!.inputs.ckpt_name = ckpt;
  prompt['3']!.inputs.steps = 8;
  Object.assign(prompt['5']!.inputs, { width: 64, height: 64 });
  prompt['9']!.inputs.filename_prefix = prefix;
  return prompt;
}

/** The default workflow with a LoraLoader between the checkpoint and its users. */
function withLora(prefix: string, strengthModel: number, strengthClip: number): ApiPrompt {
  const prompt = workflow(prefix);
  prompt['10'] = {
    class_type: 'LoraLoader',
    inputs: { model: ['4', 0], clip: ['4', 1], lora_name: 'style.safetensors', strength_model: strengthModel, strength_clip: strengthClip },
  };
  prompt['3']!.inputs.model = ['10', 0];
  prompt['6']!.inputs.clip = ['10', 1];
  prompt['7']!.inputs.clip = ['10', 1];
  return prompt;
}

async function pixels(prompt: ApiPrompt, onEvent?: (e: ExecutionEvent) => void): Promise<Uint8Array> {
  const { result } = await validateAndRun(prompt, { ...(onEvent ? { onEvent } : {}) });
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  const [saved] = savedImages(result);
  const png = decodePng(readFileSync(join(host.paths.output, saved!.filename)));
  assert.deepEqual([png.width, png.height], [64, 64]);
  return png.data as Uint8Array;
}

test('ComfyUI\'s default workflow on a .safetensors checkpoint: built on first use with progress, then reused', async () => {
  assert.ok(listCheckpoints({ paths: host.paths }).includes(CKPT), 'listed under its file name');
  const progress: string[] = [];
  const first = await pixels(workflow('single-file'), (e) => {
    if (e.type === 'progress' && e.data.node === '4') progress.push(`${e.data.value}/${e.data.max}`);
  });
  assert.deepEqual(progress, ['0/4', '1/4', '2/4', '3/4', '4/4'], 'the loader reports building its four components');
  assert.ok(new Set(first).size > 16, 'the image is not flat');
  assert.ok(!listCheckpoints({ paths: host.paths }).some((n) => n.includes('.gategraph')), 'the built graphs are not listed as models');

  const again: string[] = [];
  const second = await pixels(workflow('single-file-again'), (e) => {
    if (e.type === 'progress' && e.data.node === '4') again.push(`${e.data.value}/${e.data.max}`);
  });
  assert.deepEqual(again, [], 'nothing is built the second time');
  assert.deepEqual(second, first, 'the same seed gives the same image');
});

test('a tensor no graph reads is named in the log when the checkpoint is built, and the model still runs', async () => {
  const lines: string[] = [];
  const logger: Logger = { debug() {}, info: (m) => lines.push(m), warn: (m) => lines.push(`warn: ${m}`), error: (m) => lines.push(m), child: () => logger };
  const { result } = await validateAndRun(workflow('extra', 'with-extra.safetensors'), { logger });
  assert.equal(result.status, 'success', JSON.stringify(result.error));
  assert.ok(lines.some((l) => /building the UNet from .*with-extra\.safetensors/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /^warn: .*1 tensors of with-extra\.safetensors are used by no component.*model\.diffusion_model\.extra_head\.weight/.test(l)), lines.join('\n'));
});

test('the TGATE workflow runs on the built UNet', async () => {
  const prompt = readJson<ApiPrompt>(join(repoRoot, 'workflows', 'tgate.json'));
  prompt['4']!.inputs.ckpt_name = CKPT;
  Object.assign(prompt['5']!.inputs, { width: 64, height: 64 });
  prompt['3']!.inputs.steps = 8;
  Object.assign(prompt['10']!.inputs, { gate_step: 4, warm_up: 1, sp_interval: 2 });
  prompt['9']!.inputs.filename_prefix = 'single-file-tgate';
  const image = await pixels(prompt);
  assert.ok(new Set(image).size > 16);
});

test('LoraLoader: the LoRA changes the image; at strengths 0 it is the checkpoint\'s image, byte for byte', async () => {
  const plain = await pixels(workflow('lora-plain'));
  const styled = await pixels(withLora('lora-1', 1, 1));
  assert.notDeepEqual(styled, plain);
  const modelOnly = await pixels(withLora('lora-model', 1, 0));
  assert.notDeepEqual(modelOnly, styled, 'strength_clip changes the text encoder');
  assert.deepEqual(await pixels(withLora('lora-0', 0, 0)), plain);
});

test('LoraLoader on an ONNX model folder is refused with why', async () => {
  const prompt = withLora('lora-onnx', 1, 1);
  prompt['4']!.inputs.ckpt_name = 'tiny-sd';
  const registry = await packRegistry();
  const validation = await validatePrompt(prompt, registry);
  assert.deepEqual(validation.nodeErrors, {});
  const { result } = await validateAndRun(prompt);
  assert.equal(result.status, 'error');
  assert.equal(result.error?.node_id, '10');
  assert.match(result.error?.message ?? '', /tiny-sd is an ONNX model folder; LoRAs are applied to single-file checkpoints/);
});

test('VAELoader: the checkpoint\'s VAE as a file decodes the same image, another VAE another; a LoRA in models/vae is refused when queued', async () => {
  const own = await pixels(workflow('vae-own'));
  const prompt = workflow('vae-file');
  prompt['20'] = { class_type: 'VAELoader', inputs: { vae_name: 'own-vae.safetensors' } };
  prompt['8']!.inputs.vae = ['20', 0];
  assert.deepEqual(await pixels(prompt), own);
  prompt['20']!.inputs.vae_name = 'brighter-vae.safetensors';
  const brighter = await pixels(prompt);
  assert.ok(brighter.reduce((a, b) => a + b, 0) > own.reduce((a, b) => a + b, 0), 'the shifted VAE decodes a brighter image');

  prompt['20']!.inputs.vae_name = 'not-a-vae.safetensors';
  const validation = await validatePrompt(prompt, await packRegistry());
  const messages = validation.nodeErrors['20']?.errors.map((e) => e.message).join('\n') ?? '';
  assert.match(messages, /vae_name "not-a-vae\.safetensors": this is a LoRA/);
});

test('CLIPLoader: the checkpoint\'s text encoder as a file encodes the same prompts; a VAE in models/text_encoders is refused', async () => {
  const own = await pixels(workflow('clip-own'));
  const prompt = workflow('clip-file');
  prompt['30'] = { class_type: 'CLIPLoader', inputs: { clip_name: 'clip-l.safetensors', type: 'stable_diffusion' } };
  prompt['6']!.inputs.clip = ['30', 0];
  prompt['7']!.inputs.clip = ['30', 0];
  assert.deepEqual(await pixels(prompt), own);

  symlinkSync(join(vaes, 'own-vae.safetensors'), join(textEncoders, 'misplaced-vae.safetensors'));
  prompt['30']!.inputs.clip_name = 'misplaced-vae.safetensors';
  const validation = await validatePrompt(prompt, await packRegistry());
  assert.match(validation.nodeErrors['30']?.errors.map((e) => e.message).join('\n') ?? '', /clip_name "misplaced-vae\.safetensors": this is a standalone VAE.*models\/vae \(VAELoader\)/);
});

test('a checkpoint of another family is refused when the prompt is queued, saying what it is', async () => {
  // The LoRA file put where checkpoints go.
  symlinkSync(join(loras, 'style.safetensors'), join(checkpoints, 'misplaced.safetensors'));
  const validation = await validatePrompt(workflow('refused', 'misplaced.safetensors'), await packRegistry());
  const messages = validation.nodeErrors['4']?.errors.map((e) => e.message).join('\n') ?? '';
  assert.match(messages, /ckpt_name "misplaced\.safetensors": this is a LoRA.*models\/loras/);
});

test('CheckpointLoader: the config decides the prediction type and the heads, and must fit the checkpoint', async () => {
  const withConfig = (prefix: string, config: string, ckpt = CKPT) => {
    const prompt = workflow(prefix, ckpt);
    prompt['4'] = { class_type: 'CheckpointLoader', inputs: { config_name: config, ckpt_name: ckpt } };
    return prompt;
  };
  const simple = await pixels(workflow('config-simple'));
  assert.deepEqual(await pixels(withConfig('config-same', 'small-inference.yaml')), simple, 'a config saying what detection found gives the same image');
  assert.notDeepEqual(await pixels(withConfig('config-v', 'small-inference-v.yaml')), simple, 'parameterization "v" samples as v-prediction');
  assert.notDeepEqual(await pixels(withConfig('config-heads', 'small-2-heads.yaml')), simple, 'num_heads splits the attention differently');

  const registry = await packRegistry();
  const errorsOf = async (prompt: ApiPrompt) => (await validatePrompt(prompt, registry)).nodeErrors['4']?.errors.map((e) => e.message).join('\n') ?? '';
  assert.match(await errorsOf(withConfig('x', 'v2-inference.yaml')), /config_name "v2-inference\.yaml": v2-inference\.yaml: it is a config for SD-2\.x \(OpenCLIP ViT-H\/14\) but v1-5-pruned-emaonly\.safetensors is an SD-1\.x checkpoint/);
  assert.match(await errorsOf(withConfig('x', 'small-inference.yaml', 'tiny-sd')), /ckpt_name "tiny-sd" is not a single-file \.safetensors checkpoint: a config describes single files/);
});

// ------------------------------------------------------------------------------------------------ files


