// Runs ONNX models on onnxruntime-node (the runtime the engine uses) for check_models.py, which prepares the
// plan (models, raw input files in the graph's dtypes) and compares the raw outputs this writes with the
// PyTorch references. Python has no ONNX runtime here (no onnxruntime wheel, onnx 1.12 has no reference
// evaluator), so this is the numerical check. Usage: node run_onnx.mjs plan.json
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const here = fileURLToPath(new URL('.', import.meta.url));
const require = createRequire(join(here, '../../packages/diffusion/package.json'));
const ort = require('onnxruntime-node');

const ARRAYS = {
  float32: Float32Array, float16: Uint16Array, int64: BigInt64Array, int32: Int32Array, bool: Uint8Array,
};

function readTensor({ dtype, shape, file }) {
  const buf = readFileSync(file);
  const copy = new ArrayBuffer(buf.byteLength); // typed arrays need their element alignment
  new Uint8Array(copy).set(buf);
  return new ort.Tensor(dtype, new ARRAYS[dtype](copy), shape);
}

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const report = [];
for (const run of plan.runs) {
  const entry = { id: run.id, outputs: {} };
  try {
    const session = await ort.InferenceSession.create(run.model, { intraOpNumThreads: 2, interOpNumThreads: 1 });
    if (run.load_only) {
      // what the engine reads to recognise a folder: declared inputs and outputs
      const meta = (list) => list.map((m) => `${m.name}:${m.type}[${(m.shape ?? []).join(',')}]`).join(' ');
      entry.io = { in: meta(session.inputMetadata), out: meta(session.outputMetadata) };
      await session.release();
      report.push(entry);
      continue;
    }
    const feeds = {};
    for (const inp of run.inputs) feeds[inp.name] = readTensor(inp);
    const out = await session.run(feeds, run.outputs);
    for (const name of run.outputs) {
      const t = out[name];
      const file = join(plan.outdir, `${run.id}.${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.bin`);
      writeFileSync(file, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      entry.outputs[name] = { dtype: t.type, shape: t.dims, file };
    }
    await session.release();
  } catch (err) {
    entry.error = String(err && err.message ? err.message : err).split('\n')[0];
  }
  report.push(entry);
}
writeFileSync(join(plan.outdir, 'report.json'), JSON.stringify(report, null, 1));
