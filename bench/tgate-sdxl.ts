/**
 * TGATE and DeepCache on a UNet with SDXL's exact architecture (2.567 B parameters, random weights, exported by
 * `tools/test-models/make_test_models.py --scale full --only sdxl`), beside the TGATE paper's SDXL rows (T-GATE
 * README: 149.438T MACs plain, 95.988T with TGATE, 57.888T with DeepCache, 43.868T with DeepCache + TGATE;
 * 53.187 s plain, 31.597 s TGATE, 14.666 s DeepCache + TGATE on a 1080 Ti). It prints:
 *
 *   1. The scope check: the attention modules discovered carry diffusers' export names (70 attn1 + 70 attn2:
 *      down_blocks.1 and .2, the mid block and up_blocks.0 and .1, with 2 or 10 transformer blocks each).
 *   2. MACs per image at 1024x1024, 25 steps, CFG, counted from the graphs each planned step runs (onnx-graph
 *      countMacs, bench/plan-macs.ts): plain; TGATE v2's SDXL defaults (gate 10, self-attention cached every 5th
 *      step after a warm-up of 2, fi 1); DeepCache interval 3, branch 0; TGATE gate 10 + DeepCache 3/0 (T-GATE's
 *      combination); each with its ratio to plain, beside the paper's figures.
 *   3. Wall-clock of whole 25-step runs at --px (default 256: the largest that runs in minutes on a small CPU
 *      machine), alternating configurations each round, medians, the speed-up and its share of the MAC
 *      reduction at that size, beside the paper's speed-ups. Text conditioning is seeded random tensors of SDXL's
 *      shapes ([1, 77, 2048] context, [1, 1280] pooled) with time_ids of the image size; the work per step does
 *      not depend on their values. Optional (--rss): the peak RSS of a child process per configuration.
 *
 *   node --import tsx bench/tgate-sdxl.ts [--unet dir] [--px 256] [--rounds 2] [--macs-only] [--rss]
 *
 * UNet: --unet, else GATEGRAPH_SDXL_UNET, else .gategraph/test-models-full/sdxl/unet. Without it the bench says
 * how to export it and exits 0 (a fresh clone has no 13 GB export).
 */
import { existsSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  combinePlans,
  getDefaultSessionPool,
  isPlainPlan,
  openUnet,
  planDeepCache,
  planTgate,
  randn,
  sample,
  schedulerForKSampler,
  zeros,
  type ExecutionPlan,
  type OpenedUnet,
  type Tensor,
  type UnetIo,
} from '../packages/diffusion/src/index.ts';
import { discoverUNet, loadModel } from '../packages/onnx-graph/src/index.ts';
import { peakResidentBytes } from '../packages/server/src/process-memory.ts';
import { PlanMacCounter, type PlanMacs } from './plan-macs.ts';
import { cliOptions, median } from './measure.ts';
import { childPeakRss, childUnetIo, prepareRun, timeRounds, unopenedUnet, type Run } from './unet-bench-kit.ts';

const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));
const args = process.argv.slice(2);
const { option, positiveInt, flag } = cliOptions(args);
const unetArg = option('unet', process.env.GATEGRAPH_SDXL_UNET || join(repoRoot, '.gategraph', 'test-models-full', 'sdxl', 'unet'));
const unetDir = resolve(unetArg.endsWith('.onnx') ? dirname(unetArg) : unetArg);
const PX = positiveInt('px', '256');
const ROUNDS = positiveInt('rounds', '2');
const MACS_ONLY = flag('macs-only');
const RSS = flag('rss');

const STEPS = 25;
const CFG = 5;
const MAC_PX = 1024;
/** The T-GATE README's SDXL rows (MACs by calflops; latency on a 1080 Ti). */
const PAPER = { plain: 149.438e12, tgate: 95.988e12, deepcache: 57.888e12, both: 43.868e12, plainSeconds: 53.187, tgateSeconds: 31.597, bothSeconds: 14.666 };

if (PX % 8 !== 0) {
  console.error(`--px must be a multiple of 8 (the VAE's scale: latents are px/8); got ${PX}`);
  process.exit(2);
}
if (!existsSync(join(unetDir, 'model.onnx'))) {
  console.log(
    `skipped: no SDXL UNet export at ${unetDir} (model.onnx missing). Write it with ` +
      '`/usr/bin/python3 tools/test-models/make_test_models.py --out .gategraph/test-models-full --scale full --only sdxl` ' +
      '(13 GB, random weights, about 4 minutes and 16 GB of memory), or point --unet / GATEGRAPH_SDXL_UNET at one.',
  );
  process.exit(0);
}

/** TGATE v2's SDXL defaults: gate 10, self-attention cached every 5th step after 2 warm-up steps, fi 1. */
const tgate = (steps: number) => planTgate({ steps, gateStep: Math.min(10, steps), spInterval: 5, fiInterval: 1, warmUp: Math.min(2, steps), cacheSelfAttn: true });
const deepCache = (steps: number) => planDeepCache({ steps, cacheInterval: 3, cacheBranchId: 0 });
/** T-GATE's combination: cross-attention cached at the gate, DeepCache 3/0 (no self-attention caching). */
const both = (steps: number, gate = 10) =>
  combinePlans(planTgate({ steps, gateStep: Math.min(gate, steps), spInterval: 1, warmUp: 0, cacheSelfAttn: false }), deepCache(steps));

interface Config {
  name: string;
  plan: ExecutionPlan;
  /** A short plan that opens and warms the configuration's sessions (every graph form the plan runs). */
  warm: ExecutionPlan;
  paperMacs: number;
  paperSpeedup?: string;
}
const CONFIGS: Config[] = [
  { name: 'plain', plan: planTgate({ steps: STEPS, gateStep: STEPS }), warm: planTgate({ steps: 1, gateStep: 1 }), paperMacs: PAPER.plain, paperSpeedup: '1.00x' },
  { name: 'TGATE (v2 SDXL defaults)', plan: tgate(STEPS), warm: planTgate({ steps: 8, gateStep: 7, spInterval: 5, fiInterval: 1, warmUp: 1, cacheSelfAttn: true }), paperMacs: PAPER.tgate, paperSpeedup: `${(PAPER.plainSeconds / PAPER.tgateSeconds).toFixed(2)}x` },
  { name: 'DeepCache 3/0', plan: deepCache(STEPS), warm: deepCache(2), paperMacs: PAPER.deepcache },
  { name: 'TGATE + DeepCache', plan: both(STEPS), warm: both(5, 1), paperMacs: PAPER.both, paperSpeedup: `${(PAPER.plainSeconds / PAPER.bothSeconds).toFixed(2)}x` },
];

const latentShape = [1, 4, PX / 8, PX / 8];
// Stand-ins for SDXL's conditioning: both encoders' hidden states joined [1, 77, 2048], bigG's pooled [1, 1280].
const positive = randn([1, 77, 2048], 101);
const negative = randn([1, 77, 2048], 102);
const timeIds = { data: Float32Array.from([PX, PX, 0, 0, PX, PX]), shape: [1, 6] };

async function generate(unet: OpenedUnet, run: Run, seed: number): Promise<Tensor> {
  const added = unet.io.unet.added;
  if (!added || unet.io.unet.crossAttentionDim !== 2048) throw new Error(`${unetDir}: not an SDXL UNet (cross-attention ${unet.io.unet.crossAttentionDim}, added conditioning ${added ? 'yes' : 'no'})`);
  const result = await sample({
    unet: run.runner,
    scheduler: schedulerForKSampler({ sampler_name: 'euler', scheduler: 'normal', steps: run.plan.stepCount, denoise: 1 }),
    positive,
    negative,
    added: {
      positive: { textEmbeds: randn([1, added.textEmbedsDim], 103), timeIds },
      negative: { textEmbeds: randn([1, added.textEmbedsDim], 104), timeIds },
    },
    cfg: CFG,
    latent: zeros(latentShape),
    noise: randn(latentShape, seed),
    ...(run.planner ? { planner: run.planner() } : {}),
  });
  return result.latent;
}

// ---- child: peak RSS of one configuration while it samples -----------------------------------------------
if (args[0] === '--child') {
  const config = CONFIGS.find((c) => c.name === args[1]);
  if (!config) throw new Error(`--child: no configuration named "${args[1]}"`);
  let unet: OpenedUnet;
  if (isPlainPlan(config.plan)) {
    unet = await openUnet(unetDir);
  } else {
    unet = unopenedUnet(unetDir, childUnetIo(), basename(dirname(unetDir)));
  }
  const run = await prepareRun(unet, config.plan);
  await generate(unet, run, 1);
  await run.done();
  console.log(JSON.stringify({ peakRssMB: peakResidentBytes() / 2 ** 20 }));
  process.exit(0);
}

// ---- scope names ----------------------------------------------------------------------------------------
let failed = false;
const fail = (message: string) => {
  console.error(`FAIL ${message}`);
  failed = true;
};
const unetFile = loadModel(join(unetDir, 'model.onnx'));
const structure = discoverUNet(unetFile.proto);
{
  // SDXL: 2 attentions x 2 blocks in down_blocks.1, 2 x 10 in down_blocks.2, 1 x 10 in the mid block, 3 x 10 in
  // up_blocks.0 and 3 x 2 in up_blocks.1.
  const layout: Array<[string, number, number]> = [
    ['down_blocks.1', 2, 2],
    ['down_blocks.2', 2, 10],
    ['mid_block', 1, 10],
    ['up_blocks.0', 3, 10],
    ['up_blocks.1', 3, 2],
  ];
  const blocks = layout.flatMap(([block, attentions, depth]) =>
    Array.from({ length: attentions }, (_, a) => Array.from({ length: depth }, (_, t) => `${block}/attentions.${a}/transformer_blocks.${t}`)).flat(),
  );
  const nodes = new Map((unetFile.proto.graph?.node ?? []).map((n) => [n.name, n]));
  for (const kind of ['attn1', 'attn2'] as const) {
    const expected = blocks.map((b) => `${b}/${kind}`);
    const found = structure.attention.filter((a) => a.kind === kind).map((a) => a.path);
    if (JSON.stringify([...found].sort()) !== JSON.stringify([...expected].sort())) {
      fail(`the ${kind} modules discovered are not SDXL's diffusers scopes: found ${found.length}, expected ${expected.length} (${expected.filter((e) => !found.includes(e)).slice(0, 3).join(', ')} missing)`);
    }
    const missing = expected.flatMap((path) => ['to_q', 'to_k', 'to_v', 'to_out.0'].map((p) => `/${path}/${p}/MatMul`)).filter((name) => !nodes.has(name));
    if (missing.length) fail(`${missing.length} ${kind} projection nodes do not carry diffusers' export names, e.g. ${missing.slice(0, 3).join(', ')}`);
  }
  if (!failed) {
    console.log(
      `scope names: ${structure.attention.length} attention modules (70 attn1 + 70 attn2) with diffusers' export names, e.g. ` +
        '/down_blocks.2/attentions.1/transformer_blocks.9/attn2/to_k/MatMul, /mid_block/attentions.0/transformer_blocks.0/attn1/to_q/MatMul',
    );
  }
}
if (failed) process.exit(1);

// ---- MACs from the graphs -------------------------------------------------------------------------------
const macCounter = new PlanMacCounter(unetFile, structure);
const planMacs = (plan: ExecutionPlan, px: number): PlanMacs => macCounter.planMacs(plan, { height: px, width: px });
const T = (n: number) => `${(n / 1e12).toFixed(3)}T`;
const plainMacs = planMacs(CONFIGS[0]!.plan, MAC_PX);
console.log(`\n${unetDir}: SDXL UNet, ${MAC_PX}x${MAC_PX}, ${STEPS} steps, CFG; MACs per image counted from the graphs`);
console.log('\n| configuration | CFG + single steps | conv/linear MACs | ratio | with attention products | ratio | paper (calflops) | paper ratio |');
console.log('|---|---|---|---|---|---|---|---|');
for (const config of CONFIGS) {
  const m = config === CONFIGS[0] ? plainMacs : planMacs(config.plan, MAC_PX);
  console.log(
    `| ${config.name} | ${m.cfgSteps} + ${m.singleSteps} | ${T(m.weight)} | ${(m.weight / plainMacs.weight).toFixed(3)} | ${T(m.total)} | ${(m.total / plainMacs.total).toFixed(3)} | ` +
      `${T(config.paperMacs)} | ${(config.paperMacs / PAPER.plain).toFixed(3)} |`,
  );
}
{
  // Which gate of the combination gives the paper's figure (as bench/tgate-sd15.ts finds for SD-1.5's TGATE row).
  const byGate = Array.from({ length: STEPS - 1 }, (_, i) => [i + 1, planMacs(both(STEPS, i + 1), MAC_PX).weight] as const);
  const [gate, macs] = byGate.reduce((best, e) => (Math.abs(e[1] - PAPER.both) < Math.abs(best[1] - PAPER.both) ? e : best));
  console.log(
    `\nTGATE + DeepCache: the paper's ${T(PAPER.both)} is gate ${gate} of this combination (${T(macs)}, closest of gates 1..${STEPS - 1}); ` +
      `gate 10, the gate T-GATE states, counts ${T(planMacs(both(STEPS), MAC_PX).weight)}. The other rows match the paper at the stated settings.`,
  );
  console.log(
    'What is counted: the UNet\'s conv/linear MACs, what calflops counts on torch 2 (it has no rule for scaled_dot_product_attention, see ' +
      'bench/tgate-sd15.ts); with the attention products (Q·Kᵀ, P·V) the figures are in the "with attention products" column.',
  );
}
if (MACS_ONLY) process.exit(0);

// ---- wall-clock -----------------------------------------------------------------------------------------
const unet = await openUnet(unetDir);
const threads = getDefaultSessionPool().settings.intraOpNumThreads ?? availableParallelism();
console.log(
  `\nwall-clock: ${PX}x${PX} (latent ${PX / 8}x${PX / 8}), ${STEPS} steps, euler/normal, cfg ${CFG}, ${ROUNDS} round${ROUNDS > 1 ? 's' : ''}, ` +
    `onnxruntime CPU ${threads} intra-op threads; load average ${loadavg()[0]!.toFixed(1)}`,
);
const times = await timeRounds(unet, CONFIGS, ROUNDS, generate, (config, latent) => {
  if (!latent.data.every(Number.isFinite)) fail(`${config.name}: the latent has non-finite values`);
});
await unet.release();

const rssOf = (config: Config, io: UnetIo): string => (RSS ? childPeakRss(fileURLToPath(import.meta.url), config.name, unetDir, PX, io) : '');
const tPlain = median(times.get('plain')!);
const plainAtPx = planMacs(CONFIGS[0]!.plan, PX);
console.log(`\n| configuration | median time / image | runs | speed-up | conv/linear MAC reduction at ${PX} px | speed-up / MAC reduction | paper speed-up |${RSS ? ' peak RSS |' : ''}`);
console.log(`|---|---|---|---|---|---|---|${RSS ? '---|' : ''}`);
for (const config of CONFIGS) {
  const ts = times.get(config.name)!;
  const t = median(ts);
  const reduction = plainAtPx.weight / planMacs(config.plan, PX).weight;
  console.log(
    `| ${config.name} | ${(t / 1000).toFixed(2)} s | ${ts.map((x) => (x / 1000).toFixed(2)).join(', ')} | ${(tPlain / t).toFixed(2)}x | ${reduction.toFixed(2)}x | ` +
      `${((100 * (tPlain / t)) / reduction).toFixed(0)} % | ${config.paperSpeedup ?? ''} |${RSS ? ` ${rssOf(config, unet.io.unet)} |` : ''}`,
  );
}
process.exit(failed ? 1 : 0);
