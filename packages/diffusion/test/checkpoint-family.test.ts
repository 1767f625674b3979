// What a single .safetensors file is, from its header, as ComfyUI tells it: the CI checkpoints of
// tools/test-checkpoints (SD-1.5 in three dtypes, SD-2.1-v, inpainting, a VAE, a kohya LoRA, damaged keys, a pickle),
// hand-written headers of the families gategraph refuses (SDXL, SD3, Flux, ...), and damaged files.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MAX_HEADER_BYTES,
  PickleFileError,
  SafetensorsFile,
  UnsupportedCheckpointError,
  UnsupportedModelError,
  V_PREDICTION_STD_THRESHOLD,
  describeHeader,
  describeSingleFile,
  detectCheckpoint,
  detectLora,
  detectVaeFile,
  type CheckpointRefusalCode,
  type SdModelFileInfo,
  type TensorHeaderEntry,
} from '../src/index.ts';
import { safetensorsBytes, withHeader } from './safetensors-bytes.ts';
import { testCheckpoints } from './fixtures/test-checkpoints.ts';

let dir: string;
before(() => {
  dir = testCheckpoints();
});
const tmp = mkdtempSync(join(tmpdir(), 'checkpoint-family-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

const RUNS = /gategraph runs Stable Diffusion 1\.x, 2\.x and SDXL single-file checkpoints/;

function describeCi(file: string) {
  return describeSingleFile(join(dir, file));
}

function asModel(info: ReturnType<typeof describeSingleFile>): SdModelFileInfo {
  assert.ok(info.kind === 'checkpoint' || info.kind === 'unet', `${info.path} is ${info.kind}`);
  return info;
}

function entriesOf(file: string): TensorHeaderEntry[] {
  return SafetensorsFile.open(join(dir, file)).tensors().map(({ name, dtype, shape }) => ({ name, dtype, shape }));
}

/** Asserts that `run` throws an UnsupportedCheckpointError with `code` whose message names `file` and matches `message`. */
function refused(run: () => unknown, file: string, code: CheckpointRefusalCode, message: RegExp): UnsupportedCheckpointError {
  let caught: unknown;
  try {
    run();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof UnsupportedCheckpointError, `${file}: expected a refusal (${code}), got ${caught instanceof Error ? caught.stack : String(caught)}`);
  assert.ok(caught instanceof UnsupportedModelError);
  assert.equal(caught.code, code, caught.message);
  assert.ok(caught.message.startsWith(`${file}: `), caught.message);
  assert.match(caught.message, message);
  return caught;
}

const e = (name: string, shape: number[], dtype = 'F16'): TensorHeaderEntry => ({ name, dtype, shape });
const header = (file: string, entries: TensorHeaderEntry[], metadata?: Record<string, string>) => () => describeHeader(entries, { path: `/models/${file}`, ...(metadata ? { metadata } : {}) });

/** An LDM UNet's first keys: what the detection reads of one. */
function ldmUnet(p: string, o: { inChannels?: number; width?: number; context?: number; linear?: boolean } = {}): TensorHeaderEntry[] {
  const width = o.width ?? 320;
  const context = o.context ?? 768;
  return [
    e(`${p}input_blocks.0.0.weight`, [width, o.inChannels ?? 4, 3, 3]),
    e(`${p}input_blocks.1.0.in_layers.0.weight`, [width]),
    e(`${p}input_blocks.1.1.proj_in.weight`, o.linear ? [width, width] : [width, width, 1, 1]),
    e(`${p}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight`, [width, context]),
    e(`${p}middle_block.1.proj_in.weight`, o.linear ? [width * 4, width * 4] : [width * 4, width * 4, 1, 1]),
    e(`${p}out.2.weight`, [4, width, 3, 3]),
  ];
}

test('the CI checkpoints: SD-1.5 in F32 / F16 / BF16 with its UNet, CLIP ViT-L-style text encoder and VAE', () => {
  for (const [file, dtype] of [['sd15.safetensors', 'F32'], ['sd15-fp16.safetensors', 'F16'], ['sd15-bf16.safetensors', 'BF16']] as const) {
    const info = asModel(describeCi(file));
    assert.equal(info.kind, 'checkpoint');
    assert.deepEqual([info.family, info.prediction, info.inpainting], ['sd1', 'epsilon', false], file);
    assert.deepEqual(info.components, { unet: true, vae: true, textEncoder: true });
    assert.deepEqual(info.metadata, { format: 'pt' });
    const u = info.unet;
    assert.deepEqual([u.prefix, u.inChannels, u.outChannels, u.modelChannels, u.contextDim, u.linearProjections, u.vStatistic, u.dtype], ['model.diffusion_model.', 4, 4, 8, 32, false, null, dtype], file);
    assert.equal(info.textEncoder?.layout, 'clip-hf');
    assert.equal(info.textEncoder?.prefix, 'cond_stage_model.transformer.text_model.');
    assert.deepEqual([info.textEncoder?.width, info.textEncoder?.layers], [32, 12]);
    assert.deepEqual([info.vae?.prefix, info.vae?.latentChannels, info.vae?.downscale, info.vae?.channelMult], ['first_stage_model.', 4, 8, [1, 2, 2, 2]]);
    const detected = detectCheckpoint(join(dir, file));
    assert.ok('family' in detected, JSON.stringify(detected));
    assert.deepEqual(detected.family, { text: 'sd1', prediction: 'epsilon' });
  }
});

test('sd21v: SD-2.x (linear projections, OpenCLIP) with v-prediction by ComfyUI\'s statistic; inpainting and low spread are epsilon', () => {
  const info = asModel(describeCi('sd21v.safetensors'));
  assert.deepEqual([info.family, info.prediction, info.inpainting], ['sd2', 'v_prediction', false]);
  assert.equal(info.unet.linearProjections, true);
  assert.ok(info.unet.vStatistic! > V_PREDICTION_STD_THRESHOLD, String(info.unet.vStatistic));
  // The statistic is the population standard deviation of that one bias.
  const bias = SafetensorsFile.open(join(dir, 'sd21v.safetensors')).readFloat32('model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias').data;
  const mean = bias.reduce((a, v) => a + v, 0) / bias.length;
  assert.ok(Math.abs(info.unet.vStatistic! - Math.sqrt(bias.reduce((a, v) => a + (v - mean) ** 2, 0) / bias.length)) < 1e-12);
  assert.deepEqual([info.textEncoder?.layout, info.textEncoder?.prefix, info.textEncoder?.width, info.textEncoder?.layers], ['openclip', 'cond_stage_model.model.', 24, 24]);
  const detected = detectCheckpoint(join(dir, 'sd21v.safetensors'));
  assert.ok('family' in detected);
  assert.deepEqual(detected.family, { text: 'sd2', prediction: 'v_prediction' });

  const entries = entriesOf('sd21v.safetensors');
  const path = '/models/sd21v.safetensors';
  // Low spread: epsilon (SD-2.0-base and 2.1-base).
  const flat = describeHeader(entries, { path, read: (names) => names.map(() => new Float32Array(8).fill(0.5)) });
  assert.deepEqual([asModel(flat).prediction, asModel(flat).unet.vStatistic], ['epsilon', 0]);
  // No reader: nothing is read, epsilon as ComfyUI's default.
  assert.deepEqual([asModel(describeHeader(entries, { path })).prediction, asModel(describeHeader(entries, { path })).unet.vStatistic], ['epsilon', null]);
  // SD-2 inpainting (9 channels): epsilon without reading the bias, as supported_models.SD20.model_type.
  const inpaint = entries.map((t) => (t.name === 'model.diffusion_model.input_blocks.0.0.weight' ? { ...t, shape: [8, 9, 3, 3] } : t));
  const info9 = asModel(describeHeader(inpaint, { path, read: () => assert.fail('the bias is not read for an inpainting UNet') }));
  assert.deepEqual([info9.family, info9.prediction, info9.inpainting], ['sd2', 'epsilon', true]);
});

test('sd15-inpaint: 9 input channels; missing and extra keys are still SD-1.x (the builder names the key)', () => {
  const inpaint = asModel(describeCi('sd15-inpaint.safetensors'));
  assert.deepEqual([inpaint.family, inpaint.prediction, inpaint.inpainting, inpaint.unet.inChannels], ['sd1', 'epsilon', true, 9]);
  for (const file of ['sd15-missing-key.safetensors', 'sd15-extra-key.safetensors']) {
    const info = asModel(describeCi(file));
    assert.deepEqual([info.kind, info.family, info.prediction], ['checkpoint', 'sd1', 'epsilon'], file);
  }
});

test('vae-ft is a standalone VAE, lora-kohya an SD-1 LoRA; each is refused where a checkpoint belongs and accepted where it belongs', () => {
  const vae = describeCi('vae-ft.safetensors');
  assert.equal(vae.kind, 'vae');
  if (vae.kind === 'vae') assert.deepEqual([vae.vae.prefix, vae.vae.layout, vae.vae.latentChannels, vae.vae.hasEncoder, vae.vae.downscale], ['', 'ldm', 4, true, 8]);
  const lora = describeCi('lora-kohya.safetensors');
  assert.equal(lora.kind, 'lora');
  if (lora.kind === 'lora') {
    assert.equal(lora.family, 'sd1', 'ss_base_model_version sd_v1');
    assert.deepEqual([lora.lora.naming, lora.lora.unetModules, lora.lora.textEncoderModules, lora.lora.ranks, lora.lora.alphas, lora.lora.convolutions], ['kohya', 194, 72, [4], [2], true]);
  }
  const asCheckpoint = detectCheckpoint(join(dir, 'vae-ft.safetensors'));
  assert.ok('refusal' in asCheckpoint);
  assert.match(asCheckpoint.refusal, /^vae-ft\.safetensors: this is a standalone VAE, not a checkpoint for models\/checkpoints: it belongs in models\/vae \(VAELoader\)$/);
  assert.equal((asCheckpoint.error as UnsupportedCheckpointError).code, 'wrong-kind');
  const loraAsCheckpoint = detectCheckpoint(join(dir, 'lora-kohya.safetensors'));
  assert.ok('refusal' in loraAsCheckpoint && /a LoRA for SD-1\.x, not a checkpoint .* models\/loras \(LoraLoader\)/.test(loraAsCheckpoint.refusal));
  assert.ok('vae' in detectVaeFile(join(dir, 'vae-ft.safetensors')));
  assert.ok('lora' in detectLora(join(dir, 'lora-kohya.safetensors')));
  const checkpointAsVae = detectVaeFile(join(dir, 'sd15.safetensors'));
  assert.ok('refusal' in checkpointAsVae && /this is a checkpoint for SD-1\.x, not a VAE for models\/vae/.test(checkpointAsVae.refusal), JSON.stringify(checkpointAsVae));
});

test('sd15.ckpt and a pickle renamed .safetensors are refused unopened, with the command that converts them', () => {
  const ckpt = join(dir, 'sd15.ckpt');
  assert.throws(
    () => describeSingleFile(ckpt),
    (err: unknown) =>
      err instanceof PickleFileError &&
      err.code === 'pickle' &&
      err.evidence === 'extension' &&
      err.message.startsWith('sd15.ckpt: this is a Python pickle') &&
      err.message.includes("torch.load('sd15.ckpt', map_location='cpu', weights_only=True)") &&
      err.message.includes("save_file(") &&
      err.message.includes("'sd15.safetensors'"),
  );
  const renamed = join(tmp, 'renamed.safetensors');
  copyFileSync(ckpt, renamed);
  assert.throws(() => describeSingleFile(renamed), (err: unknown) => err instanceof PickleFileError && err.evidence === 'zip' && /whatever its extension says/.test(err.message));
  const detected = detectCheckpoint(ckpt);
  assert.ok('refusal' in detected && detected.error.code === 'pickle' && /gategraph never opens it/.test(detected.refusal));
});

/** SDXL's two text encoders as Stability's single files hold them: the keys detection reads. */
const sdxlClip = [
  e('conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight', [49408, 768]),
  e('conditioner.embedders.0.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight', [768, 768]),
  e('conditioner.embedders.1.model.token_embedding.weight', [49408, 1280]),
  e('conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight', [3840, 1280]),
  e('conditioner.embedders.1.model.text_projection', [1280, 1280]),
];

test('other architectures are named in the refusal (ComfyUI\'s detection keys), with what gategraph runs', () => {
  const sdxl = [...ldmUnet('model.diffusion_model.', { context: 2048, linear: true }), e('model.diffusion_model.label_emb.0.0.weight', [1280, 2816]), ...sdxlClip];
  const cases: Array<[string, () => unknown, CheckpointRefusalCode, RegExp]> = [
    ['sdxl-inpaint.safetensors', header('sdxl-inpaint.safetensors', sdxl.map((t) => (t.name.endsWith('input_blocks.0.0.weight') ? { ...t, shape: [320, 9, 3, 3] } : t))), 'sdxl', /SDXL inpainting model \(9 input channels\).*SDXL inpainting is not supported yet$/],
    ['playground.safetensors', header('playground.safetensors', [...sdxl, e('edm_mean', [1, 4, 1, 1]), e('edm_std', [1, 4, 1, 1])]), 'sdxl', /Playground v2\.5 \(SDXL architecture, trained with EDM's/],
    ['sdxl-no-projection.safetensors', header('sdxl-no-projection.safetensors', sdxl.filter((t) => !t.name.endsWith('text_projection'))), 'inconsistent', /conditioner\.embedders\.1\.model\. has no text_projection, which SDXL's pooled conditioning needs/],
    ['sdxl-mixed.safetensors', header('sdxl-mixed.safetensors', sdxl.map((t) => (t.name.includes('attn2.to_k') ? { ...t, shape: [320, 1024] } : t))), 'inconsistent', /text encoders are 768 \+ 1280 wide but its UNet's cross-attention takes 1024-wide text/],
    ['sd3.5.safetensors', header('sd3.5.safetensors', [e('model.diffusion_model.joint_blocks.0.context_block.attn.qkv.weight', [4608, 1536]), e('model.diffusion_model.x_embedder.proj.weight', [1536, 16, 2, 2])]), 'sd3', /Stable Diffusion 3 \/ 3\.5 model .*SD3 is not supported$/],
    ['flux1-dev.safetensors', header('flux1-dev.safetensors', [e('double_blocks.0.img_attn.norm.key_norm.scale', [128]), e('img_in.weight', [3072, 64]), e('guidance_in.in_layer.weight', [3072, 256])]), 'flux', /Flux\.1 model \(guidance-distilled, as Flux\.1-dev\).*Flux is not supported$/],
    ['flux1-schnell.safetensors', header('flux1-schnell.safetensors', [e('model.diffusion_model.double_blocks.0.img_attn.norm.key_norm.scale', [128]), e('model.diffusion_model.img_in.weight', [3072, 64])]), 'flux', /Flux\.1-schnell/],
    ['flux-diffusers.safetensors', header('flux-diffusers.safetensors', [e('x_embedder.weight', [3072, 64]), e('single_transformer_blocks.0.attn.to_q.weight', [3072, 3072])]), 'flux', /Flux transformer in diffusers' layout/],
    ['svd.safetensors', header('svd.safetensors', [...ldmUnet('model.diffusion_model.', { inChannels: 8, context: 1024, linear: true }), e('model.diffusion_model.input_blocks.1.1.time_stack.0.attn1.to_q.weight', [320, 320]), e('model.diffusion_model.label_emb.0.0.weight', [1280, 768])]), 'svd', /Stable Video Diffusion model \(an LDM UNet with temporal layers/],
    ['cascade-c.safetensors', header('cascade-c.safetensors', [e('clf.1.weight', [16, 2048, 1, 1]), e('clip_txt_mapper.weight', [2048, 1280])]), 'stable-cascade', /Stable Cascade stage C/],
    ['pixart-sigma.safetensors', header('pixart-sigma.safetensors', [e('t_block.1.weight', [6912, 1152]), e('pos_embed', [1, 4096, 1152])]), 'pixart', /PixArt-Σ model/],
    ['hunyuan-dit.safetensors', header('hunyuan-dit.safetensors', [e('mlp_t5.0.weight', [8192, 2048])]), 'hunyuan-dit', /Hunyuan-DiT/],
    ['auraflow.safetensors', header('auraflow.safetensors', [e('model.double_layers.0.attn.w1q.weight', [3072, 3072]), e('model.positional_encoding', [1, 9216, 3072])]), 'auraflow', /AuraFlow/],
    ['unclip.safetensors', header('unclip.safetensors', [...ldmUnet('model.diffusion_model.', { context: 1024, linear: true }), e('model.diffusion_model.label_emb.0.0.weight', [1280, 2048])]), 'sd2-unclip', /2\.1 unCLIP/],
    ['pix2pix.safetensors', header('pix2pix.safetensors', ldmUnet('model.diffusion_model.', { inChannels: 8 })), 'instruct-pix2pix', /InstructPix2Pix/],
    ['x4.safetensors', header('x4.safetensors', ldmUnet('model.diffusion_model.', { inChannels: 7, width: 256, context: 1024, linear: true })), 'sd-x4-upscaler', /x4 upscaler/],
    ['control_v11p_sd15_canny.safetensors', header('control_v11p_sd15_canny.safetensors', [...ldmUnet('control_model.'), e('control_model.input_hint_block.0.weight', [16, 3, 3, 3])]), 'controlnet', /ControlNet/],
    ['diffusion_pytorch_model.safetensors', header('diffusion_pytorch_model.safetensors', [e('conv_in.weight', [320, 4, 3, 3]), e('time_embedding.linear_1.weight', [1280, 320]), e('down_blocks.0.resnets.0.conv1.weight', [320, 320, 3, 3])]), 'diffusers-layout', /UNet in diffusers' layout/],
    ['odd.safetensors', header('odd.safetensors', ldmUnet('model.diffusion_model.', { inChannels: 5 })), 'unknown-unet', /5 input and 4 output channels/],
  ];
  for (const [file, run, code, message] of cases) {
    const err = refused(run, file, code, message);
    if (!['controlnet', 'diffusers-layout', 'unknown-unet', 'inconsistent'].includes(code)) assert.match(err.message, RUNS, file);
  }
  const flux = refused(header('f.safetensors', [e('double_blocks.0.img_attn.norm.key_norm.scale', [128]), e('img_in.weight', [3072, 64])]), 'f.safetensors', 'flux', /Flux/);
  assert.equal(flux.kind, 'flux', 'the UnsupportedModelError kind of model-family.ts');
});

test('SDXL, its refiner and its distillations at the published widths are described from their headers, as ComfyUI tells them', () => {
  const unet = [...ldmUnet('model.diffusion_model.', { context: 2048, linear: true }), e('model.diffusion_model.label_emb.0.0.weight', [1280, 2816])];
  const base = asModel(header('sd_xl_base_1.0.safetensors', [...unet, ...sdxlClip])() as ReturnType<typeof describeSingleFile>);
  assert.deepEqual([base.family, base.prediction, base.unet.variant, base.textEncoder?.width, base.textEncoder2?.width, base.components], ['sdxl', 'epsilon', 'an SDXL model', 768, 1280, { unet: true, vae: false, textEncoder: true }]);
  const vpred = asModel(header('noob-vpred.safetensors', [...unet, ...sdxlClip, e('v_pred', [])])() as ReturnType<typeof describeSingleFile>);
  assert.equal(vpred.prediction, 'v_prediction', 'a v_pred key marks v-prediction (supported_models.SDXL.model_type)');
  const refinerUnet = [...ldmUnet('model.diffusion_model.', { width: 384, context: 1280, linear: true }), e('model.diffusion_model.label_emb.0.0.weight', [1536, 2560])];
  const bigG = sdxlClip.slice(2).map((t) => ({ ...t, name: t.name.replace('embedders.1', 'embedders.0') }));
  const refiner = asModel(header('sd_xl_refiner_1.0.safetensors', [...refinerUnet, ...bigG])() as ReturnType<typeof describeSingleFile>);
  assert.deepEqual([refiner.family, refiner.textEncoder?.prefix, refiner.textEncoder2], ['sdxl-refiner', 'conditioner.embedders.0.model.', null]);
  // Without its first text encoder it is refused as incomplete, naming where SDXL keeps them.
  const small = SafetensorsFile.open(join(dir, 'sdxl-small.safetensors'));
  const kept = small.tensors().filter((t) => !t.name.startsWith('conditioner.embedders.0.'));
  const path = join(tmp, 'sdxl-no-text.safetensors');
  writeFileSync(path, safetensorsBytes(Object.fromEntries(kept.map((t) => [t.name, { dtype: t.dtype, shape: [...t.shape], bytes: small.readBytes(t.name) }]))));
  const detected = detectCheckpoint(path);
  assert.ok('refusal' in detected, 'refused');
  assert.match(detected.refusal, /this SDXL file holds a UNet without its text encoder.*conditioner\.embedders\.0\/1\.\*/);
});

test('LoRAs, embeddings, text encoders and VAEs of other families are refused; SD-1/2 and SDXL ones are described', () => {
  const loraOf = (names: string[]) => names.flatMap((n) => [e(`${n}.lora_down.weight`, [4, 3072]), e(`${n}.lora_up.weight`, [3072, 4]), e(`${n}.alpha`, [])]);
  refused(header('flux-lora.safetensors', loraOf(['lora_unet_double_blocks_0_img_attn_qkv', 'lora_unet_single_blocks_0_linear1'])), 'flux-lora.safetensors', 'flux', /LoRA \(kohya naming.* for Flux/);
  refused(header('sdxl-lora.safetensors', loraOf(['lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q', 'lora_te2_text_model_encoder_layers_0_self_attn_q_proj'])), 'sdxl-lora.safetensors', 'sdxl', /for SDXL \(it patches a second text encoder\): gategraph applies LoRAs to Stable Diffusion 1\.x and 2\.x single-file checkpoints; SDXL LoRAs are not supported yet$/);
  refused(header('xl-meta.safetensors', loraOf(['lora_unet_a']), { ss_base_model_version: 'sdxl_base_v1-0' }), 'xl-meta.safetensors', 'sdxl', /metadata says sdxl_base_v1-0/);
  const sd2Lora = describeHeader([e('lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight', [4, 1024]), e('lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight', [1280, 4])], { path: 'sd2-lora.safetensors' });
  assert.deepEqual([sd2Lora.kind, sd2Lora.kind === 'lora' && sd2Lora.family], ['lora', 'sd2']);

  const xlEmbedding = describeHeader([e('clip_g', [2, 1280]), e('clip_l', [2, 768])], { path: 'xl-embedding.safetensors' });
  assert.deepEqual(xlEmbedding.kind === 'embedding' && xlEmbedding.family, 'sdxl');
  const ti = describeHeader([e('emb_params', [3, 768])], { path: 'style.safetensors' });
  assert.deepEqual(ti.kind === 'embedding' && [ti.family, ti.embedding.tensors], ['sd1', [{ name: 'emb_params', vectors: 3, width: 768 }]]);

  refused(header('t5xxl_fp16.safetensors', [e('encoder.block.0.layer.0.SelfAttention.q.weight', [4096, 4096]), e('shared.weight', [32128, 4096])]), 't5xxl_fp16.safetensors', 'other-text-encoder', /T5-XXL text encoder/);
  const clipG = describeHeader([e('text_model.embeddings.token_embedding.weight', [49408, 1280]), e('text_model.encoder.layers.0.self_attn.q_proj.weight', [1280, 1280])], { path: 'clip_g.safetensors' });
  assert.deepEqual(clipG.kind === 'text-encoder' && clipG.family, 'sdxl', 'OpenCLIP ViT-bigG/14: SDXL\'s second encoder (DualCLIPLoader)');
  const layers = Array.from({ length: 12 }, (_, i) => e(`text_model.encoder.layers.${i}.self_attn.q_proj.weight`, [768, 768]));
  const clipL = describeHeader([e('text_model.embeddings.token_embedding.weight', [49408, 768]), ...layers], { path: 'clip_l.safetensors' });
  assert.deepEqual(clipL.kind === 'text-encoder' && [clipL.family, clipL.textEncoders[0]!.name], ['sd1', 'CLIP ViT-L/14']);

  const vae16 = [e('decoder.conv_in.weight', [512, 16, 3, 3]), e('decoder.up.0.block.0.conv2.weight', [128, 128, 3, 3]), e('encoder.conv_in.weight', [128, 3, 3, 3])];
  refused(header('ae.safetensors', vae16), 'ae.safetensors', 'other-vae', /VAE with 16 latent channels \(SD3's or Flux's\)/);
  refused(header('svd-vae.safetensors', [...vae16.map((t) => (t.name === 'decoder.conv_in.weight' ? { ...t, shape: [512, 4, 3, 3] } : t)), e('decoder.mid.block_1.mix_factor', [1])]), 'svd-vae.safetensors', 'other-vae', /temporal VAE decoder/);

  refused(header('mystery.safetensors', [e('conv_first.weight', [64, 3, 3, 3]), e('body.0.weight', [64])]), 'mystery.safetensors', 'unknown', /none of its 2 tensors \("body\.0\.weight", "conv_first\.weight"\) is a Stable Diffusion UNet/);
  refused(header('empty.safetensors', []), 'empty.safetensors', 'empty', /holds no tensors/);
});

test('a checkpoint mixing families, or missing its text encoder or VAE, is named as such', () => {
  // sd21v's SD-2 UNet with sd15's CLIP.
  const mixed = [...entriesOf('sd21v.safetensors').filter((t) => !t.name.startsWith('cond_stage_model.')), ...entriesOf('sd15.safetensors').filter((t) => t.name.startsWith('cond_stage_model.'))];
  refused(header('mixed.safetensors', mixed), 'mixed.safetensors', 'inconsistent', /UNet is SD-2\.x's \(linear transformer projections\) but its text encoder is CLIP text encoder \(width 32, 12 layers\) in clip-hf naming/);
  // A UNet + VAE file through detectCheckpoint: written to disk as a real safetensors file with the CI shapes.
  const sd15 = SafetensorsFile.open(join(dir, 'sd15.safetensors'));
  const kept = sd15.tensors().filter((t) => !t.name.startsWith('cond_stage_model.'));
  const path = join(tmp, 'no-text.safetensors');
  writeFileSync(path, safetensorsBytes(Object.fromEntries(kept.map((t) => [t.name, { dtype: t.dtype, shape: [...t.shape], bytes: sd15.readBytes(t.name) }]))));
  const info = asModel(describeSingleFile(path));
  assert.deepEqual(info.components, { unet: true, vae: true, textEncoder: false });
  const detected = detectCheckpoint(path);
  assert.ok('refusal' in detected);
  assert.equal((detected.error as UnsupportedCheckpointError).code, 'incomplete');
  assert.match(detected.refusal, /^no-text\.safetensors: this SD-1\.x file holds a UNet without its text encoder: CheckpointLoaderSimple takes single-file checkpoints holding all three/);
  // The UNet alone, without the prefix: a bare UNet (ComfyUI's models/unet).
  const bare = describeHeader(entriesOf('sd15.safetensors').filter((t) => t.name.startsWith('model.diffusion_model.')).map((t) => ({ ...t, name: t.name.slice('model.diffusion_model.'.length) })), { path: 'unet.safetensors' });
  assert.deepEqual([bare.kind, asModel(bare).family, asModel(bare).unet.prefix, asModel(bare).components], ['unet', 'sd1', '', { unet: true, vae: false, textEncoder: false }]);
});

test('damaged files: header over the limit, truncated data, unknown dtype, overlapping offsets are refused naming the file and the problem', () => {
  const write = (name: string, bytes: Uint8Array) => {
    const path = join(tmp, name);
    writeFileSync(path, bytes);
    return path;
  };
  const big = new Uint8Array(64);
  new DataView(big.buffer).setBigUint64(0, BigInt(MAX_HEADER_BYTES) + 1n, true);
  const whole = readFileSync(join(dir, 'sd15.safetensors'));
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['huge-header.safetensors', big, /not a readable safetensors file: its header claims 100000001 bytes, over the format's limit of 100000000/],
    ['cut.safetensors', whole.subarray(0, Math.floor(whole.byteLength / 2)), /not a readable safetensors file: tensor ".*": its data ends at byte \d+, past the end of the file \(\d+ bytes\): the file is truncated/],
    ['f128.safetensors', withHeader(JSON.stringify({ x: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }), [new Uint8Array(16)]), /tensor "x": unknown dtype "F128"/],
    ['overlap.safetensors', withHeader(JSON.stringify({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }), [new Uint8Array(12)]), /the data of tensors "a" \(bytes 0\.\.8\) and "b" \(bytes 4\.\.12\) overlap/],
  ];
  for (const [name, bytes, message] of cases) {
    const path = write(name, bytes);
    refused(() => describeSingleFile(path), name, 'damaged', message);
    const detected = detectCheckpoint(path);
    assert.ok('refusal' in detected && detected.refusal.startsWith(`${name}: this is not a readable safetensors file: `), name);
  }
  // A file that is not there is Node's error, not a refusal.
  assert.throws(() => detectCheckpoint(join(tmp, 'absent.safetensors')), /ENOENT/);
});
