/**
 * TGATE on a UNet with Stable Diffusion 1.5's exact architecture (random weights, exported by
 * tools/sd15-unet/export_random_unet.py), set beside the TGATE paper's SD-1.5 rows (T-GATE README: 16.938T MACs
 * plain, 9.875T with TGATE, 7.032 s vs 4.313 s = 1.63x on a 1080 Ti). TGATE here is v1 as that
 * row: cross-attention cached at the gate and reused after it, one pass per step after the gate (CacheCrossAttn
 * only, `cacheSelfAttn: false`). It prints:
 *
 *   1. MACs per image at 512x512, 25 steps, CFG, counted from the graphs (onnx-graph countMacs): every planned
 *      step's graph form (the UNet, or the attn2-reuse graph after the gate) at its batch (2 rows with CFG, 1
 *      after the gate); conv/linear MACs (what the paper's tool counts, see the explanation it prints) and with
 *      the attention products; plain and TGATE gate 5, 8, 10, each with its ratio to plain; which gate's total
 *      is closest to the paper's 9.875T (searched over every gate 1..24).
 *      The MAC table also has DeepCache (interval 3, branch 0) and TGATE gate 10 + DeepCache (T-GATE's combination).
 *   2. Wall-clock of a whole 25-step run (DDIM, scheduler normal, cfg 7.5) at --px (default 256): plain, TGATE
 *      gate 10 and gate 5, DeepCache 3/0, TGATE gate 10 + DeepCache 3/0, in alternating rounds (round r rotates
 *      the order), median per configuration, the ratio plain / configuration and that ratio as a share of the
 *      configuration's MAC reduction, beside the papers' figures (TGATE 1.63x on SD-1.5; DeepCache + TGATE
 *      3.63x on SD-XL, the only combined row the T-GATE README gives). Text embeddings are seeded random [1, 77, 768]
 *      tensors (there is no text encoder for this UNet; the work per step does not depend on their values).
 *      Optional (--rss): peak RSS (VmHWM: peakResidentBytes) of a child process per configuration that samples
 *      one image; a gated child never opens the plain session.
 *
 * Checks (exit 1): the discovered attention modules carry diffusers' export scope names
 * (`/down_blocks.0/attentions.0/transformer_blocks.0/attn2/to_q/MatMul`, ...: 16 attn1 + 16 attn2 where SD-1.5 has
 * them); every sampled latent is finite.
 *
 *   node --import tsx bench/tgate-sd15.ts [--unet dir] [--px 256] [--rounds 2] [--macs-only] [--rss]
 *
 * UNet: --unet, else GATEGRAPH_SD15_UNET (the UNet's folder or its model.onnx), else .gategraph/sd15-unet/unet.
 * Without it the bench says how to export it and exits 0 (a fresh clone has no 3.4 GB export).
 *
 * Sessions: the plain UNet and the If-gated graph hold the same 3.4 GB of weights; only one is open at a time.
 * prepareCachedUnet closes the plain session, and the gated session, released after its run, stays open idle
 * until the plain UNet reopens (SessionPool, "Idle sessions"); DeepCache adds its shallow graph (branch 0:
 * conv_in, the first layer of down_blocks.0, the last two layers of up_blocks.3, conv_out). Each timed run is
 * preceded by an untimed warm-up of its configuration (a short plan running each graph form it uses), which
 * also opens its sessions: session switches are not in the times.
 */
import { existsSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  combinePlans,
  isPlainPlan,
  planDeepCache,
  getDefaultSessionPool,
  openUnet,
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
import { PlanMacCounter, type PlanMacs } from './plan-macs.ts';
import { cliOptions, median } from './measure.ts';
import { childPeakRss, childUnetIo, prepareRun, timeRounds, unopenedUnet, type Run } from './unet-bench-kit.ts';
import { peakResidentBytes } from '../packages/server/src/process-memory.ts';

const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));
const args = process.argv.slice(2);
const { option, positiveInt } = cliOptions(args);

const unetArg = option('unet', process.env.GATEGRAPH_SD15_UNET || join(repoRoot, '.gategraph', 'sd15-unet', 'unet'));
const unetDir = resolve(unetArg.endsWith('.onnx') ? dirname(unetArg) : unetArg);
const PX = positiveInt('px', '256');
const ROUNDS = positiveInt('rounds', '2');
const MACS_ONLY = args.includes('--macs-only');
const RSS = args.includes('--rss');

const STEPS = 25;
const CFG = 7.5;
const SAMPLER = 'ddim';
const SCHEDULER = 'normal';
const MAC_PX = 512;
const TABLE_GATES = [5, 8, 10];
/** The T-GATE README's SD-1.5 rows (MACs by calflops; latency on a 1080 Ti). */
const PAPER = { plainMacs: 16.938e12, tgateMacs: 9.875e12, plainSeconds: 7.032, tgateSeconds: 4.313, gate: 10 };
const PAPER_RATIO = PAPER.tgateMacs / PAPER.plainMacs;
const PAPER_SPEEDUP = PAPER.plainSeconds / PAPER.tgateSeconds;

if (PX % 8 !== 0) {
  console.error(`--px must be a multiple of 8 (the VAE's scale: latents are px/8); got ${PX}`);
  process.exit(2);
}
if (!existsSync(join(unetDir, 'model.onnx'))) {
  console.log(
    `skipped: no SD-1.5 UNet export at ${unetDir} (model.onnx missing). Write it with ` +
      '`/usr/bin/python3 tools/sd15-unet/export_random_unet.py` (3.4 GB, random weights), or point --unet / GATEGRAPH_SD15_UNET at one.',
  );
  process.exit(0);
}

/** plain: every step CFG on the UNet. gate m: m CFG steps (the last one caches attn2), then one pass reusing it. */
function planFor(gate: number | undefined, steps = STEPS): ExecutionPlan {
  return gate === undefined ? planTgate({ steps, gateStep: steps }) : planTgate({ steps, gateStep: gate, cacheSelfAttn: false });
}
/** DeepCache as bench/tgate.ts runs it (interval 3, branch 0), alone or with TGATE as T-GATE combines them. */
const deepCache = (steps: number) => planDeepCache({ steps, cacheInterval: 3, cacheBranchId: 0 });
const withDeepCache = (gate: number, steps: number) =>
  combinePlans(planTgate({ steps, gateStep: gate, spInterval: 1, warmUp: 0, cacheSelfAttn: false }), deepCache(steps));

interface Config {
  name: string;
  /** The 25-step plan. */
  plan: ExecutionPlan;
  /** A short plan that opens and warms the configuration's sessions (every graph form the plan runs). */
  warm: ExecutionPlan;
  /** The paper's figure to set beside it. */
  paper?: string;
}
const TIMED: Config[] = [
  { name: 'plain', plan: planFor(undefined), warm: planFor(undefined, 1) },
  { name: 'tgate gate 10', plan: planFor(10), warm: planFor(1, 2), paper: `${PAPER_SPEEDUP.toFixed(2)}x (${PAPER.plainSeconds} s / ${PAPER.tgateSeconds} s, 1080 Ti)` },
  { name: 'tgate gate 5', plan: planFor(5), warm: planFor(1, 2) },
  { name: 'deepcache 3/0', plan: deepCache(STEPS), warm: deepCache(2), paper: 'DeepCache paper: 2.3x (SD-1.5, its settings)' },
  { name: 'tgate gate 10 + deepcache 3/0', plan: withDeepCache(10, STEPS), warm: withDeepCache(1, 5), paper: 'SD-XL: 3.63x (53.187 s / 14.666 s)' },
];
const configNamed = (name: string) => TIMED.find((c) => c.name === name);

// ---- sampling runs --------------------------------------------------------------------------------------
const latentShape = [1, 4, PX / 8, PX / 8];
// Stand-ins for CLIP ViT-L/14's hidden states (SD-1.5's text encoder): [1, 77, 768], seeded.
const positive = randn([1, 77, 768], 101);
const negative = randn([1, 77, 768], 102);

async function generate(unet: OpenedUnet, run: Run, seed: number): Promise<Tensor> {
  if (unet.io.unet.crossAttentionDim !== 768) throw new Error(`${unetDir}: cross-attention dim ${unet.io.unet.crossAttentionDim}, not SD-1.5's 768`);
  const result = await sample({
    unet: run.runner,
    scheduler: schedulerForKSampler({ sampler_name: SAMPLER, scheduler: SCHEDULER, steps: run.plan.stepCount, denoise: 1 }),
    positive,
    negative,
    cfg: CFG,
    latent: zeros(latentShape),
    noise: randn(latentShape, seed),
    ...(run.planner ? { planner: run.planner() } : {}),
  });
  return result.latent;
}

// ---- child: peak RSS of one configuration while it samples -----------------------------------------------
if (args[0] === '--child') {
  const config = configNamed(args[1]!);
  if (!config) throw new Error(`--child: no configuration named "${args[1]}"`);
  let unet: OpenedUnet;
  if (isPlainPlan(config.plan)) {
    unet = await openUnet(unetDir);
  } else {
    unet = unopenedUnet(unetDir, childUnetIo(), basename(unetDir) === 'unet' ? basename(dirname(unetDir)) : basename(unetDir));
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
  // SD-1.5: attentions in down_blocks 0-2 (2 each), the mid block (1) and up_blocks 1-3 (3 each).
  const blocks = [
    ...[0, 1, 2].flatMap((b) => [0, 1].map((a) => `down_blocks.${b}/attentions.${a}`)),
    'mid_block/attentions.0',
    ...[1, 2, 3].flatMap((b) => [0, 1, 2].map((a) => `up_blocks.${b}/attentions.${a}`)),
  ];
  const nodes = new Map((unetFile.proto.graph?.node ?? []).map((n) => [n.name, n]));
  for (const kind of ['attn1', 'attn2'] as const) {
    const expected = blocks.map((b) => `${b}/transformer_blocks.0/${kind}`);
    const found = structure.attention.filter((a) => a.kind === kind).map((a) => a.path);
    if (JSON.stringify(found) !== JSON.stringify(expected)) {
      fail(`the ${kind} modules discovered are not SD-1.5's diffusers scopes:\n  found    ${found.join(', ')}\n  expected ${expected.join(', ')}`);
    }
    // Each module's projections by their full node names, and inside the module discovery found.
    const problems: string[] = [];
    for (const path of expected) {
      for (const proj of ['to_q', 'to_k', 'to_v', 'to_out.0']) {
        const name = `/${path}/${proj}/MatMul`;
        const node = nodes.get(name);
        const module = node && structure.pathOf(node);
        if (!node) problems.push(`no node named ${name}`);
        else if (!module || (module !== path && !module.startsWith(`${path}/`))) problems.push(`node ${name} lies in module ${module ?? '(none)'}, not ${path}`);
      }
    }
    if (problems.length) fail(`${problems.length} ${kind} projection nodes do not carry diffusers' export names: ${problems.slice(0, 3).join('; ')}${problems.length > 3 ? '; ...' : ''}`);
  }
  if (!failed) {
    console.log(
      `scope names: ${structure.attention.length} attention modules (16 attn1 + 16 attn2) with diffusers' export names, ` +
        'e.g. /down_blocks.0/attentions.0/transformer_blocks.0/attn2/to_q/MatMul, /mid_block/attentions.0/transformer_blocks.0/attn2/to_k/MatMul, ' +
        '/up_blocks.3/attentions.2/transformer_blocks.0/attn2/to_out.0/MatMul',
    );
  }
}
if (failed) process.exit(1);

// ---- MACs from the graphs -------------------------------------------------------------------------------
const macCounter = new PlanMacCounter(unetFile, structure);
const macsOf = (form: string, batch: number, px: number) => macCounter.macsOf(form, { batch, height: px, width: px });
const planMacs = (plan: ExecutionPlan, px: number): PlanMacs => macCounter.planMacs(plan, { height: px, width: px });

const T = (n: number) => `${(n / 1e12).toFixed(3)}T`;
const G = (n: number) => `${(n / 1e9).toFixed(2)} G`;
const plainMacs = planMacs(planFor(undefined), MAC_PX);
const gateMacs = new Map<number, ReturnType<typeof planMacs>>();
for (let g = 1; g < STEPS; g++) gateMacs.set(g, planMacs(planFor(g), MAC_PX));

console.log(`\n${unetDir}: SD-1.5 UNet, ${MAC_PX}x${MAC_PX}, ${STEPS} steps, CFG; MACs per image counted from the graphs`);
console.log(
  `one forward, batch 1: UNet ${G(macsOf('', 1, MAC_PX).weight)} conv/linear (${G(macsOf('', 1, MAC_PX).total)} with attention products); ` +
    `attn2-reuse graph ${G(macsOf('x', 1, MAC_PX).weight)} (${G(macsOf('x', 1, MAC_PX).total)}); ` +
    `DeepCache branch-0 shallow graph ${G(macsOf('d0', 1, MAC_PX).weight)} (${G(macsOf('d0', 1, MAC_PX).total)})`,
);
console.log('\n| configuration | CFG + single steps | conv/linear MACs | ratio | with attention products | ratio |');
console.log('|---|---|---|---|---|---|');
const row = (name: string, m: ReturnType<typeof planMacs>) =>
  console.log(
    `| ${name} | ${m.cfgSteps} + ${m.singleSteps} | ${T(m.weight)} | ${(m.weight / plainMacs.weight).toFixed(3)} | ${T(m.total)} | ` +
      `${(m.total / plainMacs.total).toFixed(3)} |`,
  );
row('plain', plainMacs);
for (const g of TABLE_GATES) row(`TGATE gate ${g}`, gateMacs.get(g)!);
for (const c of TIMED.filter((c) => c.plan.deepCache)) row(c.name, planMacs(c.plan, MAC_PX));
console.log(`| paper: SD-1.5 (calflops) | 25 + 0 | ${T(PAPER.plainMacs)} | 1.000 | | |`);
console.log(`| paper: SD-1.5 w/ TGATE (gate ${PAPER.gate} stated) | | ${T(PAPER.tgateMacs)} | ${PAPER_RATIO.toFixed(3)} | | |`);
const [closestGate, closest] = [...gateMacs.entries()].reduce((best, e) =>
  Math.abs(e[1].weight - PAPER.tgateMacs) < Math.abs(best[1].weight - PAPER.tgateMacs) ? e : best,
);
const paperGate = gateMacs.get(PAPER.gate)!;
console.log(
  `\nWhich gate gives the paper's ${T(PAPER.tgateMacs)} (ratio ${PAPER_RATIO.toFixed(3)}): gate ${closestGate} ` +
    `(${closest.cfgSteps} CFG steps + ${closest.singleSteps} single steps = ${T(closest.weight)}, ratio ${(closest.weight / plainMacs.weight).toFixed(3)}; ` +
    `closest of gates 1..${STEPS - 1}). The paper's stated gate ${PAPER.gate} counts ${T(paperGate.weight)} (ratio ${(paperGate.weight / plainMacs.weight).toFixed(3)}) ` +
    `by the same graphs: its 9.875T matches gate ${closestGate}, not gate ${PAPER.gate}.`,
);
console.log(
  'What the paper counts: its MACs are calflops\' (T-GATE README), which counts the MACs of F.linear, the convolutions and ' +
    'explicit matrix products (torch.matmul, addmm, baddbmm) but has no rule for F.scaled_dot_product_attention, the attention ' +
    'diffusers runs on torch 2 (AttnProcessor2_0; the paper lists torch 2.2, diffusers 0.27). So its figure is the UNet\'s conv/linear ' +
    `MACs: ours are ${T(plainMacs.weight)}, the paper's ${T(PAPER.plainMacs)} (${((100 * Math.abs(PAPER.plainMacs - plainMacs.weight)) / PAPER.plainMacs).toFixed(2)} % apart); ` +
    `with the attention products (Q·Kᵀ, P·V) plain would be ${T(plainMacs.total)}.`,
);

if (MACS_ONLY) process.exit(failed ? 1 : 0);

// ---- wall-clock -----------------------------------------------------------------------------------------

const unet = await openUnet(unetDir);
const threads = getDefaultSessionPool().settings.intraOpNumThreads ?? availableParallelism();
console.log(
  `\nwall-clock: ${PX}x${PX} (latent ${PX / 8}x${PX / 8}), ${STEPS} steps, ${SAMPLER}/${SCHEDULER}, cfg ${CFG}, ${ROUNDS} round${ROUNDS > 1 ? 's' : ''}, ` +
    `onnxruntime CPU ${threads} intra-op threads; load average ${loadavg()[0]!.toFixed(1)}`,
);
const times = await timeRounds(unet, TIMED, ROUNDS, generate, (config, latent) => {
  if (!latent.data.every(Number.isFinite)) fail(`${config.name}: the latent has non-finite values`);
});
await unet.release();

const rssOf = (config: Config, io: UnetIo): string => (RSS ? childPeakRss(fileURLToPath(import.meta.url), config.name, unetDir, PX, io) : '');

const tPlain = median(times.get('plain')!);
const plainAtPx = planMacs(planFor(undefined), PX);
console.log(
  `\n| configuration | median time / image | runs | speed-up (plain / config) | conv/linear MAC reduction at ${PX} px | speed-up / MAC reduction | paper speed-up |${RSS ? ' peak RSS (child process) |' : ''}`,
);
console.log(`|---|---|---|---|---|---|---|${RSS ? '---|' : ''}`);
for (const config of TIMED) {
  const ts = times.get(config.name)!;
  const t = median(ts);
  const macs = planMacs(config.plan, PX);
  const paper = config.paper ?? (isPlainPlan(config.plan) ? '1.00x' : '');
  console.log(
    `| ${config.name} | ${(t / 1000).toFixed(2)} s | ${ts.map((x) => (x / 1000).toFixed(2)).join(', ')} | ${(tPlain / t).toFixed(2)}x | ` +
      `${(plainAtPx.weight / macs.weight).toFixed(2)}x | ${((100 * (tPlain / t)) / (plainAtPx.weight / macs.weight)).toFixed(0)} % | ${paper} |${RSS ? ` ${rssOf(config, unet.io.unet)} |` : ''}`,
  );
}
process.exit(failed ? 1 : 0);
