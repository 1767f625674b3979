// LoRAs patched into single-file builds (onnx-graph's build/lora.ts): on the test checkpoints' kohya LoRA
// (tools/test-checkpoints: 194 UNet modules incl. two 3x3 convs and one without alpha, 72 text modules, F16) the
// UNet built from sd15 with the LoRA at model strength 0.8, and stacked 0.8 + 0.3, equals PyTorch's merged
// modules; strength 0 writes the plain build's bytes; the patched text weights at clip strength -0.5 equal
// PyTorch's merge (kohya_lora.py) of the same tensors; the same LoRA under LDM / diffusers / PEFT names patches the
// same values; SD-2's fused in_proj takes q/k/v LoRAs on its thirds; unmatched modules are reported, other
// adapter kinds and LoRAs of another base model are errors. The built text encoder with the LoRA against the
// `lora.text` references is in single-file-text.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import {
  applyLoras,
  buildLdmUnet,
  CheckpointError,
  openSafetensors,
  resolveLoras,
  toFloat32,
  WeightSource,
  writeBuiltModel,
  type LoraSpec,
  type UnetOverrides,
} from '@gategraph/onnx-graph/build';
import { checkpointReferenceTensor, checkpointReferenceValues, runUnetReferenceCall, readCheckpointReference, testCheckpoints, type CheckpointReference } from './fixtures/test-checkpoints.ts';
import { relativeError } from './fixtures/reference-calls.ts';

const SD1_CI: UnetOverrides = { heads: 2, groups: 4 };
const repo = fileURLToPath(new URL('../../../', import.meta.url));

let dir: string;
let reference: CheckpointReference;
let tmp: string;
let ckpt: string;
let lora: string;
before(() => {
  dir = testCheckpoints();
  reference = readCheckpointReference(dir);
  tmp = mkdtempSync(join(tmpdir(), 'gategraph-lora-'));
  ckpt = join(dir, 'sd15.safetensors');
  lora = join(dir, 'lora-kohya.safetensors');
});
after(() => rmSync(tmp, { recursive: true, force: true }));

const strengths = () => reference.lora as { strength_model: number; strength_clip: number; stacked_strength_model: number; modules: number; unet_modules: number; text_modules: number };

/** sd15's UNet built with `loras` into tmp/<name>/model.onnx. */
function buildUnet(name: string, loras: LoraSpec[]): { path: string; dataPath: string; applied: number } {
  const source = new WeightSource(openSafetensors(ckpt));
  const report = loras.length ? applyLoras(source, loras) : undefined;
  const unet = buildLdmUnet(source, SD1_CI);
  const written = writeBuiltModel(unet.built, source, join(tmp, name, 'model.onnx'));
  return { path: written.path, dataPath: written.dataPath, applied: report?.applied ?? 0 };
}




test('the UNet built with the kohya LoRA (model strength 0.8; stacked 0.8 + 0.3) equals PyTorch\'s merged modules', async (t) => {
  const s = strengths();
  const plain = await runUnetReferenceCall(dir, reference, buildUnet('plain', []).path, 'sd15.unet');
  for (const [call, loras] of [
    ['lora.unet', [{ path: lora, strengthModel: s.strength_model, strengthClip: s.strength_clip }]],
    ['lora-stacked.unet', [{ path: lora, strengthModel: s.strength_model, strengthClip: s.strength_clip }, { path: lora, strengthModel: s.stacked_strength_model, strengthClip: 0 }]],
  ] as const) {
    const built = buildUnet(call, [...loras]);
    assert.equal(built.applied, s.modules + (loras.length - 1) * s.unet_modules, 'every module patched (text ones too, for the text encoder)');
    const { out, expected } = await runUnetReferenceCall(dir, reference, built.path, call);
    const rel = relativeError(out, expected);
    t.diagnostic(`${call}: max |onnx - torch| relative to max |torch| = ${rel.toExponential(2)} (the LoRA moves the output by ${relativeError(plain.out, expected).toExponential(2)})`);
    assert.ok(rel < reference.tolerance.rel, `${call}: relative error ${rel}`);
  }
});

test('strength 0 writes exactly the plain build', () => {
  const plain = buildUnet('zero-plain', []);
  const zero = buildUnet('zero', [{ path: lora, strengthModel: 0, strengthClip: -0.5 }]);
  assert.equal(zero.applied, strengths().text_modules, 'only the text modules are patched');
  assert.ok(readFileSync(zero.dataPath).equals(readFileSync(plain.dataPath)), 'model.onnx_data is byte-identical');
  assert.ok(readFileSync(zero.path).equals(readFileSync(plain.path)), 'model.onnx is byte-identical');
});

/** PyTorch's merge (tools/test-checkpoints/kohya_lora.py's delta) of the text modules: key -> float32 values. */
function torchMergedText(strength: number): Map<string, Float32Array> {
  const out = join(tmp, 'torch-text');
  const script = `
import json, struct, sys, torch
sys.path.insert(0, ${JSON.stringify(join(repo, 'tools/test-checkpoints'))})
import kohya_lora
DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
def load(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    t = {}
    for k, v in h.items():
        if k == "__metadata__" or v["dtype"] not in DT: continue
        s, e = v["data_offsets"]
        t[k] = torch.frombuffer(bytearray(b[8 + n + s:8 + n + e]), dtype=DT[v["dtype"]]).reshape(v["shape"])
    return t
ckpt, lora = load(sys.argv[1]), load(sys.argv[2])
targets = [t for t in json.loads(sys.argv[3]) if t["component"] == "text"]
index = []
with open(sys.argv[5], "wb") as f:
    for t in targets:
        key = "cond_stage_model.transformer." + t["module"] + ".weight"
        w = ckpt[key].float()
        scale, diff = kohya_lora.delta(lora, t["key"], w.shape)
        merged = w + (float(sys.argv[4]) * scale) * diff
        f.write(merged.contiguous().numpy().astype("<f4").tobytes())
        index.append([key, merged.numel()])
print(json.dumps(index))
`;
  const run = spawnSync('/usr/bin/python3', ['-c', script, ckpt, lora, JSON.stringify((reference.lora as { targets: unknown[] }).targets), String(strength), out], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const index = JSON.parse(run.stdout) as Array<[string, number]>;
  const bytes = readFileSync(out);
  const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const merged = new Map<string, Float32Array>();
  let at = 0;
  for (const [key, n] of index) {
    merged.set(key, all.subarray(at, at + n));
    at += n;
  }
  return merged;
}

test('the text encoder weights patched at clip strength -0.5 equal PyTorch\'s merge of the same LoRA', (t) => {
  const s = strengths();
  const expected = torchMergedText(s.strength_clip);
  assert.equal(expected.size, s.text_modules);
  const source = new WeightSource(openSafetensors(ckpt));
  const report = applyLoras(source, [{ path: lora, strengthModel: s.strength_model, strengthClip: s.strength_clip }]);
  assert.deepEqual(report.files.map((f) => [f.modules, f.unet, f.text, f.unmatched.length]), [[s.modules, s.unet_modules, s.text_modules, 0]]);
  let worst = 0;
  let moved = 0;
  for (const [key, want] of expected) {
    // As the text builder takes them: Linear weights transposed.
    const got = source.values(source.take(key, { transpose: true }));
    const [rows, cols] = source.shape(key) as [number, number];
    const plain = toFloat32(source.reader.readBytes(key), 'F32');
    const untransposed = new Float32Array(rows * cols);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) untransposed[i * cols + j] = got[j * rows + i]!;
    worst = Math.max(worst, relativeError(untransposed, want));
    moved = Math.max(moved, relativeError(plain, want));
  }
  t.diagnostic(`72 text weights: max relative difference to torch ${worst.toExponential(2)} (the LoRA moves them by up to ${moved.toExponential(2)})`);
  assert.ok(worst < 1e-6, `relative error ${worst}`);
  assert.ok(moved > 1e-3);
});

// ------------------------------------------------------------------------------------------ other names, errors

interface Entry {
  name: string;
  dtype: string;
  shape: readonly number[];
  bytes: Uint8Array;
}

function writeSafetensors(path: string, entries: Entry[]): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.byteLength] };
    offset += e.bytes.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const fd = openSync(path, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeSync(fd, len);
    writeSync(fd, Buffer.from(json));
    for (const e of entries) writeSync(fd, e.bytes);
  } finally {
    closeSync(fd);
  }
}

const f32 = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer);

/** The kohya file's tensors, each module renamed by `rename(module, targetKey)` and its role ending by `ending`. */
function renamedLora(path: string, rename: (module: string, key: string, i: number) => { module: string; up: string; down: string } | undefined): void {
  const reader = openSafetensors(lora);
  const { patches } = resolveLoras([{ path: lora, strengthModel: 1, strengthClip: 1 }], openSafetensors(ckpt));
  const targetOf = new Map<string, string>();
  for (const [key, list] of patches) for (const p of list) targetOf.set(p.module, key);
  const entries: Entry[] = [];
  let i = 0;
  for (const [module, key] of targetOf) {
    const to = rename(module, key, i++) ?? { module, up: '.lora_up.weight', down: '.lora_down.weight' };
    for (const [end, role] of [[to.up, 'lora_up'], [to.down, 'lora_down']] as const) {
      const info = reader.tensors().find((t) => t.name === `${module}.${role}.weight`)!;
      entries.push({ name: `${to.module}${end}`, dtype: info.dtype, shape: info.shape, bytes: reader.readBytes(info.name) });
    }
    const alpha = reader.tensors().find((t) => t.name === `${module}.alpha`);
    if (alpha) entries.push({ name: `${to.module}.alpha`, dtype: alpha.dtype, shape: alpha.shape, bytes: reader.readBytes(alpha.name) });
  }
  writeSafetensors(path, entries);
}

test('the same LoRA under LDM-style kohya, diffusers and PEFT names patches the same values', () => {
  const styles: Array<(module: string, key: string) => { module: string; up: string; down: string } | undefined> = [
    // kohya on LDM names: lora_unet_input_blocks_1_1_proj_in
    (_m, key) => (key.startsWith('model.diffusion_model.') ? { module: `lora_unet_${key.slice(22, -7).replace(/\./g, '_')}`, up: '.lora_up.weight', down: '.lora_down.weight' } : undefined),
    // PEFT: unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight
    (m) => (m.startsWith('lora_unet_') ? { module: `unet.${diffusersOf(m)}`, up: '.lora_B.weight', down: '.lora_A.weight' } : { module: `text_encoder.${transformersOf(m)}`, up: '.lora_linear_layer.up.weight', down: '.lora_linear_layer.down.weight' }),
    // diffusers' attention processors: ...attn1.processor.to_q_lora.up.weight, to_out_lora
    (m) => {
      const d = diffusersOf(m);
      if (!m.startsWith('lora_unet_') || !/\.to_(q|k|v|out\.0)$/.test(d)) return undefined;
      return { module: d.replace(/\.to_(q|k|v|out)(\.0)?$/, '.processor.to_$1'), up: '_lora.up.weight', down: '_lora.down.weight' };
    },
    // diffusers' lora.up / lora.down
    (m) => (m.startsWith('lora_unet_') ? { module: diffusersOf(m), up: '.lora.up.weight', down: '.lora.down.weight' } : undefined),
  ];
  const modules = new Map((reference.lora as { targets: Array<{ key: string; module: string }> }).targets.map((t) => [t.key, t.module]));
  const diffusersOf = (m: string) => modules.get(m)!;
  const transformersOf = (m: string) => modules.get(m)!;
  const renamed = join(tmp, 'renamed.safetensors');
  renamedLora(renamed, (module, key, i) => styles[i % styles.length]!(module, key));
  const spec = (path: string): LoraSpec[] => [{ path, strengthModel: 0.7, strengthClip: -1.3 }];
  const a = new WeightSource(openSafetensors(ckpt));
  const ra = applyLoras(a, spec(lora));
  const b = new WeightSource(openSafetensors(ckpt));
  const rb = applyLoras(b, spec(renamed));
  assert.deepEqual(rb.unmatched, []);
  assert.equal(rb.applied, ra.applied);
  assert.deepEqual([...b.patches!.keys()].sort(), [...a.patches!.keys()].sort());
  for (const key of a.patches!.keys()) {
    const va = a.values(a.take(key));
    const vb = b.values(b.take(key));
    assert.ok(Buffer.from(va.buffer, va.byteOffset, va.byteLength).equals(Buffer.from(vb.buffer, vb.byteOffset, vb.byteLength)), key);
  }
});

test('modules matching no checkpoint tensor are reported, never dropped silently', () => {
  const path = join(tmp, 'unmatched.safetensors');
  writeSafetensors(path, [
    { name: 'lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight', dtype: 'F32', shape: [8, 1, 1, 1], bytes: f32(Array(8).fill(0.5)) },
    { name: 'lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight', dtype: 'F32', shape: [1, 8, 1, 1], bytes: f32(Array(8).fill(0.25)) },
    { name: 'lora_unet_down_blocks_9_attentions_0_proj_in.lora_up.weight', dtype: 'F32', shape: [8, 1], bytes: f32(Array(8).fill(1)) },
    { name: 'lora_unet_down_blocks_9_attentions_0_proj_in.lora_down.weight', dtype: 'F32', shape: [1, 8], bytes: f32(Array(8).fill(1)) },
    { name: 'lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight', dtype: 'F32', shape: [1, 1], bytes: f32([1]) },
    { name: 'lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight', dtype: 'F32', shape: [1, 1], bytes: f32([1]) },
    { name: 'something_else.weight', dtype: 'F32', shape: [1], bytes: f32([1]) },
  ]);
  const source = new WeightSource(openSafetensors(ckpt));
  const report = applyLoras(source, [{ path, strengthModel: 1, strengthClip: 1 }]);
  assert.equal(report.applied, 1);
  assert.deepEqual(report.files[0]!.unmatched, ['lora_te2_text_model_encoder_layers_0_mlp_fc1', 'lora_unet_down_blocks_9_attentions_0_proj_in', 'something_else.weight']);
  assert.deepEqual(report.unmatched, report.files[0]!.unmatched.map((m) => `unmatched.safetensors: ${m}`));
  // The one that matched: no alpha, so W + 1 * (0.5 * 0.25) everywhere.
  const key = 'model.diffusion_model.input_blocks.1.1.proj_in.weight';
  const patched = source.values(source.take(key));
  const plain = toFloat32(source.reader.readBytes(key), 'F32');
  for (let i = 0; i < plain.length; i++) assert.equal(patched[i], Math.fround(plain[i]! + 0.125));
});

test('SD-2: text LoRAs patch q / k / v thirds of OpenCLIP\'s fused in_proj and its out_proj / c_fc / c_proj', () => {
  const sd21 = join(dir, 'sd21v.safetensors');
  const width = 24;
  const up = Array.from({ length: width * 2 }, (_, i) => ((i * 7) % 11) / 10 - 0.5);
  const down = Array.from({ length: 2 * width }, (_, i) => ((i * 5) % 13) / 13 - 0.4);
  const path = join(tmp, 'sd2-text.safetensors');
  writeSafetensors(path, [
    { name: 'lora_te_text_model_encoder_layers_3_self_attn_k_proj.lora_up.weight', dtype: 'F32', shape: [width, 2], bytes: f32(up) },
    { name: 'lora_te_text_model_encoder_layers_3_self_attn_k_proj.lora_down.weight', dtype: 'F32', shape: [2, width], bytes: f32(down) },
    { name: 'lora_te_text_model_encoder_layers_3_self_attn_k_proj.alpha', dtype: 'F32', shape: [], bytes: f32([1]) },
    { name: 'lora_te_text_model_encoder_layers_3_self_attn_out_proj.lora_up.weight', dtype: 'F32', shape: [width, 2], bytes: f32(up) },
    { name: 'lora_te_text_model_encoder_layers_3_self_attn_out_proj.lora_down.weight', dtype: 'F32', shape: [2, width], bytes: f32(down) },
    { name: 'lora_te_text_model_encoder_layers_3_mlp_fc2.lora_up.weight', dtype: 'F32', shape: [width, 2], bytes: f32(up) },
    { name: 'lora_te_text_model_encoder_layers_3_mlp_fc2.lora_down.weight', dtype: 'F32', shape: [2, 4 * width], bytes: f32([...down, ...down, ...down, ...down]) },
  ]);
  const source = new WeightSource(openSafetensors(sd21));
  const report = applyLoras(source, [{ path, strengthModel: 0, strengthClip: 2 }]);
  assert.deepEqual([report.applied, report.files[0]!.text, report.unmatched], [3, 3, []]);
  const prefix = 'cond_stage_model.model.transformer.resblocks.3.';
  // up @ down, by hand.
  const delta = (cols: number, downs: number[]) => {
    const d = new Float64Array(width * cols);
    for (let o = 0; o < width; o++) for (let j = 0; j < cols; j++) d[o * cols + j] = up[o * 2]! * downs[j]! + up[o * 2 + 1]! * downs[cols + j]!;
    return d;
  };
  const check = (key: string, strengthScale: number, d: Float64Array, rowStart: number, rows?: readonly [number, number]) => {
    const plain = toFloat32(source.reader.readBytes(key), 'F32');
    const cols = source.shape(key)[1]!;
    const got = source.values(source.take(key));
    for (let i = 0; i < plain.length; i++) {
      const row = Math.floor(i / cols);
      const inside = row >= rowStart && row < rowStart + width;
      const want = inside ? plain[i]! + strengthScale * d[(row - rowStart) * cols + (i % cols)]! : plain[i]!;
      assert.ok(Math.abs(got[i]! - want) < 1e-5, `${key}[${i}]: ${got[i]} != ${want}`);
    }
    if (rows) {
      // A builder taking a third gets that third of the patched tensor.
      const third = source.values(source.take(key, { rows }));
      assert.deepEqual(third, got.subarray(rows[0] * cols, rows[1] * cols));
    }
  };
  check(`${prefix}attn.in_proj_weight`, 2 * (1 / 2), delta(width, down), width, [width, 2 * width]);
  const q = source.values(source.take(`${prefix}attn.in_proj_weight`, { rows: [0, width] }));
  assert.deepEqual(q, toFloat32(source.reader.readBytes(`${prefix}attn.in_proj_weight`), 'F32').subarray(0, width * width), 'q rows unchanged');
  check(`${prefix}attn.out_proj.weight`, 2, delta(width, down), 0);
  check(`${prefix}mlp.c_proj.weight`, 2, delta(4 * width, [...down, ...down, ...down, ...down]), 0);
});

test('LoCon Tucker cores (lora_mid) and full differences (diff, diff_b) are applied as ComfyUI applies them', () => {
  const r = 2;
  const vals = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(seed * 13.7 + i * 1.3) * 0.5);
  const [up, down, mid, diffB, diff] = [vals(16 * r, 1), vals(r * 8, 2), vals(r * r * 9, 3), vals(16, 4), vals(16 * 16, 5)];
  const path = join(tmp, 'locon.safetensors');
  const conv = 'lora_unet_down_blocks_1_resnets_0_conv1';
  writeSafetensors(path, [
    { name: `${conv}.lora_up.weight`, dtype: 'F32', shape: [16, r, 1, 1], bytes: f32(up) },
    { name: `${conv}.lora_down.weight`, dtype: 'F32', shape: [r, 8, 1, 1], bytes: f32(down) },
    { name: `${conv}.lora_mid.weight`, dtype: 'F32', shape: [r, r, 3, 3], bytes: f32(mid) },
    { name: `${conv}.alpha`, dtype: 'F32', shape: [], bytes: f32([1]) },
    { name: `${conv}.diff_b`, dtype: 'F32', shape: [16], bytes: f32(diffB) },
    { name: 'lora_unet_mid_block_attentions_0_proj_out.diff', dtype: 'F32', shape: [16, 16, 1, 1], bytes: f32(diff) },
  ]);
  const source = new WeightSource(openSafetensors(ckpt));
  const strength = 0.75;
  const report = applyLoras(source, [{ path, strengthModel: strength, strengthClip: 0 }]);
  assert.deepEqual([report.applied, report.files[0]!.unet, report.unmatched], [3, 2, []]);
  const near = (got: Float32Array, want: (i: number) => number, what: string) => {
    for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i]! - want(i)) < 1e-5, `${what}[${i}]: ${got[i]} != ${want(i)}`);
  };
  const plain = (key: string) => toFloat32(source.reader.readBytes(key), 'F32');
  // comfy/weight_adapter/base.py tucker_weight_from_conv: einsum("m n ..., i m, n j -> i j ...", mid, up, down).
  const w = 'model.diffusion_model.input_blocks.4.0.in_layers.2.weight';
  assert.deepEqual(source.shape(w), [16, 8, 3, 3]);
  const w0 = plain(w);
  near(source.values(source.take(w)), (idx) => {
    const [i, j, yx] = [Math.floor(idx / 72), Math.floor(idx / 9) % 8, idx % 9];
    let d = 0;
    for (let m = 0; m < r; m++) for (let n = 0; n < r; n++) d += mid[(m * r + n) * 9 + yx]! * up[i * r + m]! * down[n * 8 + j]!;
    return w0[idx]! + strength * (1 / r) * d;
  }, w);
  const b = 'model.diffusion_model.input_blocks.4.0.in_layers.2.bias';
  const b0 = plain(b);
  near(source.values(source.take(b)), (i) => b0[i]! + strength * diffB[i]!, b);
  const p = 'model.diffusion_model.middle_block.1.proj_out.weight';
  const p0 = plain(p);
  near(source.values(source.take(p)), (i) => p0[i]! + strength * diff[i]!, p);
});

test('adapters that are not LoRAs are refused by name; a LoRA for another base model is an error', () => {
  const loha = join(tmp, 'loha.safetensors');
  writeSafetensors(loha, [
    { name: 'lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_a', dtype: 'F32', shape: [8, 1], bytes: f32(Array(8).fill(0)) },
    { name: 'lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_b', dtype: 'F32', shape: [1, 8], bytes: f32(Array(8).fill(0)) },
  ]);
  assert.throws(() => resolveLoras([{ path: loha, strengthModel: 1, strengthClip: 1 }], openSafetensors(ckpt)), (err: unknown) => {
    assert.ok(err instanceof CheckpointError);
    assert.equal(err.code, 'unsupported');
    assert.match(err.message, /loha\.safetensors.*lora_unet_down_blocks_0_attentions_0_proj_in.*LoHa/);
    return true;
  });
  const lokr = join(tmp, 'lokr.safetensors');
  writeSafetensors(lokr, [{ name: 'lora_unet_x.lokr_w1', dtype: 'F32', shape: [1], bytes: f32([0]) }]);
  assert.throws(() => resolveLoras([{ path: lokr, strengthModel: 1, strengthClip: 1 }], openSafetensors(ckpt)), /LoKr/);
  // The SD-1 LoRA on SD-2.1: same module names, other widths.
  assert.throws(() => resolveLoras([{ path: lora, strengthModel: 1, strengthClip: 1 }], openSafetensors(join(dir, 'sd21v.safetensors'))), (err: unknown) => {
    assert.ok(err instanceof CheckpointError);
    assert.equal(err.code, 'bad_tensor');
    assert.match(err.message, /another base model/);
    return true;
  });
  writeFileSync(join(tmp, 'done'), '');
});
