/**
 * TGATE and DeepCache side by side on the embedded model, in one run: for each sampler (dpmpp_2m, ddim; 25
 * steps, scheduler normal, cfg 6) and each configuration
 *
 *   plain            the unpatched UNet
 *   tgate            CacheCrossAttn, gate 10 (cross-attention cached, one pass after the gate)
 *   tgate+self       CacheCrossAttn + CacheSelfAttn, gate 10, sp 5, fi 1, warm 2 (TGATE v2's defaults)
 *   deepcache        DeepCache interval 3, branch 0
 *   tgate+deepcache  T-GATE's combination: cross-attention gate 10 (sp 1, warm 0) + DeepCache 3/0
 *
 * it prints:
 *   - time: median wall-clock of a whole 25-step sampling run (UNet calls + the loop), configurations run in
 *     alternation (round r runs every configuration once, in a rotated order) so machine load hits all alike;
 *     the ratio is plain / config (> 1 = faster);
 *   - MACs per image counted from the graphs (onnx-graph countMacs): for every step the graph form that step
 *     runs (full, attention reused, DeepCache shallow, or both) at its batch (2 rows with CFG, 1 after the
 *     gate); conv/linear MACs as the papers count them, and with the attention products;
 *   - peak RSS of a child process that prepares the configuration's sessions and samples one image
 *     (VmHWM: peakResidentBytes);
 *   - quality: judge accuracy (packages/judge, the tiny-sd domain's pixel judge) over `--images` captions, and
 *     PSNR of each image against the plain image of the same caption and seed (plain: infinite).
 *
 * Checks (exit 1): TGATE with the gate past the last step is the plain latent byte for byte; every image is
 * finite.
 *
 *   node --import tsx bench/tgate.ts [--images 16] [--runs 7] [--samplers dpmpp_2m,ddim] [--model dir]
 *                                    [--threads n] [--spinning] [--batch 1] [--compute-all]
 *
 * --batch n times sampling runs of a latent batch of n images (EmptyLatentImage's batch_size; a CFG step then
 * runs 2n rows, a step after the gate n) and reports time per image = run time / n; the RSS child samples the
 * same batch. Quality is always judged on single images, so its columns do not depend on --batch.
 *
 * --compute-all runs the caching configurations' steps that compute every module on a second, If-free graph
 * (prepareCachedUnet's separateComputeGraph: a few percent faster on a small UNet, a second copy of the weights).
 *
 * --threads / --spinning set the ORT sessions' intra-op threads and busy-waiting (engine defaults: all cores,
 * no spinning, the right choice on shared cores). On a small UNet a call's fixed cost (dispatching a few hundred
 * small operators, waking the pool's threads for each) is a large share of it, which makes a batch-1 step cost
 * more than half a guided batch-2 step and caps what TGATE's single pass after the gate can save; a larger --batch
 * spreads that fixed cost over more rows.
 *
 * Model: --model, else GATEGRAPH_TEST_MODEL, else models/tiny-sd. The derived graphs are built on the first
 * run and cached next to the model (unet/.gategraph-derived).
 */
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  OnnxUnetRunner,
  cacheNeedsOf,
  combinePlans,
  decodeLatents,
  encodePrompt,
  imageToRgb8,
  isPlainPlan,
  openModelFolder,
  planDeepCache,
  planStepper,
  planTgate,
  prepareCachedUnet,
  randn,
  sample,
  schedulerForKSampler,
  zeros,
  type CachedUnet,
  type DiffusionModel,
  type ExecutionPlan,
  type StepPlanner,
  type SessionSettings,
  SessionPool,
  type Tensor,
  type UnetRunner,
} from '../packages/diffusion/src/index.ts';
import { loadModel } from '../packages/onnx-graph/src/index.ts';
import { cliOptions } from './measure.ts';
import { PlanMacCounter } from './plan-macs.ts';
import { peakResidentBytes } from '../packages/server/src/process-memory.ts';
import { formatCaption, judge, loadDomain, rng, sampleScene, tally, type Verdict } from '../packages/judge/src/index.ts';

const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));
const args = process.argv.slice(2);
const { option } = cliOptions(args);
const modelDir = resolve(option('model', process.env.GATEGRAPH_TEST_MODEL || join(repoRoot, 'models', 'tiny-sd')));
const IMAGES = Number(option('images', '16'));
const RUNS = Number(option('runs', '7'));
const BATCH = Number(option('batch', '1'));
if (!Number.isInteger(BATCH) || BATCH < 1) {
  console.error(`--batch must be a whole number >= 1 (images per sampling run); got ${option('batch', '1')}`);
  process.exit(2);
}
const SAMPLERS = option('samplers', 'dpmpp_2m,ddim').split(',');
const STEPS = 25;
const CFG = 6;
const SCHEDULER = 'normal';
const threadsArg = option('threads', '');
const SESSION_SETTINGS: SessionSettings = {
  ...(threadsArg ? { intraOpNumThreads: Number(threadsArg) } : {}),
  ...(args.includes('--spinning') ? { intraOpSpinning: true } : {}),
};
const pool = new SessionPool(SESSION_SETTINGS);
const COMPUTE_ALL = args.includes('--compute-all');
const passThrough = [
  '--batch', String(BATCH),
  ...(threadsArg ? ['--threads', threadsArg] : []),
  ...(args.includes('--spinning') ? ['--spinning'] : []),
  ...(COMPUTE_ALL ? ['--compute-all'] : []),
];

const CONFIGS = ['plain', 'tgate', 'tgate+self', 'deepcache', 'tgate+deepcache'] as const;
type Config = (typeof CONFIGS)[number];

function planFor(config: Config, steps: number): ExecutionPlan {
  const deep = () => planDeepCache({ steps, cacheInterval: 3, cacheBranchId: 0 });
  switch (config) {
    case 'plain':
      return planTgate({ steps, gateStep: steps });
    case 'tgate':
      return planTgate({ steps, gateStep: 10, cacheSelfAttn: false });
    case 'tgate+self':
      return planTgate({ steps, gateStep: 10, spInterval: 5, fiInterval: 1, warmUp: 2 });
    case 'deepcache':
      return deep();
    case 'tgate+deepcache':
      return combinePlans(planTgate({ steps, gateStep: 10, spInterval: 1, warmUp: 0, cacheSelfAttn: false }), deep());
  }
}

interface Prepared {
  plan: ExecutionPlan;
  /** false: sample() without a planner (the plain configuration). */
  usePlanner: boolean;
  runner: UnetRunner;
  planner: () => StepPlanner;
  cached?: CachedUnet;
}

async function prepare(model: DiffusionModel, config: Config): Promise<Prepared> {
  const plan = planFor(config, STEPS);
  if (isPlainPlan(plan)) return { plan, usePlanner: config !== 'plain', runner: OnnxUnetRunner.forModel(model), planner: () => planStepper(plan, null) };
  const cached = await prepareCachedUnet(model, cacheNeedsOf(plan), { separateComputeGraph: COMPUTE_ALL });
  return { plan, usePlanner: true, runner: cached.runner, planner: () => planStepper(plan, cached.layout), cached };
}

/** One sampling run of a latent batch of `batch` images (the text embeddings are broadcast over it). */
async function generate(model: DiffusionModel, p: Prepared, sampler: string, text: Tensor, neg: Tensor, seed: number, batch = 1) {
  const [h, w] = model.io.unet.fixedLatentSize ?? [64, 64];
  const shape = [batch, model.io.unet.latentChannels, h, w];
  const result = await sample({
    unet: p.runner,
    scheduler: schedulerForKSampler({ sampler_name: sampler, scheduler: SCHEDULER, steps: STEPS, denoise: 1 }, model.schedulerConfig),
    positive: text,
    negative: neg,
    cfg: CFG,
    latent: zeros(shape),
    noise: randn(shape, seed),
    ...(p.usePlanner ? { planner: p.planner() } : {}),
  });
  return result.latent;
}

// ---- child: peak RSS of one configuration ---------------------------------------------------------------
if (args[0] === '--child') {
  const config = args[1] as Config;
  const sampler = args[2]!;
  const model = await openModelFolder(modelDir, { pool });
  const p = await prepare(model, config);
  const text = (await encodePrompt(model, 'a large red circle at the top left on a gray background')).hiddenStates;
  const neg = (await encodePrompt(model, '')).hiddenStates;
  await generate(model, p, sampler, text, neg, 1, BATCH);
  console.log(JSON.stringify({ peakRssMB: peakResidentBytes() / 2 ** 20 }));
  process.exit(0);
}

// ---- MACs from the graphs --------------------------------------------------------------------------------
const macCounter = new PlanMacCounter(loadModel(join(modelDir, 'unet', 'model.onnx')));
function planMacs(plan: ExecutionPlan): { weight: number; total: number } {
  const [h, w] = model.io.unet.fixedLatentSize ?? [64, 64];
  const f = model.io.vae.scaleFactor;
  return macCounter.planMacs(plan, { height: h * f, width: w * f, vaeScale: f });
}

// ---- main ------------------------------------------------------------------------------------------------
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
function psnr(a: Uint8Array, b: Uint8Array): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  return se === 0 ? Infinity : 10 * Math.log10((255 * 255) / (se / a.length));
}

let failed = false;
const model = await openModelFolder(modelDir, { pool });
const domain = loadDomain(join(modelDir, 'domain.json'));
const random = rng(4321);
const captions = Array.from({ length: IMAGES }, () => formatCaption(sampleScene(domain, random).caption, domain));
const texts = await Promise.all(captions.map(async (c) => (await encodePrompt(model, c)).hiddenStates));
const neg = (await encodePrompt(model, '')).hiddenStates;
const prepared = new Map<Config, Prepared>();
for (const c of CONFIGS) prepared.set(c, await prepare(model, c));

console.log(`${modelDir}, ${STEPS} steps, scheduler ${SCHEDULER}, cfg ${CFG}; ${IMAGES} images per setting, ${RUNS} timed runs of a batch of ${BATCH} image(s) (time / image = run / ${BATCH}; quality at batch 1); ORT intra-op threads ${pool.settings.intraOpNumThreads}, spinning ${pool.settings.intraOpSpinning ? 'on' : 'off'}; ${COMPUTE_ALL ? 'steps computing every module on a separate If-free graph' : 'caching steps on the If-gated graph'}; load average ${loadavg()[0]!.toFixed(1)}`);
for (const sampler of SAMPLERS) {
  // check: a gate past the end is the plain run, byte for byte
  const offPlan = planTgate({ steps: STEPS, gateStep: STEPS + 5 });
  const off: Prepared = { ...prepared.get('plain')!, plan: offPlan, usePlanner: true, planner: () => planStepper(offPlan, null) };
  const a = await generate(model, prepared.get('plain')!, sampler, texts[0]!, neg, 7);
  const b = await generate(model, off, sampler, texts[0]!, neg, 7);
  if (!a.data.every((v, i) => v === b.data[i])) {
    console.error(`FAIL ${sampler}: a gate past the last step did not give the plain latent`);
    failed = true;
  }

  // time, in alternation
  const times = new Map<Config, number[]>(CONFIGS.map((c) => [c, []]));
  for (const c of CONFIGS) await generate(model, prepared.get(c)!, sampler, texts[0]!, neg, 1, BATCH); // warm-up
  for (let r = 0; r < RUNS; r++) {
    for (let k = 0; k < CONFIGS.length; k++) {
      const c = CONFIGS[(k + r) % CONFIGS.length]!;
      const t0 = performance.now();
      await generate(model, prepared.get(c)!, sampler, texts[0]!, neg, 1, BATCH);
      times.get(c)!.push((performance.now() - t0) / BATCH);
    }
  }

  // quality
  const plainImages: Uint8Array[] = [];
  const rows: string[] = [];
  let plainRss = NaN;
  for (const c of CONFIGS) {
    const verdicts: Verdict[] = [];
    const psnrs: number[] = [];
    for (const [i, caption] of captions.entries()) {
      const latent = await generate(model, prepared.get(c)!, sampler, texts[i]!, neg, 1000 + i);
      const [rgb] = imageToRgb8(await decodeLatents(model, latent), { rounding: 'truncate' });
      if (!latent.data.every(Number.isFinite)) {
        console.error(`FAIL ${sampler}/${c}: non-finite latent for image ${i}`);
        failed = true;
      }
      verdicts.push(judge(caption, { width: rgb!.width, height: rgb!.height, data: rgb!.data }, domain));
      if (c === 'plain') plainImages.push(rgb!.data);
      psnrs.push(psnr(rgb!.data, plainImages[i]!));
    }
    const child = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', c, sampler, '--model', modelDir, ...passThrough], { encoding: 'utf8' });
    const rss = child.status === 0 ? (JSON.parse(child.stdout.trim().split('\n').pop()!) as { peakRssMB: number }).peakRssMB : NaN;
    if (child.status !== 0) console.error(`${c}: the RSS child failed: ${child.stderr.slice(0, 400)}`);
    const t = median(times.get(c)!);
    const tPlain = median(times.get('plain')!);
    const macs = planMacs(prepared.get(c)!.plan);
    const plainMacs = planMacs(prepared.get('plain')!.plan);
    const meanPsnr = psnrs.every((p) => p === Infinity) ? 'inf' : (psnrs.filter(Number.isFinite).reduce((x, y) => x + y, 0) / psnrs.filter(Number.isFinite).length).toFixed(1);
    if (c === 'plain') plainRss = rss;
    const speedup = tPlain / t;
    const macReduction = plainMacs.weight / macs.weight;
    rows.push(
      `| ${sampler} | ${c} | ${t.toFixed(0)} ms | ${speedup.toFixed(2)}x | ${(macs.weight / 1e9).toFixed(3)} G (${macReduction.toFixed(2)}x) | ` +
        `${(100 * speedup / macReduction).toFixed(0)} % | ${(macs.total / 1e9).toFixed(3)} G | ${rss.toFixed(0)} MB (${(rss / plainRss).toFixed(2)}x) | ` +
        `${(100 * tally(verdicts).overall.accuracy).toFixed(1)} % | ${meanPsnr} dB |`,
    );
  }
  console.log('\n| sampler | config | time / image | speed-up | conv/linear MACs (reduction) | speed-up / MAC reduction | all MACs | peak RSS (vs plain) | judge | PSNR vs plain |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}
for (const p of prepared.values()) await p.cached?.release();
await model.release();
process.exit(failed ? 1 : 0);
