// FreeU and FreeU_V2 by graph surgery, checked against PyTorch: tools/freeu-reference writes a random-weight
// SD-1.x-layout UNet with both of FreeU's levels (widths 8, 16, 32, 32), ComfyUI's output_block_patch and
// Fourier_filter transcribed around the same weights, and the UNet's outputs plain, with FreeU and with FreeU_V2.
// The checkpoint is built by this package's single-file builder, patched here, and run by onnxruntime.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { applyFreeU, encodeModel, fourierFilterModel, loadModel, saveModel, unetFromCheckpoint, upLayers, discoverUNet, type FreeUSpec } from '../src/index.ts';
import { generatedOnce } from '../../diffusion/test/fixtures/generated-once.ts';

interface Stored {
  file: string;
  shape: number[];
}
interface References {
  model_channels: number;
  settings: Record<'freeu' | 'freeu_v2', FreeUSpec>;
  inputs: Record<'sample' | 'timestep' | 'encoder_hidden_states', Stored>;
  outputs: Record<'plain' | 'freeu' | 'freeu_v2', Stored>;
  filter: Array<{ scale: number; input: Stored; output: Stored }>;
}

let refs: string;
let index: References;
let work: string;
let unetPath: string;

before(async () => {
  refs = generatedOnce({
    name: 'freeu-refs',
    script: 'tools/freeu-reference/make_freeu_refs.py',
    sources: ['tools/test-models/arch.py', 'tools/tiny-sd/modules.py', 'tools/test-checkpoints/ldm_layout.py', 'tools/test-checkpoints/safetensors_io.py'],
    imports: 'torch',
    packages: 'python3-torch',
    users: 'The FreeU references',
    waitMinutes: 5,
  });
  index = JSON.parse(readFileSync(join(refs, 'index.json'), 'utf8')) as References;
  work = mkdtempSync(join(tmpdir(), 'gategraph-freeu-'));
  // CI widths: 4 GroupNorm groups and 2 heads per block, which the tensors' shapes cannot tell.
  unetPath = (await unetFromCheckpoint(join(refs, 'unet.safetensors'), { cacheDir: work, overrides: { heads: 2, groups: 4 } })).modelPath;
});
after(() => rmSync(work, { recursive: true, force: true }));

function values(stored: Stored): ort.Tensor {
  const bytes = readFileSync(join(refs, stored.file));
  return new ort.Tensor('float32', new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)), stored.shape);
}

/** max |a - b| relative to max |b|. */
function relativeError(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let abs = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    abs = Math.max(abs, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return abs / scale;
}

async function runUnet(path: string): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1, logSeverityLevel: 3 });
  try {
    const out = await session.run({ sample: values(index.inputs.sample), timestep: values(index.inputs.timestep), encoder_hidden_states: values(index.inputs.encoder_hidden_states) });
    return out.out_sample!.data as Float32Array;
  } finally {
    await session.release();
  }
}

function patched(spec: FreeUSpec, name: string) {
  const file = loadModel(unetPath);
  const { model, report } = applyFreeU(file.proto, spec, { baseDir: file.baseDir });
  const path = join(work, `${name}.onnx`);
  saveModel(model, path, { baseDir: file.baseDir });
  return { path, report, model };
}

test('the plain built UNet equals PyTorch (the harness)', async () => {
  const e = relativeError(await runUnet(unetPath), values(index.outputs.plain).data as Float32Array);
  assert.ok(e < 1e-4, `relative error ${e}`);
});

for (const name of ['freeu', 'freeu_v2'] as const) {
  test(`${name === 'freeu' ? 'FreeU' : 'FreeU_V2'} (ComfyUI's defaults) equals ComfyUI's patch in PyTorch on the same weights`, async (t) => {
    const spec = index.settings[name];
    const { path, report } = patched(spec, name);
    assert.equal(report.modelChannels, index.model_channels);
    // ComfyUI's rule: every up layer whose hidden state has 4 x or 2 x model_channels channels (as SD-1.5's 7 + 3).
    assert.deepEqual(report.sites.map((s) => [s.layer, s.channels]), [[0, 32], [1, 32], [2, 32], [3, 32], [4, 32], [5, 32], [6, 32], [7, 16], [8, 16], [9, 16]]);
    assert.deepEqual(new Set(report.sites.map((s) => `${s.channels}:${s.b}:${s.s}`)), new Set([`32:${spec.b1}:${spec.s1}`, `16:${spec.b2}:${spec.s2}`]));
    const out = await runUnet(path);
    const e = relativeError(out, values(index.outputs[name]).data as Float32Array);
    t.diagnostic(`relative error ${e.toExponential(2)}; FreeU's own effect: ${relativeError(values(index.outputs.plain).data as Float32Array, values(index.outputs[name]).data as Float32Array).toExponential(2)}`);
    assert.ok(e < 1e-4, `relative error ${e}`);
  });
}

test('the Fourier filter equals torch.fft\'s at sizes with a side of 1 and odd sides', async () => {
  for (const f of index.filter) {
    const session = await ort.InferenceSession.create(encodeModel(fourierFilterModel(f.scale)), { logSeverityLevel: 3 });
    try {
      const out = (await session.run({ x: values(f.input) })).y!.data as Float32Array;
      const expected = values(f.output).data as Float32Array;
      const e = Math.max(...Array.from(out, (v, i) => Math.abs(v - expected[i]!)));
      assert.ok(e < 1e-5, `[${f.input.shape.join(', ')}]: max error ${e}`);
    } finally {
      await session.release();
    }
  }
});

test('factors of 1 leave the graph as it was; the patched graph keeps its up layers for DeepCache, and FreeU applies twice', () => {
  const file = loadModel(unetPath);
  const same = applyFreeU(file.proto, { version: 2, b1: 1, b2: 1, s1: 1, s2: 1 }, { baseDir: file.baseDir });
  assert.equal(same.model.graph!.node.length, file.proto.graph!.node.length);
  const { model } = patched(index.settings.freeu_v2, 'layers');
  const before = upLayers(discoverUNet(file.proto));
  const after = upLayers(discoverUNet(model));
  assert.deepEqual(after.map((l) => [l.resnet, l.concat, l.skip === before[l.order]!.skip]), before.map((l) => [l.resnet, l.concat, l.order > 9]));
  const twice = applyFreeU(model, index.settings.freeu, { baseDir: file.baseDir }).model;
  assert.equal(new Set(twice.graph!.node.map((n) => n.name)).size, twice.graph!.node.length, 'node names stay unique');
  assert.equal(new Set(twice.graph!.initializer.map((n) => n.name)).size, twice.graph!.initializer.length, 'initializer names stay unique');
});
