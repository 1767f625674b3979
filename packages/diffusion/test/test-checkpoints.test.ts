// The single-file test checkpoints (tools/test-checkpoints, CI widths, random weights in the LDM key layout): every
// file opens with the engine's safetensors reader and holds the keys, dtypes and shapes tools/test-checkpoints/
// README.md documents; the .ckpt is a torch zip whose pickle is recognised by its bytes, never unpickled; the
// references index names files that exist with the sizes it states.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsError, SafetensorsFile } from '../src/index.ts';
import {
  readCheckpointManifest,
  readCheckpointReference,
  TEST_CHECKPOINT_FILES,
  testCheckpoints,
} from './fixtures/test-checkpoints.ts';

let dir: string;
before(() => {
  dir = testCheckpoints();
});

const open = (file: string) => SafetensorsFile.open(join(dir, file));

function dtypeCounts(f: SafetensorsFile): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of f.tensors()) out[t.dtype] = (out[t.dtype] ?? 0) + 1;
  return out;
}

/** Keys and dtypes per file at CI scale (README.md, "Files"). */
const EXPECTED: Record<string, { keys: number; dtypes: Record<string, number> }> = {
  'sd15.safetensors': { keys: 1139, dtypes: { F32: 1137, I64: 1, I32: 1 } },
  'sd15-fp16.safetensors': { keys: 1139, dtypes: { F16: 1137, I64: 1, I32: 1 } },
  'sd15-bf16.safetensors': { keys: 1139, dtypes: { BF16: 1137, I64: 1, I32: 1 } },
  'sd21v.safetensors': { keys: 1236, dtypes: { F32: 1235, I32: 1 } },
  'sd15-inpaint.safetensors': { keys: 1139, dtypes: { F32: 1137, I64: 1, I32: 1 } },
  'vae-ft.safetensors': { keys: 246, dtypes: { F32: 245, I32: 1 } },
  'lora-kohya.safetensors': { keys: 797, dtypes: { F16: 797 } },
  'sd15-missing-key.safetensors': { keys: 1138, dtypes: { F32: 1136, I64: 1, I32: 1 } },
  'sd15-extra-key.safetensors': { keys: 1140, dtypes: { F32: 1138, I64: 1, I32: 1 } },
  'sd15-small.safetensors': { keys: 1139, dtypes: { F32: 1137, I64: 1, I32: 1 } },
  // SDXL's SGM layout, float16 as published: UNet 1678 + CLIP-L 197 (with position_ids) + bigG 390 + VAE 244
  'sdxl-small.safetensors': { keys: 2509, dtypes: { F16: 2508, I64: 1 } },
  'sdxl-refiner-small.safetensors': { keys: 1852, dtypes: { F16: 1852 } },
  'clip_l-small.safetensors': { keys: 196, dtypes: { F16: 196 } },
  'clip_g-small.safetensors': { keys: 517, dtypes: { F16: 517 } },
};

const U = 'model.diffusion_model.';
const LDM_BUFFERS = [
  'betas', 'alphas_cumprod', 'alphas_cumprod_prev', 'sqrt_alphas_cumprod', 'sqrt_one_minus_alphas_cumprod',
  'log_one_minus_alphas_cumprod', 'sqrt_recip_alphas_cumprod', 'sqrt_recipm1_alphas_cumprod', 'posterior_variance',
  'posterior_log_variance_clipped', 'posterior_mean_coef1', 'posterior_mean_coef2', 'model_ema.decay', 'model_ema.num_updates',
];

test('every checkpoint opens with the keys and dtypes documented, data laid out as safetensors writes it', () => {
  const manifest = readCheckpointManifest(dir);
  assert.equal(manifest.scale, 'ci');
  for (const file of TEST_CHECKPOINT_FILES) assert.ok(existsSync(join(dir, file)), `${file} was generated`);
  for (const [file, want] of Object.entries(EXPECTED)) {
    const f = open(file);
    assert.equal(f.names().length, want.keys, `${file}: key count`);
    assert.deepEqual(dtypeCounts(f), want.dtypes, `${file}: dtypes`);
    assert.equal(manifest.files[file]?.keys, want.keys, `${file}: manifest.json agrees`);
    // contiguous data, widest dtype first (I64, F32, I32, BF16, F16), names sorted within a dtype, up to the file's end
    const order = ['I64', 'F32', 'I32', 'BF16', 'F16'];
    const ts = f.tensors();
    for (let i = 1; i < ts.length; i++) {
      const [a, b] = [ts[i - 1]!, ts[i]!];
      assert.equal(b.offset, a.offset + a.byteLength, `${file}: ${b.name} follows ${a.name}`);
      const rank = order.indexOf(a.dtype) - order.indexOf(b.dtype);
      assert.ok(rank < 0 || (rank === 0 && a.name < b.name), `${file}: ${a.name} (${a.dtype}) before ${b.name} (${b.dtype})`);
      assert.equal(b.offset % (b.dtype === 'I64' ? 8 : b.dtype.endsWith('16') ? 2 : 4), 0, `${file}: ${b.name} aligned`);
    }
    const last = ts[ts.length - 1]!;
    assert.equal(last.offset + last.byteLength, statSync(join(dir, file)).size, `${file}: no bytes after the data`);
  }
});

test('sd15: LDM prefixes, CLIP-L in transformers naming, the VAE attention as 1x1 convolutions, the LDM buffers', () => {
  const f = open('sd15.safetensors');
  const names = f.names();
  const count = (prefix: string) => names.filter((n) => n.startsWith(prefix)).length;
  assert.equal(count(U), 684); // 686 at full scale: CI's down_blocks.2 keeps its width, so no skip_connection
  assert.equal(count('first_stage_model.'), 244); // 248 at full scale (two fewer nin_shortcuts at CI widths)
  assert.equal(count('cond_stage_model.transformer.text_model.'), 197); // 196 weights + position_ids
  for (const b of LDM_BUFFERS) assert.ok(f.tensor(b), `buffer ${b}`);
  assert.deepEqual(f.tensor('alphas_cumprod')!.shape, [1000]);
  assert.equal(f.tensor('model_ema.num_updates')!.dtype, 'I32');
  assert.deepEqual(f.tensor('model_ema.num_updates')!.shape, []);
  const ids = f.tensor('cond_stage_model.transformer.text_model.embeddings.position_ids')!;
  assert.equal(ids.dtype, 'I64');
  assert.deepEqual(ids.shape, [1, 77]);
  assert.deepEqual(f.tensor(`${U}input_blocks.0.0.weight`)!.shape, [8, 4, 3, 3]);
  assert.deepEqual(f.tensor(`${U}input_blocks.1.1.proj_in.weight`)!.shape, [8, 8, 1, 1]); // SD-1: 1x1 conv
  assert.deepEqual(f.tensor(`${U}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight`)!.shape, [8, 32]);
  assert.ok(f.tensor(`${U}input_blocks.3.0.op.weight`), 'Downsample.op');
  assert.ok(f.tensor(`${U}output_blocks.2.1.conv.weight`), 'Upsample after a level without attention');
  assert.ok(f.tensor(`${U}output_blocks.5.2.conv.weight`), 'Upsample after the attention');
  assert.ok(f.tensor(`${U}time_embed.2.weight`) && f.tensor(`${U}out.2.weight`));
  assert.deepEqual(f.tensor('first_stage_model.decoder.mid.attn_1.q.weight')!.shape, [16, 16, 1, 1]);
  assert.deepEqual(f.tensor('first_stage_model.decoder.up.0.block.0.nin_shortcut.weight')!.shape, [8, 16, 1, 1]);
  assert.ok(!f.tensor('first_stage_model.decoder.up.0.upsample.conv.weight'), 'up.0 (the last decoder level) has no upsample');
  assert.deepEqual(f.metadata, { format: 'pt' });
});

test('sd15-small: sd15\'s keys at widths the builders\' defaults fit (32 GroupNorm groups, 64-dim heads), CLIP\'s full vocabulary', () => {
  const f = open('sd15-small.safetensors');
  assert.deepEqual(f.names(), open('sd15.safetensors').names());
  const T = 'cond_stage_model.transformer.text_model.';
  assert.deepEqual(f.tensor(`${T}embeddings.token_embedding.weight`)!.shape, [49408, 64]); // the bundled tokenizer's ids
  assert.deepEqual(f.tensor(`${T}embeddings.position_embedding.weight`)!.shape, [77, 64]);
  assert.deepEqual(f.tensor(`${T}encoder.layers.11.mlp.fc1.weight`)!.shape, [256, 64]); // 12 layers, one 64-dim head
  assert.deepEqual(f.tensor(`${U}input_blocks.0.0.weight`)!.shape, [32, 4, 3, 3]);
  assert.deepEqual(f.tensor(`${U}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight`)!.shape, [32, 64]); // context = text width
  assert.deepEqual(f.tensor(`${U}middle_block.1.proj_in.weight`)!.shape, [64, 64, 1, 1]);
  assert.deepEqual(f.tensor('first_stage_model.post_quant_conv.weight')!.shape, [4, 4, 1, 1]);
  assert.deepEqual(f.tensor('first_stage_model.decoder.conv_in.weight')!.shape, [64, 4, 3, 3]);
  // every GroupNorm of the UNet and the VAE splits into 32 groups
  const norms = f.tensors().filter((t) => /^(model\.diffusion_model|first_stage_model)\..*(in_layers\.0|out_layers\.0|\.\d+\.1\.norm|out\.0|norm[12]|norm_out|attn_1\.norm)\.weight$/.test(t.name) && !t.name.includes('transformer_blocks'));
  assert.ok(norms.length > 100, `${norms.length} norms`);
  for (const t of norms) assert.equal(t.shape[0]! % 32, 0, t.name);
  assert.deepEqual(readCheckpointManifest(dir).files['sd15-small.safetensors']!.architecture!.unet!.norm_num_groups, 32);
});

test('fp16 and bf16: the same keys, every float tensor sd15\'s value rounded', () => {
  const ref = open('sd15.safetensors');
  for (const [file, dtype, eps] of [['sd15-fp16.safetensors', 'F16', 2 ** -11], ['sd15-bf16.safetensors', 'BF16', 2 ** -8]] as const) {
    const f = open(file);
    assert.deepEqual(f.names(), ref.names());
    for (const info of ref.tensors()) {
      const other = f.tensor(info.name)!;
      assert.deepEqual(other.shape, info.shape);
      if (info.dtype !== 'F32') {
        assert.equal(other.dtype, info.dtype, `${file}: ${info.name} keeps its integer dtype`);
        assert.deepEqual(f.readBytes(info.name), ref.readBytes(info.name));
        continue;
      }
      assert.equal(other.dtype, dtype);
      const a = ref.readFloat32(info.name).data;
      const b = f.readFloat32(info.name).data;
      for (let i = 0; i < a.length; i++) {
        // round to nearest: half an ulp of the format, relative (the schedule's tiny values stay normal in both)
        if (Math.abs(a[i]! - b[i]!) > eps * Math.abs(a[i]!) + 1e-7) assert.fail(`${file}: ${info.name}[${i}] ${b[i]} is not ${a[i]} rounded`);
      }
    }
  }
});

test('sd21v: OpenCLIP naming with 24 resblocks, fused in_proj, linear proj_in, and ComfyUI\'s v-prediction statistic', () => {
  const f = open('sd21v.safetensors');
  const o = 'cond_stage_model.model.';
  const names = f.names();
  assert.equal(names.filter((n) => n.startsWith(`${o}transformer.resblocks.`)).length, 24 * 12);
  assert.deepEqual(f.tensor(`${o}transformer.resblocks.23.attn.in_proj_weight`)!.shape, [72, 24]);
  assert.deepEqual(f.tensor(`${o}transformer.resblocks.0.attn.in_proj_bias`)!.shape, [72]);
  assert.deepEqual(f.tensor(`${o}transformer.resblocks.0.mlp.c_fc.weight`)!.shape, [96, 24]);
  assert.deepEqual(f.tensor(`${o}positional_embedding`)!.shape, [77, 24]);
  assert.deepEqual(f.tensor(`${o}text_projection`)!.shape, [24, 24]);
  assert.deepEqual(f.tensor(`${o}logit_scale`)!.shape, []);
  assert.ok(f.tensor(`${o}ln_final.weight`) && f.tensor(`${o}token_embedding.weight`));
  assert.ok(!names.some((n) => n.startsWith('cond_stage_model.transformer.')));
  assert.deepEqual(f.tensor(`${U}input_blocks.1.1.proj_in.weight`)!.shape, [8, 8]); // SD-2: Linear
  assert.deepEqual(f.tensor(`${U}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight`)!.shape, [8, 24]);
  const bias = f.readFloat32(`${U}output_blocks.11.1.transformer_blocks.0.norm1.bias`).data;
  const mean = bias.reduce((s, x) => s + x, 0) / bias.length;
  const std = Math.sqrt(bias.reduce((s, x) => s + (x - mean) ** 2, 0) / bias.length);
  assert.ok(std > 0.09, `std ${std} tells ComfyUI this is a v-prediction model`);
});

test('inpaint, standalone VAE, missing and extra keys', () => {
  assert.deepEqual(open('sd15-inpaint.safetensors').tensor(`${U}input_blocks.0.0.weight`)!.shape, [8, 9, 3, 3]);
  const vae = open('vae-ft.safetensors');
  assert.ok(vae.names().every((n) => /^(encoder|decoder|quant_conv|post_quant_conv)\.|^model_ema\./.test(n)));
  assert.deepEqual(vae.tensor('encoder.mid.attn_1.proj_out.weight')!.shape, [16, 16, 1, 1]);
  const sd15 = open('sd15.safetensors');
  assert.notDeepEqual(vae.readBytes('decoder.conv_out.weight'), sd15.readBytes('first_stage_model.decoder.conv_out.weight'));
  const missing = readCheckpointManifest(dir).files['sd15-missing-key.safetensors']!.missing!;
  assert.ok(sd15.tensor(missing) && !open('sd15-missing-key.safetensors').tensor(missing));
  const extra = readCheckpointManifest(dir).files['sd15-extra-key.safetensors']!.extra!;
  assert.ok(!sd15.tensor(extra) && open('sd15-extra-key.safetensors').tensor(extra));
});

test('kohya LoRA: rank 4, alpha 2 (one module without), Linear and 1x1 / 3x3 Conv shapes, text-encoder modules', () => {
  const f = open('lora-kohya.safetensors');
  const names = f.names();
  const modules = new Set(names.map((n) => n.slice(0, n.indexOf('.'))));
  assert.equal(modules.size, 266);
  assert.equal(names.filter((n) => n.endsWith('.alpha')).length, 265);
  assert.ok(!f.tensor('lora_unet_mid_block_attentions_0_proj_out.alpha') && f.tensor('lora_unet_mid_block_attentions_0_proj_out.lora_up.weight'));
  const alpha = f.readFloat32('lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.alpha');
  assert.deepEqual([...alpha.data], [2]);
  assert.deepEqual(alpha.shape, []);
  const shape = (n: string) => f.tensor(n)!.shape;
  assert.deepEqual(shape('lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight'), [4, 32]);
  assert.deepEqual(shape('lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight'), [8, 4]);
  assert.deepEqual(shape('lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight'), [4, 8, 1, 1]);
  assert.deepEqual(shape('lora_unet_up_blocks_1_attentions_2_transformer_blocks_0_ff_net_0_proj.lora_up.weight'), [128, 4]);
  assert.deepEqual(shape('lora_unet_down_blocks_1_resnets_0_conv1.lora_down.weight'), [4, 8, 3, 3]);
  assert.deepEqual(shape('lora_unet_down_blocks_1_resnets_0_conv1.lora_up.weight'), [16, 4, 1, 1]);
  assert.deepEqual(shape('lora_te_text_model_encoder_layers_11_self_attn_out_proj.lora_down.weight'), [4, 32]);
  assert.deepEqual(shape('lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight'), [128, 4]);
  assert.equal(f.metadata.ss_network_dim, '4');
  assert.equal(f.metadata.ss_network_alpha, '2.0');
});

test('sd15.ckpt is a torch zip whose first member is a protocol-2 pickle: recognised by its bytes, not unpickled', () => {
  const path = join(dir, 'sd15.ckpt');
  const fd = openSync(path, 'r');
  const head = Buffer.alloc(256);
  readSync(fd, head, 0, 256, 0);
  closeSync(fd);
  assert.equal(head.readUInt32LE(0), 0x04034b50, 'a zip local file header');
  assert.equal(head.readUInt16LE(8), 0, 'stored, not deflated');
  const nameLength = head.readUInt16LE(26);
  const extraLength = head.readUInt16LE(28);
  assert.equal(head.subarray(30, 30 + nameLength).toString('latin1'), 'sd15/data.pkl');
  assert.deepEqual([...head.subarray(30 + nameLength + extraLength, 32 + nameLength + extraLength)], [0x80, 0x02]);
  assert.throws(() => SafetensorsFile.open(path), SafetensorsError);
});

test('reference/index.json: every tensor file exists with the size its shape says, every call names known tensors', () => {
  const ref = readCheckpointReference(dir);
  assert.equal(ref.scale, 'ci');
  for (const [name, t] of Object.entries(ref.tensors)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.file) assert.equal(statSync(join(dir, 'reference', t.file)).size, 4 * n, name);
    else assert.equal(t.values?.length, n, name);
  }
  for (const call of ref.calls) {
    assert.ok(existsSync(join(dir, call.checkpoint)), call.name);
    for (const t of [...Object.values(call.inputs), ...Object.values(call.outputs)]) assert.ok(ref.tensors[t.replace(/\[.*\]$/, '')], `${call.name}: ${t}`);
  }
  const names = ref.calls.map((c) => c.name);
  for (const want of ['sd15.text', 'sd15.unet', 'sd15.vae_decode', 'sd15.vae_encode', 'sd21v.text', 'sd21v.unet', 'sd15-inpaint.unet', 'vae-ft.vae_decode', 'lora.unet', 'lora-stacked.unet', 'lora.text', 'sd15-small.text', 'sd15-small.unet', 'sd15-small.vae_decode', 'sdxl-small.text_l', 'sdxl-small.text_g', 'sdxl-small.unet', 'sdxl-small.vae_decode', 'sdxl-refiner-small.unet']) {
    assert.ok(names.includes(want), want);
  }
});
