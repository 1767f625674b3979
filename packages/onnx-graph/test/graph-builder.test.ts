// The graph-building toolkit (src/build/): torch's node naming, constants, weights taken from a safetensors file
// with transforms (row slices of a fused tensor, transposes, reshapes; F16/BF16 widened), written and run by
// onnxruntime.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { DT, GraphBuilder, WeightSource, WeightView, attention, linear, openSafetensors, toFloat32, writeBuiltModel, CheckpointError } from '../src/build/index.ts';

/** A safetensors file of float32 tensors (dtype F32, or F16 when asked: values must be exact halves). */
function writeSafetensors(path: string, tensors: Record<string, { shape: number[]; values: number[]; dtype?: 'F32' | 'F16' }>): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = t.dtype === 'F16' ? new Uint8Array(Uint16Array.from(t.values, toHalf).buffer) : new Uint8Array(Float32Array.from(t.values).buffer);
    header[name] = { dtype: t.dtype ?? 'F32', shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  // An odd-length header, so tensor data is not aligned in the file (real files do not promise it either).
  const json = new TextEncoder().encode(`${JSON.stringify(header)} `);
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  writeFileSync(path, Buffer.concat([len, json, ...chunks]));
}

/** Exact for the small integers and halves used here. */
function toHalf(v: number): number {
  if (v === 0) return 0;
  const sign = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  return sign | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
}

test('nodes are named as torch exports them: scope path, _N per repeated op type, _N per re-entered scope', () => {
  const b = new GraphBuilder();
  const x = b.input('x', DT.float, ['batch', 4]);
  const y = b.scope('down_blocks.0', () =>
    b.scope('resnets.0', () => {
      const a = b.scope('nonlinearity', () => b.op('Sigmoid', [x]));
      const c = b.scope('nonlinearity', () => b.op('Sigmoid', [a]));
      return b.op('Add', [b.op('Add', [a, c]), x]);
    }),
  );
  b.output(y, 'out', DT.float);
  const { model } = b.build();
  const names = model.graph!.node.map((n) => n.name);
  assert.deepEqual(names, [
    '/down_blocks.0/resnets.0/nonlinearity/Sigmoid',
    '/down_blocks.0/resnets.0/nonlinearity_1/Sigmoid',
    '/down_blocks.0/resnets.0/Add',
    '/down_blocks.0/resnets.0/Add_1',
  ]);
  assert.equal(model.graph!.node[0]!.output[0], '/down_blocks.0/resnets.0/nonlinearity/Sigmoid_output_0');
  assert.equal(model.graph!.node[3]!.output[0], 'out', 'the output is the producer renamed, no Identity');
  assert.equal(b.constant([1, 2]), b.constant([1, 2]), 'equal constants are one initializer');
});

test('weights: fused rows, transposes and reshapes of F32 and F16 tensors; a missing key names it', async () => {
  const folder = mkdtempSync(join(tmpdir(), 'gategraph-builder-'));
  try {
    const D = 4;
    const H = 2;
    // OpenCLIP-style fused projection: rows 0..3 q, 4..7 k, 8..11 v.
    const inProj = Array.from({ length: 3 * D * D }, (_, i) => ((i * 7) % 11) / 8 - 0.5);
    const inBias = Array.from({ length: 3 * D }, (_, i) => i / 16);
    const outW = Array.from({ length: D * D }, (_, i) => ((i * 5) % 9) / 8 - 0.5);
    writeSafetensors(join(folder, 'm.safetensors'), {
      'attn.in_proj_weight': { shape: [3 * D, D], values: inProj, dtype: 'F16' },
      'attn.in_proj_bias': { shape: [3 * D], values: inBias },
      'attn.out_proj.weight': { shape: [D, D], values: outW, dtype: 'F16' },
      'attn.out_proj.bias': { shape: [D], values: [0.5, 0, -0.5, 0.25] },
      'head.weight': { shape: [2, D], values: [1, 0, 0, 0, 0, 0, 1, 0] },
      'head.bias': { shape: [2], values: [0, 1] },
      unused: { shape: [1], values: [3] },
    });
    const source = new WeightSource(openSafetensors(join(folder, 'm.safetensors')));
    const w = new WeightView(source, '');
    const b = new GraphBuilder();
    const x = b.input('x', DT.float, ['batch', 'tokens', D]);
    const a = attention({ b, w }, x, undefined, 'self_attn', 'attn', {
      heads: H,
      queryDim: D,
      fused: { weight: 'in_proj_weight', bias: 'in_proj_bias' },
      names: { q: '', k: '', v: '', out: 'out_proj' },
      scopes: { q: 'q_proj', k: 'k_proj', v: 'v_proj', out: 'out_proj' },
    });
    b.output(linear({ b, w }, a, 'head', 'head'), 'y', DT.float);
    const built = b.build();
    assert.deepEqual([...source.taken()].sort(), ['attn.in_proj_bias', 'attn.in_proj_weight', 'attn.out_proj.bias', 'attn.out_proj.weight', 'head.bias', 'head.weight']);
    assert.ok(built.model.graph!.node.some((n) => n.name === '/self_attn/k_proj/MatMul'));
    const written = writeBuiltModel(built, source, join(folder, 'out', 'model.onnx'));
    assert.equal(written.convertedElements, 3 * D * D + D * D);

    // Reference in plain JS: softmax(q kᵀ / sqrt(d)) v per head, out_proj, head.
    const tokens = 3;
    const input = Float32Array.from({ length: tokens * D }, (_, i) => Math.sin(i + 1));
    const lin = (v: Float32Array, W: number[], bias: number[], rowStart: number, n: number) =>
      Float32Array.from({ length: (v.length / D) * n }, (_, k) => {
        const t = Math.floor(k / n);
        const o = k % n;
        let s = bias[rowStart + o]!;
        for (let i = 0; i < D; i++) s += v[t * D + i]! * W[(rowStart + o) * D + i]!;
        return s;
      });
    const q = lin(input, inProj, inBias, 0, D);
    const k = lin(input, inProj, inBias, D, D);
    const v = lin(input, inProj, inBias, 2 * D, D);
    const d = D / H;
    const att = new Float32Array(tokens * D);
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < tokens; i++) {
        const s = Array.from({ length: tokens }, (_, j) => {
          let dot = 0;
          for (let c = 0; c < d; c++) dot += q[i * D + h * d + c]! * k[j * D + h * d + c]!;
          return dot / Math.sqrt(d);
        });
        const m = Math.max(...s);
        const e = s.map((z) => Math.exp(z - m));
        const sum = e.reduce((p, z) => p + z, 0);
        for (let c = 0; c < d; c++) att[i * D + h * d + c] = e.reduce((p, z, j) => p + (z / sum) * v[j * D + h * d + c]!, 0);
      }
    }
    const projected = lin(att, outW, [0.5, 0, -0.5, 0.25], 0, D);
    const expected = Float32Array.from({ length: tokens * 2 }, (_, i) => projected[Math.floor(i / 2) * D + (i % 2 ? 2 : 0)]! + (i % 2));

    const session = await ort.InferenceSession.create(written.path, { logSeverityLevel: 3 });
    const r = await session.run({ x: new ort.Tensor('float32', input, [1, tokens, D]) });
    await session.release();
    const got = r.y!.data as Float32Array;
    for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(got[i]! - expected[i]!) < 1e-5, `${i}: ${got[i]} vs ${expected[i]}`);

    assert.throws(() => w.take('attn.missing.weight'), (err: unknown) => err instanceof CheckpointError && err.code === 'missing_key' && err.key === 'attn.missing.weight' && err.message.includes('attn.missing.weight'));
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});

test('float conversion: F16 (normal, subnormal, inf), BF16, F64', () => {
  const half = new Uint8Array(Uint16Array.from([0x3c00, 0xc000, 0x0001, 0x7c00, 0x3555]).buffer);
  assert.deepEqual([...toFloat32(half, 'F16')], [1, -2, 2 ** -24, Infinity, Math.fround(0.333251953125)]);
  const bf = new Uint8Array(Uint16Array.from([0x3f80, 0xc040]).buffer);
  assert.deepEqual([...toFloat32(bf, 'BF16')], [1, -3]);
  assert.deepEqual([...toFloat32(new Uint8Array(Float64Array.from([0.5, -4]).buffer), 'F64')], [0.5, -4]);
  assert.throws(() => toFloat32(new Uint8Array(8), 'I64', 'ids'), /ids is I64/);
});
