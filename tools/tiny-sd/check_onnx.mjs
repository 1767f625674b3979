// Runs the exported models/tiny-sd ONNX files on onnxruntime-node and compares them with the PyTorch outputs that
// export.py stored in runs/export_check.json. Usage: node tools/tiny-sd/check_onnx.mjs [model dir]
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const here = fileURLToPath(new URL('.', import.meta.url));
const require = createRequire(join(here, '../../packages/diffusion/package.json'));
const ort = require('onnxruntime-node');
const dir = process.argv[2] ?? join(here, '../../models/tiny-sd');
const ref = JSON.parse(readFileSync(join(here, 'runs/export_check.json'), 'utf8'));
const opts = { intraOpNumThreads: 2 };
const maxDiff = (a, b) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
let ok = true;
const report = (name, d, tol = 1e-3) => {
  console.log(`${name.padEnd(34)} max |onnx - torch| = ${d.toExponential(2)} ${d < tol ? 'ok' : 'MISMATCH'}`);
  if (!(d < tol)) ok = false;
};

const te = await ort.InferenceSession.create(join(dir, 'text_encoder/model.onnx'), opts);
const ids = BigInt64Array.from(ref.text_encoder.input_ids.map(BigInt));
const teOut = await te.run({ input_ids: new ort.Tensor('int64', ids, [1, 77]) });
report('text_encoder last_hidden_state', maxDiff(Array.from(teOut.last_hidden_state.data), ref.text_encoder.last_hidden_state));
report('text_encoder pooler_output', maxDiff(Array.from(teOut.pooler_output.data), ref.text_encoder.pooler_output));

const unet = await ort.InferenceSession.create(join(dir, 'unet/model.onnx'), opts);
const D = teOut.last_hidden_state.dims[2];
const uOut = await unet.run({
  sample: new ort.Tensor('float32', Float32Array.from(ref.unet.sample), [1, 4, 16, 16]),
  timestep: new ort.Tensor('float32', Float32Array.from(ref.unet.timestep), [1]),
  encoder_hidden_states: new ort.Tensor('float32', Float32Array.from(ref.text_encoder.last_hidden_state), [1, 77, D]),
});
report('unet out_sample', maxDiff(Array.from(uOut.out_sample.data), ref.unet.out_sample));
// batch 2 (CFG) works too
const b2 = await unet.run({
  sample: new ort.Tensor('float32', Float32Array.from([...ref.unet.sample, ...ref.unet.sample]), [2, 4, 16, 16]),
  timestep: new ort.Tensor('float32', Float32Array.from([321, 321]), [2]),
  encoder_hidden_states: new ort.Tensor('float32', Float32Array.from([...ref.text_encoder.last_hidden_state, ...ref.text_encoder.last_hidden_state]), [2, 77, D]),
});
report('unet batch 2 (second item)', maxDiff(Array.from(b2.out_sample.data).slice(1024), ref.unet.out_sample));
const t0 = performance.now();
for (let i = 0; i < 10; i++) await unet.run({
  sample: new ort.Tensor('float32', Float32Array.from(ref.unet.sample), [1, 4, 16, 16]),
  timestep: new ort.Tensor('float32', Float32Array.from(ref.unet.timestep), [1]),
  encoder_hidden_states: new ort.Tensor('float32', Float32Array.from(ref.text_encoder.last_hidden_state), [1, 77, D]),
});
console.log(`unet batch 1: ${((performance.now() - t0) / 10).toFixed(1)} ms per call`);

const enc = await ort.InferenceSession.create(join(dir, 'vae_encoder/model.onnx'), opts);
const eOut = await enc.run({ sample: new ort.Tensor('float32', Float32Array.from(ref.vae_encoder.sample), [1, 3, 64, 64]) });
report('vae_encoder latent_sample', maxDiff(Array.from(eOut.latent_sample.data), ref.vae_encoder.latent_sample));
const dec = await ort.InferenceSession.create(join(dir, 'vae_decoder/model.onnx'), opts);
const dOut = await dec.run({ latent_sample: new ort.Tensor('float32', Float32Array.from(ref.vae_decoder.latent_sample), [1, 4, 16, 16]) });
report('vae_decoder sample', maxDiff(Array.from(dOut.sample.data), ref.vae_decoder.sample));
console.log('inputs:', unet.inputNames.join(', '), '->', unet.outputNames.join(', '));
process.exit(ok ? 0 : 1);
