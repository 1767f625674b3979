// The engine end to end on real onnxruntime sessions: text encoder, VAE, the sampling loop (CFG batching,
// determinism, interruption, progress and previews) and the StepPlanner hooks TGATE/DeepCache build on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  FULL_VARIANT,
  OnnxUnetRunner,
  SessionPool,
  concatBatch,
  createScheduler,
  decodeLatents,
  encodeImage,
  encodePng,
  encodePrompt,
  imageToRgb8,
  latentPreviewRgb,
  maxAbsDiff,
  openModelFolder,
  previewMapFor,
  decodePreview,
  randn,
  sample,
  splitBatch,
  syntheticFitImages,
  timestepTensor,
  zeros,
  type DiffusionModel,
  type EncodedPrompt,
  type FeedValue,
  type StepOutcome,
  type StepPlanner,
  type Tensor,
  type UnetRunner,
} from '../src/index.ts';
import { requireTestModel, tempDir } from './fixtures/test-model.ts';
import { writeWithExtraOutputs } from './fixtures/onnx-rewrite.ts';

const pool = new SessionPool();
let model: DiffusionModel;
let pos: EncodedPrompt;
let neg: EncodedPrompt;
let shape: number[];
const PROMPT = 'a red circle at the top left on a gray background';

before(async () => {
  model = await openModelFolder(requireTestModel(), { pool });
  pos = await encodePrompt(model, PROMPT);
  neg = await encodePrompt(model, '');
  const [h, w] = model.io.unet.fixedLatentSize ?? [16, 16];
  shape = [1, model.io.unet.latentChannels, h, w];
});
after(async () => {
  await model.release();
  await pool.freeAll();
});

/** A real runner that records each call's variant and batch rows (and may split CFG batches in two). */
class RecordingRunner implements UnetRunner {
  calls: { variant: string; rows: number }[] = [];
  constructor(private readonly inner: UnetRunner, private readonly splitCfg = false) {}
  get io() {
    return this.inner.io;
  }
  get variants() {
    return this.inner.variants;
  }
  async run(variant: string, feeds: Record<string, FeedValue>, fetches: readonly string[]): Promise<Record<string, Tensor>> {
    const x = feeds[this.io.sample] as Tensor;
    const rows = x.shape[0]!;
    this.calls.push({ variant, rows });
    if (!this.splitCfg || rows === 1) return this.inner.run(variant, feeds, fetches);
    // run each row alone, then stitch the outputs back together
    const ehs = splitBatch(feeds[this.io.encoderHiddenStates] as Tensor, rows);
    const xs = splitBatch(x, rows);
    const t = timestepValue(feeds[this.io.timestep]!);
    const parts: Record<string, Tensor>[] = [];
    for (let r = 0; r < rows; r++) {
      parts.push(await this.inner.run(variant, { [this.io.sample]: xs[r]!, [this.io.timestep]: timestepTensor(this.io, t, 1), [this.io.encoderHiddenStates]: ehs[r]! }, fetches));
    }
    return Object.fromEntries(fetches.map((n) => [n, concatBatch(parts.map((p) => p[n]!))]));
  }
}

function timestepValue(v: FeedValue): number {
  return Number((v as { data: ArrayLike<number | bigint> }).data[0]);
}

async function txt2img(seed: number, extra: Partial<Parameters<typeof sample>[0]> = {}) {
  return sample({
    unet: OnnxUnetRunner.forModel(model),
    scheduler: createScheduler('ddim', model.schedulerConfig, 25),
    positive: pos.hiddenStates,
    negative: neg.hiddenStates,
    cfg: 7,
    latent: zeros(shape),
    noise: randn(shape, seed),
    ...extra,
  });
}

test('encodePrompt returns [1, 77, D] hidden states and the pooled output; prompts differ', async () => {
  assert.deepEqual(pos.hiddenStates.shape, [1, 77, model.io.text.hiddenSize]);
  assert.deepEqual(pos.pooled?.shape, [1, model.io.text.hiddenSize]);
  assert.equal(pos.truncated, undefined);
  assert.ok(maxAbsDiff(pos.hiddenStates, neg.hiddenStates) > 1e-3);
  const again = await encodePrompt(model, PROMPT);
  assert.deepEqual(again.hiddenStates.data, pos.hiddenStates.data);
  const long = await encodePrompt(model, `${'red circle '.repeat(38)}and a blue square`);
  assert.equal(long.truncated, 'circle and a blue square');
});

test('txt2img, 25 DDIM steps: same seed gives identical PNG bytes, another seed another image', async () => {
  const png = async (seed: number) => encodePng(imageToRgb8(await decodeLatents(model, (await txt2img(seed)).latent))[0]!);
  const a = await png(42);
  const b = await png(42);
  const c = await png(43);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

test('the CFG batch of two equals running the uncond and cond branches separately', async () => {
  const batched = new RecordingRunner(OnnxUnetRunner.forModel(model));
  const split = new RecordingRunner(OnnxUnetRunner.forModel(model), true);
  const a = await txt2img(7, { unet: batched });
  const b = await txt2img(7, { unet: split });
  assert.ok(batched.calls.every((c) => c.rows === 2) && batched.calls.length === 25);
  const diff = maxAbsDiff(a.latent, b.latent);
  assert.ok(diff < 1e-3, `max |batched - separate| = ${diff}`);
});

test('cfg 1 runs only the cond branch (batch 1) and needs no negative prompt', async () => {
  const runner = new RecordingRunner(OnnxUnetRunner.forModel(model));
  const r = await sample({ unet: runner, scheduler: createScheduler('euler', model.schedulerConfig, 4), positive: pos.hiddenStates, cfg: 1, latent: zeros(shape), noise: randn(shape, 1) });
  assert.deepEqual(runner.calls.map((c) => c.rows), [1, 1, 1, 1]);
  assert.ok(r.plans.every((p) => p.batch === 'cond'));
  await assert.rejects(txt2img(1, { negative: undefined }), /cfg 7 needs a negative conditioning/);
});

test('a latent batch of two samples both items like two single runs', async () => {
  const two = [2, ...shape.slice(1)];
  const noise = concatBatch([randn(shape, 3), randn(shape, 4)]);
  const r = await sample({ unet: OnnxUnetRunner.forModel(model), scheduler: createScheduler('ddim', model.schedulerConfig, 5), positive: pos.hiddenStates, negative: neg.hiddenStates, cfg: 5, latent: zeros(two), noise });
  const single = await sample({ unet: OnnxUnetRunner.forModel(model), scheduler: createScheduler('ddim', model.schedulerConfig, 5), positive: pos.hiddenStates, negative: neg.hiddenStates, cfg: 5, latent: zeros(shape), noise: randn(shape, 4) });
  assert.ok(maxAbsDiff(splitBatch(r.latent, 2)[1]!, single.latent) < 1e-3);
});

test('img2img: denoise < 1 starts from the encoded image part-way down and stays near it', async () => {
  const [H, W] = model.io.vae.fixedImageSize ?? [64, 64];
  const source = await encodeImage(model, syntheticFitImages(1, H, W, 77));
  const runner = new RecordingRunner(OnnxUnetRunner.forModel(model));
  const run = (denoise: number, unet: UnetRunner) => sample({ unet, scheduler: createScheduler('euler', model.schedulerConfig, 8, { denoise }), positive: pos.hiddenStates, negative: neg.hiddenStates, cfg: 3, latent: denoise < 1 ? source : zeros(shape), noise: randn(shape, 8) });
  const light = await run(0.3, runner);
  assert.equal(runner.calls.length, 8, 'steps UNet calls, as ComfyUI');
  assert.ok(light.plans.length === 8);
  const full = await run(1, OnnxUnetRunner.forModel(model));
  const near = maxAbsDiff(light.latent, source);
  const far = maxAbsDiff(full.latent, source);
  assert.ok(near < far, `denoise 0.3 ends ${near.toFixed(3)} from the source, txt2img ${far.toFixed(3)}`);
});

test('an aborted signal stops sampling before the next step with an InterruptedError', async () => {
  const runner = new RecordingRunner(OnnxUnetRunner.forModel(model));
  const ac = new AbortController();
  const err = await txt2img(5, { unet: runner, signal: ac.signal, onProgress: (step) => step === 3 && ac.abort() }).then(() => undefined, (e: unknown) => e as Error);
  assert.equal(err?.name, 'InterruptedError');
  assert.match(err.message, /interrupted before step 4 of 25/);
  assert.equal(runner.calls.length, 3, 'no UNet call after the abort');
  let polls = 0;
  await assert.rejects(txt2img(5, { shouldInterrupt: () => ++polls > 1 }), { name: 'InterruptedError' });
});

test('progress is reported every step, with the denoised latent as preview when asked', async () => {
  const seen: { step: number; total: number; preview: Tensor | undefined }[] = [];
  const r = await txt2img(11, { previews: true, onProgress: (step, total, preview) => seen.push({ step, total, preview }) });
  assert.deepEqual(seen.map((s) => s.step), Array.from({ length: 25 }, (_, i) => i + 1));
  assert.ok(seen.every((s) => s.total === 25 && s.preview && s.preview.shape.join() === shape.join()));
  const noPreview: (Tensor | undefined)[] = [];
  await sample({ unet: OnnxUnetRunner.forModel(model), scheduler: createScheduler('euler', model.schedulerConfig, 2), positive: pos.hiddenStates, cfg: 1, latent: zeros(shape), noise: randn(shape, 1), onProgress: (_s, _t, p) => noPreview.push(p) });
  assert.deepEqual(noPreview, [undefined, undefined], 'previews are off by default');

  // the exact preview is the VAE decode of the denoised latent
  const last = seen.at(-1)!.preview!;
  const exact = await decodePreview(model, last);
  assert.deepEqual(exact.data, imageToRgb8(await decodeLatents(model, last))[0]!.data);
  void r;
});

test('the fitted latent->RGB map predicts decoded colours better than the mean colour, on held-out images', async () => {
  const map = await previewMapFor(model);
  assert.equal(await previewMapFor(model), map, 'fitted once per model');
  assert.equal(map.weights.length, model.io.vae.latentChannels);
  const [H, W] = model.io.vae.fixedImageSize ?? [64, 64];
  const n = 8;
  const latent = await encodeImage(model, syntheticFitImages(n, H, W, 1234)); // the fit used seed 1
  const f = model.io.vae.scaleFactor;
  const image = await decodeLatents(model, latent);
  const mean = [0, 0, 0];
  for (let i = 0; i < image.data.length; i++) mean[i % 3]! += image.data[i]! / (image.data.length / 3);
  let err = 0;
  let base = 0;
  let count = 0;
  for (let b = 0; b < n; b++) {
    const preview = latentPreviewRgb(latent, map, b);
    assert.deepEqual([preview.width * f, preview.height * f], [W, H]);
    for (let y = 0; y < preview.height; y++) {
      for (let x = 0; x < preview.width; x++) {
        for (let k = 0; k < 3; k++) {
          let s = 0;
          for (let dy = 0; dy < f; dy++) for (let dx = 0; dx < f; dx++) s += image.data[((b * H + y * f + dy) * W + x * f + dx) * 3 + k]!;
          s /= f * f;
          err += Math.abs(s - preview.data[(y * preview.width + x) * 3 + k]! / 255);
          base += Math.abs(s - mean[k]!);
          count++;
        }
      }
    }
  }
  assert.ok(err < base, `mean |preview - decoded| = ${(err / count).toFixed(3)}, mean colour: ${(base / count).toFixed(3)}`);
});

test('VAE: decode gives IMAGE [B, H, W, 3] in 0..1; encode/decode round-trips; bad sizes are explained', async () => {
  const [H, W] = model.io.vae.fixedImageSize ?? [64, 64];
  const images = syntheticFitImages(2, H, W, 9);
  const latent = await encodeImage(model, images, { batchSize: 2 });
  assert.deepEqual(latent.shape, [2, model.io.vae.latentChannels, H / model.io.vae.scaleFactor, W / model.io.vae.scaleFactor]);
  const decoded = await decodeLatents(model, latent);
  assert.deepEqual(decoded.shape, [2, H, W, 3]);
  assert.ok(decoded.data.every((v) => v >= 0 && v <= 1));
  let err = 0;
  for (let i = 0; i < decoded.data.length; i++) err += Math.abs(decoded.data[i]! - images.data[i]!);
  const mae = err / decoded.data.length;
  assert.ok(mae < 0.08, `round-trip mean abs error ${mae.toFixed(4)}`);
  // batch handling: item 1 of a batch decodes like item 1 alone
  const alone = await decodeLatents(model, splitBatch(latent, 2)[1]!);
  assert.ok(maxAbsDiff(splitBatch(decoded, 2)[1]!, alone) < 1e-5);
  await assert.rejects(encodeImage(model, zeros([1, H + 2, W, 3])), new RegExp(`the image is ${W}x${H + 2} but this VAE needs width and height divisible by ${model.io.vae.scaleFactor}`));
  await assert.rejects(decodeLatents(model, zeros([1, 3, 8, 8])), /the latent has 3 channels/);
});

test('timestep feeds follow the declared dtype and shape', () => {
  const t64 = timestepTensor({ timestepType: 'int64', timestepShape: 'scalar' }, 981, 2);
  assert.equal(t64.type, 'int64');
  assert.deepEqual(t64.dims, []);
  assert.deepEqual([...(t64.data as BigInt64Array)], [981n]);
  const f = timestepTensor({ timestepType: 'float32', timestepShape: 'batch' }, 500, 2);
  assert.deepEqual([f.type, f.dims, [...(f.data as Float32Array)]], ['float32', [2], [500, 500]]);
  const one = timestepTensor({ timestepType: 'int64', timestepShape: 'single' }, 1, 2);
  assert.deepEqual(one.dims, [1]);
});

test('a planner that runs the full UNet every step and captures nothing equals the plain path exactly', async () => {
  const planned: number[] = [];
  const planner: StepPlanner = {
    planStep(i, ctx) {
      planned.push(i);
      return { variant: FULL_VARIANT, batch: ctx.defaultBatch };
    },
  };
  const a = await txt2img(21);
  const b = await txt2img(21, { planner });
  assert.deepEqual(planned, Array.from({ length: 25 }, (_, i) => i));
  assert.deepEqual(b.latent.data, a.latent.data);
});

test('a planner switches variants and batches per step, captures outputs and feeds extra inputs', async () => {
  // A "capture" variant: the same UNet with one cross-attention output exposed as a graph output.
  const attn2 = '/down_blocks.0/attentions.0/transformer_blocks.0/attn2/to_out.0/Add_output_0';
  const capturePath = join(tempDir('capture'), 'model.onnx');
  writeWithExtraOutputs(model.unet.path, capturePath, [attn2]);
  const captureLease = pool.acquire(capturePath);
  const inner = OnnxUnetRunner.forModel(model).addVariant('capture', captureLease);
  const runner = new RecordingRunner(inner);
  const gate = 3;
  const captured: { step: number; rows: number }[] = [];
  let cache: Tensor | undefined;
  // TGATE's shape: CFG and capture until the gate, then one branch without guidance
  const planner: StepPlanner = {
    planStep(i) {
      return i < gate ? { variant: 'capture', batch: 'cfg', captureOutputs: [attn2] } : { variant: FULL_VARIANT, batch: 'cond' };
    },
    afterStep(i, outcome: StepOutcome) {
      assert.deepEqual(outcome.modelOutput.shape, shape);
      const t = outcome.outputs[attn2];
      if (outcome.plan.variant === 'capture') {
        assert.ok(t, 'captured output delivered');
        captured.push({ step: i, rows: t.shape[0]! });
        cache = t;
      } else {
        assert.deepEqual(Object.keys(outcome.outputs), []);
      }
    },
  };
  try {
    const r = await sample({ unet: runner, scheduler: createScheduler('ddim', model.schedulerConfig, 6), positive: pos.hiddenStates, negative: neg.hiddenStates, cfg: 7, latent: zeros(shape), noise: randn(shape, 2), planner });
    assert.deepEqual(runner.calls, [
      { variant: 'capture', rows: 2 }, { variant: 'capture', rows: 2 }, { variant: 'capture', rows: 2 },
      { variant: 'full', rows: 1 }, { variant: 'full', rows: 1 }, { variant: 'full', rows: 1 },
    ]);
    assert.deepEqual(captured, [{ step: 0, rows: 2 }, { step: 1, rows: 2 }, { step: 2, rows: 2 }]);
    assert.deepEqual(r.plans.map((p) => p.batch), ['cfg', 'cfg', 'cfg', 'cond', 'cond', 'cond']);
    // the capture variant computes the same noise prediction as the plain UNet
    const plain = await sample({ unet: inner, scheduler: createScheduler('ddim', model.schedulerConfig, 6), positive: pos.hiddenStates, negative: neg.hiddenStates, cfg: 7, latent: zeros(shape), noise: randn(shape, 2), planner: { planStep: (i) => ({ variant: FULL_VARIANT, batch: i < gate ? 'cfg' : 'cond' }) } });
    assert.ok(maxAbsDiff(plain.latent, r.latent) < 1e-4);
    // an extra input the variant does not declare is an error that lists what it declares
    await assert.rejects(
      sample({ unet: inner, scheduler: createScheduler('ddim', model.schedulerConfig, 2), positive: pos.hiddenStates, negative: neg.hiddenStates, cfg: 7, latent: zeros(shape), noise: randn(shape, 2), planner: { planStep: () => ({ variant: 'capture', batch: 'cfg', extraInputs: { [attn2]: cache! } }) } }),
      /UNet variant "capture" .*feed \/down_blocks.0.* not declared by the graph\. It declares: sample, timestep, encoder_hidden_states/,
    );
    await assert.rejects(
      sample({ unet: inner, scheduler: createScheduler('ddim', model.schedulerConfig, 2), positive: pos.hiddenStates, cfg: 1, latent: zeros(shape), noise: randn(shape, 2), planner: { planStep: () => ({ variant: 'reuse', batch: 'cond' }) } }),
      /Unknown UNet variant "reuse"; this runner has: full, capture/,
    );
  } finally {
    await captureLease.release();
  }
});
