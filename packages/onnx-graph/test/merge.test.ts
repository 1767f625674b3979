// The weighted merge of two models of one architecture (ComfyUI's ModelMergeSimple arithmetic), on the test
// UNet and a copy with other weights: every weight is model1 * ratio + model2 * (1 - ratio) in float32, ratio 1
// and 0 give each model back, embedded and external weights both, and graphs that differ are refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cloneModel, loadModel, mergeProblem, readTensorBytes, saveModel, writeMergedModel, TensorProto_DataType as DT, type ModelProto } from '../src/index.ts';
import { haveModel, run, skipReason, testUNet, unetFeeds } from './helpers.ts';

let work: string;
let first: string;
let second: string;
let secondExternal: string;

/** The test UNet with every float weight of 16 values or more changed (seeded), the small constants kept. */
function otherWeights(model: ModelProto, baseDir: string): ModelProto {
  const out = cloneModel(model);
  let seed = 12345;
  const next = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5);
  for (const t of out.graph!.initializer) {
    if (t.dataType !== DT.FLOAT) continue;
    const bytes = readTensorBytes(t, baseDir);
    if (bytes.byteLength < 64) continue;
    const values = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(values.buffer).set(bytes);
    for (let i = 0; i < values.length; i++) values[i] = values[i]! * (1 + 0.2 * next()) + 0.01 * next();
    t.rawData = new Uint8Array(values.buffer);
    t.floatData = [];
  }
  return out;
}

before(() => {
  if (!haveModel) return;
  work = mkdtempSync(join(tmpdir(), 'gategraph-merge-'));
  const file = testUNet();
  first = file.path;
  second = join(work, 'second.onnx');
  saveModel(otherWeights(file.proto, file.baseDir), second, { baseDir: file.baseDir });
  // The same weights in an external data file, as SD-size models keep them.
  secondExternal = join(work, 'external', 'model.onnx');
  saveModel(loadModel(second).proto, secondExternal, { externalize: { location: 'model.onnx_data' } });
});
after(() => work && rmSync(work, { recursive: true, force: true }));

function floats(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

test('every weight is ComfyUI\'s float32 model1 * ratio + model2 * (1 - ratio); identical constants are copied', { skip: skipReason }, () => {
  for (const source of [second, secondExternal]) {
    const out = join(work, `merged-${source === second ? 'embedded' : 'external'}.onnx`);
    const report = writeMergedModel(first, source, 0.3, out);
    assert.ok(report.merged > 100 && report.identical > 0, JSON.stringify(report));
    const merged = loadModel(out);
    const a = loadModel(first);
    const b = loadModel(source);
    const byName = (m: typeof a) => new Map(m.proto.graph!.initializer.map((t) => [t.name, t]));
    const [ta, tb] = [byName(a), byName(b)];
    let checked = 0;
    for (const t of merged.proto.graph!.initializer) {
      if (t.dataType !== DT.FLOAT) continue;
      const x = floats(readTensorBytes(ta.get(t.name)!, a.baseDir));
      const y = floats(readTensorBytes(tb.get(t.name)!, b.baseDir));
      const z = floats(readTensorBytes(t, merged.baseDir));
      for (let i = 0; i < z.length; i += 97) {
        // ComfyUI: weight *= ratio; weight += (1 - ratio) * model2's weight, in float32.
        const expected = Math.fround(Math.fround(x[i]! * Math.fround(0.3)) + Math.fround(Math.fround(0.7) * y[i]!));
        if (x[i] === y[i]) assert.equal(z[i], x[i]);
        else assert.equal(z[i], expected, `${t.name}[${i}]`);
        checked++;
      }
    }
    assert.ok(checked > 1000);
  }
});

test('ratio 1 gives model1\'s outputs and ratio 0 model2\'s; 0.5 lies between', { skip: skipReason }, async () => {
  const feeds = unetFeeds(1, 3);
  const outputs: Record<string, Float32Array> = {};
  for (const [name, path] of [['first', first], ['second', second]] as const) outputs[name] = (await run(path, feeds)).out_sample!.data as Float32Array;
  for (const ratio of [1, 0, 0.5]) {
    const out = join(work, `ratio-${ratio}.onnx`);
    writeMergedModel(first, secondExternal, ratio, out);
    outputs[ratio] = (await run(out, feeds)).out_sample!.data as Float32Array;
  }
  const distance = (p: Float32Array, q: Float32Array) => Math.sqrt(p.reduce((s, v, i) => s + (v - q[i]!) ** 2, 0));
  assert.deepEqual(outputs[1], outputs.first);
  assert.ok(distance(outputs[0]!, outputs.second!) < 1e-4, `ratio 0: ${distance(outputs[0]!, outputs.second!)}`);
  const whole = distance(outputs.first!, outputs.second!);
  assert.ok(whole > 1e-2);
  assert.ok(distance(outputs[0.5]!, outputs.first!) < whole && distance(outputs[0.5]!, outputs.second!) < whole, 'the average lies between the two');
});

test('graphs that are not one architecture are refused, naming the difference', { skip: skipReason }, () => {
  assert.equal(mergeProblem(first, second), undefined);
  const file = testUNet();
  const renamed = cloneModel(file.proto);
  const conv = renamed.graph!.node.find((n) => n.opType === 'Conv')!;
  conv.opType = 'ConvTranspose';
  const other = join(work, 'other-graph.onnx');
  saveModel(renamed, other);
  assert.match(mergeProblem(first, other) ?? '', /node \d+ differs/);
  assert.throws(() => writeMergedModel(first, other, 0.5, join(work, 'never.onnx')), (e: Error & { code?: string }) => e.code === 'incompatible_models');
  const smaller = cloneModel(file.proto);
  smaller.graph!.initializer.pop();
  const fewer = join(work, 'fewer.onnx');
  saveModel(smaller, fewer);
  assert.match(mergeProblem(first, fewer) ?? '', /weight tensors/);
});
