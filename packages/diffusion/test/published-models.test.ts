// The SD-1.x / 2.x ONNX folders users bring, in every published layout (tools/test-models: SD's exact block
// structure with narrow widths and random weights, generated here with PyTorch): each opens, each component
// equals PyTorch's output on the same weights, clip skip and textual inversion equal torch's, the TGATE
// exactness tests pass on it, and the kinds this engine does not run are refused with one sentence.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import {
  checkSupportedModel,
  encodePrompt,
  fromOrtTensor,
  ModelFolderError,
  openModelFolder,
  SessionPool,
  UnsupportedModelError,
  type DiffusionModel,
} from '../src/index.ts';
import { readTableRows, textEncoderVariant } from '../src/text-encoder-variants.ts';
import {
  publishedTestModels,
  readReference,
  referenceValues,
  REFUSED_LAYOUTS,
  RUNNABLE_LAYOUTS,
} from './fixtures/published-models.ts';
import { componentOf, feedOf, relativeError } from './fixtures/reference-calls.ts';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const pool = new SessionPool();
let root: string;
before(() => {
  root = publishedTestModels();
});
after(async () => {
  await pool.freeAll();
});

/** The environment for a child test run: without the variable by which node's runner tells its own children to report to it. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

for (const layout of RUNNABLE_LAYOUTS) {
  test(`${layout}: opens, tokenizes as CLIP, and every component equals PyTorch on the same weights`, async () => {
    const folder = join(root, layout);
    const reference = readReference(folder);
    const tolerance = reference.tolerance.rel ?? reference.tolerance.abs;
    const model = await openModelFolder(folder, { pool });
    try {
      for (const { text, ids } of reference.tokenizer.cases) assert.deepEqual(model.tokenizer.encode(text).ids, ids, `${layout}: ids of ${JSON.stringify(text)}`);
      for (const call of reference.calls) {
        if (call.replace_token_embedding) continue; // checked below, through the engine's textual-inversion graph
        const component = componentOf(model, call);
        const feeds = Object.fromEntries(Object.entries(call.inputs).map(([input, tensor]) => [input, feedOf(folder, reference, tensor, component, input)]));
        // An encoder that samples inside its graph is run as its conversion, which returns the posterior mean.
        const expected = call.random_outputs
          ? Object.fromEntries(Object.keys(call.random_outputs).map((name) => [name, call.derived!.mean!]))
          : call.outputs;
        const out = await component.run(feeds, Object.keys(expected));
        for (const [output, tensor] of Object.entries(expected)) {
          const actual = fromOrtTensor(output, out[output]!);
          const want = referenceValues(folder, reference, tensor);
          assert.deepEqual(actual.shape, want.shape, `${layout} ${call.name} ${output}: shape`);
          const error = relativeError(actual.data, want.data as Float32Array);
          assert.ok(error <= tolerance, `${layout} ${call.name} ${output}: relative error ${error.toExponential(2)} > ${tolerance}`);
        }
      }
    } finally {
      await model.release();
    }
  });

  // SDXL's encoders take the raw hidden states, not clip skip's normalised ones: sdxl.test.ts checks them.
  test(`${layout}: clip skip and an injected token embedding equal PyTorch's`, { skip: (layout.startsWith('sdxl') || layout === 'lcm-sdxl') && 'SDXL conditioning: sdxl.test.ts' }, async () => {
    const folder = join(root, layout);
    const reference = readReference(folder);
    const tolerance = layout === 'sd15-fp16' ? reference.tolerance.abs : 1e-5;
    const model = await openModelFolder(folder, { pool });
    try {
      const hidden = reference.calls.find((c) => c.name === 'text_encoder.hidden_states')!;
      const ids = referenceValues(folder, reference, hidden.inputs.input_ids!).data as number[];
      const prompt = reference.tokenizer.cases.find((c) => c.ids.every((id, i) => id === ids[i]))!.text;
      // ComfyUI's CLIPSetLastLayer -2: the final layer norm of the penultimate layer's output.
      const skipped = await encodePrompt(model, prompt, { stopAtClipLayer: -2 });
      const want = referenceValues(folder, reference, hidden.derived!.clip_skip_2!);
      assert.ok(relativeError(skipped.hiddenStates.data, want.data as Float32Array) <= tolerance, `${layout}: clip skip -2`);

      const ti = reference.calls.find((c) => c.replace_token_embedding)!;
      const { position, vector } = ti.replace_token_embedding!;
      const variant = await textEncoderVariant(model.textEncoder, { tokenEmbeddingsInput: true });
      const embeddings = variant.report.tokenEmbeddings!;
      const tiIds = referenceValues(folder, reference, ti.inputs.input_ids!).data as number[];
      const rows = readTableRows(embeddings.table, tiIds);
      const width = embeddings.table.dims[1]!;
      const table = new Float32Array(tiIds.length * width);
      tiIds.forEach((id, i) => table.set(rows.get(id)!, i * width));
      table.set(referenceValues(folder, reference, vector).data as Float32Array, position * width);
      const out = await variant.run(
        {
          [embeddings.input]: new ort.Tensor('float32', table, [1, tiIds.length, width]),
          [model.io.text.inputIds]: feedOf(folder, reference, ti.inputs.input_ids!, model.textEncoder, model.io.text.inputIds),
        },
        [model.io.text.lastHiddenState],
      );
      const injected = fromOrtTensor('last_hidden_state', out[model.io.text.lastHiddenState]!);
      const tiWant = referenceValues(folder, reference, ti.outputs.last_hidden_state!);
      assert.ok(relativeError(injected.data, tiWant.data as Float32Array) <= tolerance, `${layout}: textual inversion`);
    } finally {
      await model.release();
    }
  });

  test(`${layout}: the TGATE / DeepCache exactness tests pass on it`, () => {
    // The engine's own exactness tests (tgate-runner.test.ts), run on this folder: gate past the end = the plain
    // run byte for byte; reusing attention / DeepCache features captured at the same step = the full forward.
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--test', '--test-reporter=tap', '--test-name-pattern=If-gated graph|gate past the last step|one pass after the gate|caches the mean', 'packages/diffusion/test/tgate-runner.test.ts'],
      { cwd: repo, encoding: 'utf8', env: childEnv({ GATEGRAPH_TEST_MODEL: join(root, layout) }), maxBuffer: 16 * 1024 * 1024 },
    );
    const passed = /^# pass (\d+)$/m.exec(run.stdout)?.[1];
    const failed = /^# fail (\d+)$/m.exec(run.stdout)?.[1];
    assert.equal(run.status, 0, `${layout}: ${failed} failed\n${run.stdout.split('\n').filter((l) => /^not ok|error:/.test(l.trim())).join('\n')}`);
    assert.ok(Number(passed) >= 10, `${layout}: ${passed} exactness tests ran`);
  });
}

test('each kind this engine does not run is refused with one sentence, before anything opens', async () => {
  const expected: Record<(typeof REFUSED_LAYOUTS)[number], { kind: string; says: RegExp }> = {
    'olive-fused': { kind: 'gpu-optimized', says: /unet\/model\.onnx was optimized for GPUs .*com\.microsoft (GroupNorm|NhwcConv)/ },
    pixart: { kind: 'pixart', says: /this is a PixArt model/ },
    sd3: { kind: 'sd3', says: /this is a Stable Diffusion 3 model/ },
    ckpt: { kind: 'pickle', says: /^this is a Python pickle .*so gategraph never opens it\. Convert it once to \.safetensors/ },
  };
  for (const layout of REFUSED_LAYOUTS) {
    const folder = join(root, layout);
    const target = layout === 'ckpt' ? join(folder, 'model.ckpt') : folder;
    let error: unknown;
    try {
      checkSupportedModel(target);
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof UnsupportedModelError, `${layout} is refused`);
    assert.equal(error.kind, expected[layout].kind, error.message);
    assert.match(error.reason, expected[layout].says);
    await assert.rejects(openModelFolder(target, { pool }), (e: unknown) => e instanceof ModelFolderError && e.message.includes(error.reason), `${layout}: opening says the same`);
  }
});
