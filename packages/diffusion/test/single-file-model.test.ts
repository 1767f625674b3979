// A single-file checkpoint as a model folder (modelFolderFromCheckpoint): built once, component by component, into
// a folder that openModelFolder opens like any export. The test checkpoints (tools/test-checkpoints) hold the same
// weights as the ONNX test exports (tools/test-models), so the assembled folder must answer the exports' PyTorch
// reference calls, and the engine's TGATE / DeepCache exactness tests must pass on it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { fromOrtTensor, modelFolderFromCheckpoint, openModelFolder, SessionPool, type SingleFileModelOptions } from '../src/index.ts';
import { publishedTestModels, readReference, referenceValues } from './fixtures/published-models.ts';
import { componentOf, feedOf, relativeError } from './fixtures/reference-calls.ts';
import { testCheckpoints } from './fixtures/test-checkpoints.ts';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const pool = new SessionPool();
const cacheDir = mkdtempSync(join(tmpdir(), 'gg-single-file-model-'));
let checkpoints: string;
let exports: string;
before(() => {
  checkpoints = testCheckpoints();
  exports = publishedTestModels();
});
after(async () => {
  await pool.freeAll();
  rmSync(cacheDir, { recursive: true, force: true });
});

const SD1 = { text: 'sd1', prediction: 'epsilon' } as const;
const SD2V = { text: 'sd2', prediction: 'v_prediction' } as const;

/** CI widths (tools/test-models/arch.py) record less in their shapes than published checkpoints do; and their own vocabulary. */
function ciOptions(layout: 'sd15-optimum' | 'sd21-v', extra: SingleFileModelOptions = {}): SingleFileModelOptions {
  const sd2 = layout === 'sd21-v';
  return {
    cacheDir,
    tokenizer: join(exports, layout, 'tokenizer'),
    overrides: { unet: sd2 ? { headDim: 8, groups: 4 } : { heads: 2, groups: 4 }, text: { heads: sd2 ? 3 : 4 }, vae: { groups: 4 } },
    ...extra,
  };
}

for (const [file, family, layout] of [
  ['sd15.safetensors', SD1, 'sd15-optimum'],
  ['sd21v.safetensors', SD2V, 'sd21-v'],
] as const) {
  test(`${file}: the assembled folder opens and answers the PyTorch reference calls of the ONNX export of the same weights`, async () => {
    const built = await modelFolderFromCheckpoint(join(checkpoints, file), family, ciOptions(layout));
    const folder = join(exports, layout);
    const reference = readReference(folder);
    const model = await openModelFolder(built.dir, { pool });
    try {
      assert.equal(model.schedulerConfig.prediction_type, family.prediction);
      for (const { text, ids } of reference.tokenizer.cases) assert.deepEqual(model.tokenizer.encode(text).ids, ids, `ids of ${JSON.stringify(text)}`);
      let calls = 0;
      for (const call of reference.calls) {
        if (call.replace_token_embedding || call.random_outputs) continue;
        const component = componentOf(model, call);
        const feeds = Object.fromEntries(Object.entries(call.inputs).map(([input, tensor]) => [input, feedOf(folder, reference, tensor, component, input)]));
        // The export takes a scalar timestep, the built UNet one per batch item (as older exports do): the same value.
        const t = feeds.timestep;
        if (t && t.dims.length === 0 && component.input('timestep')?.shape.length === 1) {
          const batch = feeds.sample!.dims[0]!;
          feeds.timestep = new ort.Tensor(t.type as 'float32', Array.from({ length: batch }, () => (t.data as Float32Array)[0]!) as never, [batch]);
        }
        const out = await component.run(feeds, Object.keys(call.outputs).filter((o) => o !== 'pooler_output' || component.output(o)));
        for (const [output, tensor] of Object.entries(call.outputs)) {
          if (output === 'pooler_output' && !component.output(output)) continue; // SD-1.x / 2.x never use it
          const actual = fromOrtTensor(output, out[output]!);
          const want = referenceValues(folder, reference, tensor);
          assert.deepEqual(actual.shape, want.shape, `${call.name} ${output}: shape`);
          const error = relativeError(actual.data, want.data as Float32Array);
          assert.ok(error <= 1e-5, `${call.name} ${output}: relative error ${error.toExponential(2)}`);
          calls++;
        }
      }
      assert.ok(calls >= 5, `${calls} outputs compared (text encoder twice, UNet, VAE decoder, VAE encoder)`);
    } finally {
      await model.release();
    }
  });
}

test('a second load builds nothing; a VAE file replaces only the VAE, a LoRA only what it patches', async () => {
  const checkpoint = join(checkpoints, 'sd15.safetensors');
  const plain = await modelFolderFromCheckpoint(checkpoint, SD1, ciOptions('sd15-optimum'));
  const again = await modelFolderFromCheckpoint(checkpoint, SD1, ciOptions('sd15-optimum', { onBuild: () => assert.fail('nothing is built twice') }));
  assert.equal(again.dir, plain.dir);
  assert.deepEqual(again.built, []);
  const index = JSON.parse(readFileSync(join(plain.dir, 'model_index.json'), 'utf8')) as { _gategraph: { checkpoint: string; family: unknown } };
  assert.equal(index._gategraph.checkpoint, checkpoint, 'what it was built from is recorded (LoraLoader rebuilds from it)');
  assert.deepEqual(index._gategraph.family, SD1);
  assert.ok(readlinkSync(join(plain.dir, 'unet')).startsWith('..'), 'components are linked, not copied');

  const withVae = await modelFolderFromCheckpoint(checkpoint, SD1, ciOptions('sd15-optimum', { vae: join(checkpoints, 'vae-ft.safetensors') }));
  assert.deepEqual(withVae.built.sort(), ['vae_decoder', 'vae_encoder']);
  assert.equal(withVae.components.unet?.dir, plain.components.unet?.dir);
  assert.notEqual(withVae.components.vae_decoder?.dir, plain.components.vae_decoder?.dir);

  const reports: string[] = [];
  const lora = [{ path: join(checkpoints, 'lora-kohya.safetensors'), strength: 0.8 }];
  const withLora = await modelFolderFromCheckpoint(
    checkpoint,
    SD1,
    ciOptions('sd15-optimum', { unetLoras: lora, onLoraReport: (component, report) => reports.push(`${component}:${report.applied}`) }),
  );
  assert.deepEqual(withLora.built, ['unet'], 'a UNet-only LoRA rebuilds the UNet alone');
  assert.equal(withLora.components.text_encoder?.dir, plain.components.text_encoder?.dir);
  assert.equal(reports.length, 1);
  assert.match(reports[0]!, /^unet:[1-9]\d*$/, 'the report says how many modules were patched');
  const zero = await modelFolderFromCheckpoint(checkpoint, SD1, ciOptions('sd15-optimum', { unetLoras: [{ ...lora[0]!, strength: 0 }] }));
  assert.equal(zero.dir, plain.dir, 'strength 0 is the plain model');
});

test('the TGATE / DeepCache exactness tests pass on an assembled folder', async () => {
  const built = await modelFolderFromCheckpoint(join(checkpoints, 'sd15.safetensors'), SD1, ciOptions('sd15-optimum'));
  assert.ok(existsSync(join(built.dir, 'unet', 'model.onnx')));
  const env: NodeJS.ProcessEnv = { ...process.env, GATEGRAPH_TEST_MODEL: built.dir };
  delete env.NODE_TEST_CONTEXT;
  const run = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-reporter=tap', '--test-name-pattern=If-gated graph|gate past the last step|one pass after the gate|caches the mean', 'packages/diffusion/test/tgate-runner.test.ts'],
    { cwd: repo, encoding: 'utf8', env, maxBuffer: 16 * 1024 * 1024 },
  );
  const passed = /^# pass (\d+)$/m.exec(run.stdout)?.[1];
  assert.equal(run.status, 0, run.stdout.split('\n').filter((l) => /^not ok|error:/.test(l.trim())).join('\n'));
  assert.ok(Number(passed) >= 10, `${passed} exactness tests ran`);
});

test('a tokenizer with more ids than the text encoder embeds is refused when the folder is assembled, naming both', async () => {
  // The CI checkpoint's vocabulary is 1,514 tokens; CLIP's bundled tokenizer has 49,408.
  const { tokenizer: _ci, ...options } = ciOptions('sd15-optimum');
  await assert.rejects(
    modelFolderFromCheckpoint(join(checkpoints, 'sd15.safetensors'), SD1, { ...options, cacheDir: join(cacheDir, 'bundled') }),
    /sd15\.safetensors: its text encoder embeds 1514 tokens but the tokenizer \(.*\) has 49408: .*give its tokenizer folder/,
  );
});
