/**
 * How many intra-op threads each model should run with: every UNet and VAE decoder at hand, batch 1 and 2,
 * timed with 1 thread and with all cores in alternating rounds (medians), and the rule the engine applies
 * (diffusion's `intraOpThreadsFor`: UNets and text encoders on one thread below SMALL_MODEL_BYTES of weights,
 * all cores above; VAEs on all cores) checked against what was measured; exit 1 where the rule makes a UNet
 * (what runs every step) slower by more than 5 %. Models: the embedded tiny-sd (models/tiny-sd) and, when present, SD-1.5's
 * architecture with random weights (.gategraph/test-models-full/sd15-optimum, tools/test-models) at 256 px.
 *
 *   node --import tsx bench/engine-threads.ts [--rounds 7] [--size 256]
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { SMALL_MODEL_BYTES, SessionPool, intraOpThreadsFor, weightFileBytes, type SessionLease, type Tensor } from '../packages/diffusion/src/index.ts';
import { cliOptions, loadMeter, median, repoRoot } from './measure.ts';

const { positiveInt } = cliOptions(process.argv.slice(2));
const ROUNDS = positiveInt('rounds', '7');
const SIZE = positiveInt('size', '256');
const cores = availableParallelism();

interface Case {
  name: string;
  path: string;
  kind: 'per-step' | 'per-image';
  feeds: (batch: number) => Record<string, Tensor>;
}

function unetCase(name: string, folder: string, latent: number, context: number): Case {
  return {
    name: `${name} UNet`,
    path: join(folder, 'unet', 'model.onnx'),
    kind: 'per-step',
    feeds: (batch) => ({
      sample: { data: new Float32Array(batch * 4 * latent * latent).fill(0.1), shape: [batch, 4, latent, latent] },
      timestep: { data: new Float32Array(batch).fill(500), shape: [batch] },
      encoder_hidden_states: { data: new Float32Array(batch * 77 * context).fill(0.01), shape: [batch, 77, context] },
    }),
  };
}

function vaeCase(name: string, folder: string, latent: number): Case {
  return {
    name: `${name} VAE decoder`,
    path: join(folder, 'vae_decoder', 'model.onnx'),
    kind: 'per-image',
    feeds: (batch) => ({ latent_sample: { data: new Float32Array(batch * 4 * latent * latent).fill(0.1), shape: [batch, 4, latent, latent] } }),
  };
}

const cases: Case[] = [];
const tiny = join(repoRoot, 'models', 'tiny-sd');
if (existsSync(tiny)) cases.push(unetCase('tiny-sd', tiny, 8, 768), vaeCase('tiny-sd', tiny, 8));
const sd15 = join(repoRoot, '.gategraph', 'test-models-full', 'sd15-optimum');
if (existsSync(join(sd15, 'unet', 'model.onnx'))) cases.push(unetCase(`SD-1.5 (${SIZE} px)`, sd15, SIZE / 8, 768), vaeCase(`SD-1.5 (${SIZE} px)`, sd15, SIZE / 8));
else console.log(`(SD-1.5's architecture not found at ${sd15}: /usr/bin/python3 tools/test-models/make_test_models.py --scale full --only sd15-optimum makes it)`);

/** A session with `threads` intra-op threads (no spinning, the engine's default), in a pool of its own. */
function open(path: string, threads: number): SessionLease {
  return new SessionPool({ intraOpNumThreads: threads }, { memoryBudgetBytes: Number.MAX_SAFE_INTEGER }).acquire(path);
}

/**
 * The feeds as the model declares them: fixed dims as declared (tiny-sd's UNet takes a scalar timestep and a
 * fixed 16x16 latent), symbolic ones from `feeds`' shapes.
 */
async function fit(lease: SessionLease, feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  const session = await lease.session();
  const out: Record<string, Tensor> = {};
  for (const meta of session.inputMetadata) {
    const f = feeds[meta.name];
    if (!f || !meta.isTensor) continue;
    const shape = meta.shape.length === 0 ? [] : meta.shape.map((d, i) => (typeof d === 'number' && d > 0 ? d : f.shape[i]!));
    const n = shape.reduce((a, b) => a * b, 1);
    out[meta.name] = { data: new Float32Array(n).fill(f.data[0] ?? 0.1), shape };
  }
  return out;
}

const meter = loadMeter();
console.log(`bench/engine-threads: ${cores} cores, ${ROUNDS} alternating rounds per case, medians; rule: UNets on 1 thread below ${(SMALL_MODEL_BYTES / 1e6).toFixed(0)} MB of weights, VAEs on all cores`);
let disagreements = 0;
for (const c of cases) {
  const bytes = weightFileBytes(c.path);
  const sessions = new Map<number, SessionLease>();
  for (const threads of [1, cores]) sessions.set(threads, open(c.path, threads));
  for (const batch of [1, 2]) {
    const times = new Map<number, number[]>([[1, []], [cores, []]]);
    for (const [, s] of sessions) await s.run(await fit(s, c.feeds(batch))); // warm-up
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 ? [cores, 1] : [1, cores];
      for (const threads of order) {
        const s = sessions.get(threads)!;
        const feeds = await fit(s, c.feeds(batch));
        const t0 = performance.now();
        await s.run(feeds);
        times.get(threads)!.push(performance.now() - t0);
      }
    }
    const one = median(times.get(1)!);
    const all = median(times.get(cores)!);
    const best = one <= all ? 1 : cores;
    const chosen = intraOpThreadsFor(bytes, cores, c.kind);
    const agrees = best === chosen || Math.abs(one - all) / Math.min(one, all) < 0.05;
    // A VAE decodes once per image: a millisecond either way does not count; the UNet runs every step.
    const counts = c.kind === 'per-step';
    if (!agrees && counts) disagreements++;
    console.log(
      `  ${c.name.padEnd(28)} ${(bytes / 1e6).toFixed(0).padStart(5)} MB  batch ${batch}: 1 thread ${one.toFixed(1)} ms, ${cores} threads ${all.toFixed(1)} ms ` +
        `(${(one / all).toFixed(2)}x); rule picks ${chosen}${agrees ? '' : '  <- the rule is slower here'}`,
    );
  }
  for (const s of sessions.values()) await s.release();
}
console.log(`machine: ${JSON.stringify(meter.stop())}`);
if (disagreements) {
  console.error(`${disagreements} case(s) where the rule picks the slower setting by more than 5 %`);
  process.exitCode = 1;
}
