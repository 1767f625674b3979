// Sampling wrappers: the chain's order, the sampling-extension service (one per process, even for a second copy
// of this package), and the loop's wrapper points on the embedded model.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  OnnxUnetRunner,
  PatchError,
  composeWrappers,
  encodePrompt,
  guidance,
  isPatchError,
  openModelFolder,
  randn,
  sample,
  samplingExtensions,
  schedulerForKSampler,
  zeros,
  type DiffusionModel,
  type ModelPatch,
  type SampleOptions,
  type SamplingRun,
  type Tensor,
  type UnetCall,
  type UnetOutputs,
  type Wrapper,
} from '../src/index.ts';

test('a chain calls the first wrapper first; each decides what reaches the next; none is the function itself', () => {
  const seen: string[] = [];
  const tag = (name: string): Wrapper<string, string> => (next, args) => {
    seen.push(name);
    return `${name}(${next(`${args}>${name}`)})`;
  };
  const original = (args: string) => `f[${args}]`;
  assert.equal(composeWrappers(original, [tag('a'), tag('b')])('x'), 'a(b(f[x>a>b]))');
  assert.deepEqual(seen, ['a', 'b']);
  assert.equal(composeWrappers(original, []), original);
  // A wrapper may answer without calling on: the rest of the chain never runs.
  const stop: Wrapper<string, string> = () => 'stopped';
  assert.equal(composeWrappers(original, [stop, tag('c')])('x'), 'stopped');
});

const patch = (kind: string, nodeId: string): ModelPatch => ({ kind, settings: {}, nodeId, describe: () => `${kind} from #${nodeId}` });
const run = {} as SamplingRun; // the extensions below read nothing of it

test('the service groups a MODEL\'s patches by extension, in the order of each extension\'s first patch', async () => {
  const service = samplingExtensions();
  const got: string[] = [];
  const unregister = [
    service.register({ owner: 'pack-a', kinds: ['svc-a1', 'svc-a2'], wrap: (ps) => (got.push(`a:${ps.map((p) => p.nodeId).join(',')}`), {}) }),
    service.register({ owner: 'pack-b', kinds: ['svc-b'], wrap: (ps) => (got.push(`b:${ps.map((p) => p.nodeId).join(',')}`), {}) }),
  ];
  try {
    const sets = await service.wrappersFor([patch('svc-b', '1'), patch('svc-a2', '2'), patch('svc-b', '3'), patch('svc-a1', '4')], run);
    assert.equal(sets.length, 2);
    assert.deepEqual(got, ['b:1,3', 'a:2,4']);
    assert.deepEqual(await service.wrappersFor([], run), []);
    await assert.rejects(service.wrappersFor([patch('svc-nobody', '9')], run), (error: Error) => {
      assert.ok(error instanceof PatchError);
      assert.match(error.message, /unknown kind "svc-nobody" \(added by node #9\): svc-nobody from #9\. Known patch kinds: .*svc-a1, svc-a2, svc-b/);
      return true;
    });
  } finally {
    for (const u of unregister) u();
  }
  assert.ok(!service.kinds().includes('svc-b'), 'unregistered');
});

test('a second copy of the package reaches the same service, and its PatchError is recognised', async () => {
  // The same file under another URL is a second module instance, as a pack's own node_modules copy would be.
  const copy = (await import(`${new URL('../src/wrappers/extensions.ts', import.meta.url).href}?second-copy`)) as typeof import('../src/wrappers/extensions.ts');
  assert.notEqual(copy.SamplingExtensions, (await import('../src/wrappers/extensions.ts')).SamplingExtensions, 'a distinct module instance');
  assert.equal(copy.samplingExtensions(), samplingExtensions());
  const foreign = new copy.PatchError('from the copy');
  assert.ok(!(foreign instanceof PatchError) && isPatchError(foreign));
});

const modelDir = fileURLToPath(new URL('../../../models/tiny-sd', import.meta.url));
const noModel = existsSync(`${modelDir}/unet/model.onnx`) ? undefined : `no model at ${modelDir}`;
let model: DiffusionModel;
let base: () => SampleOptions;

before(async () => {
  if (noModel) return;
  model = await openModelFolder(modelDir);
  const positive = (await encodePrompt(model, 'a large red circle at the top left on a gray background')).hiddenStates;
  const negative = (await encodePrompt(model, '')).hiddenStates;
  const shape = [1, 4, 16, 16];
  base = () => ({
    unet: OnnxUnetRunner.forModel(model),
    scheduler: schedulerForKSampler({ sampler_name: 'euler', scheduler: 'normal', steps: 6, denoise: 1 }, model.schedulerConfig),
    positive,
    negative,
    cfg: 6,
    latent: zeros(shape),
    noise: randn(shape, 7),
  });
});
after(() => model?.release());

test('wrappers that only call on change nothing, bit for bit', { skip: noModel }, async () => {
  const plain = await sample(base());
  const points: string[] = [];
  const wrapped = await sample({
    ...base(),
    wrappers: [
      {
        sample: (next, o) => (points.push('sample'), next(o)),
        unet: (next, c) => (points.push(`unet ${c.context.step} ${c.rows}`), next(c)),
        cfg: (next, c) => (points.push('cfg'), next(c)),
        prediction: (next, c) => (points.push('prediction'), next(c)),
      },
    ],
  });
  assert.deepEqual(wrapped.latent.data, plain.latent.data);
  assert.equal(points[0], 'sample');
  assert.deepEqual(points.slice(1, 4), ['unet 0 2', 'cfg', 'prediction']);
  assert.equal(points.length, 1 + 6 * 3);
});

test('the cfg point receives the halves: mixing them at another scale is sampling at that scale', { skip: noModel }, async () => {
  const at3 = await sample({ ...base(), cfg: 3 });
  const rescaled = await sample({ ...base(), wrappers: [{ cfg: async (_next, c) => guidance(c.uncond, c.cond, 3) }] });
  assert.deepEqual(rescaled.latent.data, at3.latent.data);
});

test('the prediction point converts to and from the clean-latent estimate of its step', { skip: noModel }, async () => {
  let largest = 0;
  const roundTrip = await sample({
    ...base(),
    wrappers: [
      {
        prediction: async (next, c) => {
          const p = await next(c);
          const back: Tensor = c.fromDenoised(c.toDenoised(p));
          for (let i = 0; i < p.data.length; i++) largest = Math.max(largest, Math.abs(back.data[i]! - p.data[i]!));
          return back;
        },
      },
    ],
  });
  assert.ok(largest < 1e-3, `fromDenoised(toDenoised(p)) = p (largest difference ${largest})`);
  assert.equal(roundTrip.latent.data.length, 16 * 16 * 4);
});

test('wrappers at the unet point nest around each call, the first outermost', { skip: noModel }, async () => {
  const order: string[] = [];
  const named = (name: string) => ({
    unet: async (next: (c: UnetCall) => Promise<UnetOutputs>, c: UnetCall) => {
      order.push(`${name}>`);
      const out = await next(c);
      order.push(`<${name}`);
      return out;
    },
  });
  await sample({ ...base(), scheduler: schedulerForKSampler({ sampler_name: 'euler', scheduler: 'normal', steps: 1, denoise: 1 }, model.schedulerConfig), wrappers: [named('a'), named('b')] });
  assert.deepEqual(order, ['a>', 'b>', '<b', '<a']);
});

test('a PatchError from a wrapper inside the loop reaches the caller as it is, other errors name the step', { skip: noModel }, async () => {
  await assert.rejects(
    sample({ ...base(), wrappers: [{ unet: async () => { throw new PatchError('this setting cannot run'); } }] }),
    (error: Error) => error instanceof PatchError && error.message === 'this setting cannot run',
  );
  await assert.rejects(
    sample({ ...base(), wrappers: [{ unet: async () => { throw new Error('boom'); } }] }),
    /^Error: Sampling step 1 of 6 \(UNet variant "full", batch "cfg", 2 rows\) failed: boom$/,
  );
});
