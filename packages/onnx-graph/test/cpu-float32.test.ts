// fp16 / bf16 exports become float32 models (weights streamed into a data file of their own), and random
// sampling inside a graph becomes zeros: what onnxruntime's CPU provider then computes is checked against the
// arithmetic done here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import {
  cpuFloat32ModelPath,
  cpuFloat32Needs,
  encodeModel,
  makeValueInfo,
  newGraph,
  newModel,
  newNode,
  newTensor,
  readDeclaredIo,
  TensorProto_DataLocation,
  TensorProto_DataType,
} from '../src/index.ts';
import { AttributeProto_AttributeType, AttributeProtoSchema, create, StringStringEntryProtoSchema } from '../src/proto.ts';

const { FLOAT16, BFLOAT16 } = TensorProto_DataType;

/** float16 bits of a number that float16 represents exactly (normal range). */
function halfBits(x: number): number {
  if (x === 0) return 0;
  const f = new Float32Array([x]);
  const bits = new Uint32Array(f.buffer)[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = ((bits >>> 23) & 0xff) - 127 + 15;
  return sign | (exponent << 10) | ((bits >>> 13) & 0x3ff);
}
const halves = (values: number[]) => new Uint8Array(Uint16Array.from(values, halfBits).buffer);
const bfloats = (values: number[]) => new Uint8Array(Uint16Array.from(values, (v) => new Uint32Array(new Float32Array([v]).buffer)[0]! >>> 16).buffer);

const W = [1, 0.5, -2, 0.25, 3, 1.5, -1, 2, 0.75]; // [3, 3]
const B = [0.5, -0.25, 4]; // bfloat16 [3]

/**
 * out = MatMul(x, W) + 0.5 + Cast(B) + RandomNormalLike(...) in float16, with W in an external data file as
 * diffusers' converter writes it (weights.pb), B a bfloat16 initializer and 0.5 a float16 Constant node.
 */
function fp16Model(dir: string): string {
  writeFileSync(join(dir, 'weights.pb'), halves(W));
  const weight = newTensor({ name: 'W', dims: [3n, 3n], dataType: FLOAT16, dataLocation: TensorProto_DataLocation.EXTERNAL });
  weight.externalData = [
    create(StringStringEntryProtoSchema, { key: 'location', value: 'weights.pb' }),
    create(StringStringEntryProtoSchema, { key: 'offset', value: '0' }),
    create(StringStringEntryProtoSchema, { key: 'length', value: String(W.length * 2) }),
  ];
  const bias = newTensor({ name: 'B', dims: [3n], dataType: BFLOAT16, rawData: bfloats(B) });
  const half = create(AttributeProtoSchema, { name: 'value', type: AttributeProto_AttributeType.TENSOR, t: newTensor({ dims: [1n], dataType: FLOAT16, rawData: halves([0.5]) }) });
  const toHalf = create(AttributeProtoSchema, { name: 'to', type: AttributeProto_AttributeType.INT, i: BigInt(FLOAT16) });
  const graph = newGraph({
    name: 'fp16',
    input: [makeValueInfo('x', FLOAT16, ['batch', 3])],
    output: [makeValueInfo('out', FLOAT16, ['batch', 3])],
    initializer: [weight, bias],
    node: [
      newNode({ name: 'matmul', opType: 'MatMul', input: ['x', 'W'], output: ['m'] }),
      newNode({ name: 'half', opType: 'Constant', output: ['c'], attribute: [half] }),
      newNode({ name: 'add_c', opType: 'Add', input: ['m', 'c'], output: ['a'] }),
      newNode({ name: 'cast_b', opType: 'Cast', input: ['B'], output: ['b'], attribute: [toHalf] }),
      newNode({ name: 'add_b', opType: 'Add', input: ['a', 'b'], output: ['mean'] }),
      newNode({ name: 'noise', opType: 'RandomNormalLike', input: ['mean'], output: ['eps'] }),
      newNode({ name: 'sample', opType: 'Add', input: ['mean', 'eps'], output: ['out'] }),
    ],
  });
  const path = join(dir, 'model.onnx');
  writeFileSync(path, encodeModel(newModel(graph, 14)));
  return path;
}

test('an fp16 model with in-graph sampling runs as float32 on the CPU, computing the mean exactly', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gg-fp16-'));
  const source = fp16Model(dir);
  assert.deepEqual(cpuFloat32Needs(readDeclaredIo(source)), { upcast: true, sampling: true });

  const entry = await cpuFloat32ModelPath(source);
  assert.equal(entry.fromCache, false);
  assert.deepEqual(entry.report.samplingReplaced, ['noise']);
  assert.equal(entry.report.upcastInitializers, 2, 'W (external float16) and B (bfloat16)');
  assert.ok(entry.report.upcastNodes >= 2, 'the Constant and the Cast');
  assert.ok(existsSync(`${entry.path}_data`), 'weights in a data file next to the converted model');

  const io = readDeclaredIo(entry.path);
  assert.deepEqual(io.inputs.map((i) => i.type), ['float32']);
  assert.deepEqual(io.outputs.map((o) => o.type), ['float32']);
  assert.deepEqual(io.initializerTypes, { float32: 2 });
  assert.ok(!io.operators.includes('ai.onnx::RandomNormalLike'));
  assert.deepEqual(cpuFloat32Needs(readDeclaredIo(entry.path)), { upcast: false, sampling: false });

  const x = [1, 2, -1, 0.5, 0, 4];
  const session = await ort.InferenceSession.create(entry.path);
  const result = await session.run({ x: new ort.Tensor('float32', Float32Array.from(x), [2, 3]) });
  const out = result.out!.data as Float32Array;
  for (let r = 0; r < 2; r++) {
    for (let c = 0; c < 3; c++) {
      let expected = 0.5 + B[c]!;
      for (let k = 0; k < 3; k++) expected += x[r * 3 + k]! * W[k * 3 + c]!;
      assert.ok(Math.abs(out[r * 3 + c]! - expected) < 1e-6, `out[${r},${c}] = ${out[r * 3 + c]}, expected ${expected}`);
    }
  }
  // Twice the same: no randomness left.
  const again = await session.run({ x: new ort.Tensor('float32', Float32Array.from(x), [2, 3]) });
  assert.deepEqual([...(again.out!.data as Float32Array)], [...out]);
  await session.release();

  const second = await cpuFloat32ModelPath(source);
  assert.equal(second.fromCache, true);
  assert.equal(second.path, entry.path);
});
