/**
 * Where an SD-1.5 UNet call's time goes on onnxruntime, against this machine's matrix-multiply peak: the companion
 * of bench/sd15.ts for finding out what limits its GFLOP/s. It opens the UNet (tools/sd15-unet export) with the
 * engine's session settings plus ORT's profiler, runs two untimed calls and one profiled call, and joins the
 * profile's kernel times to the MACs countMacs (packages/onnx-graph) gives each node at that size and batch.
 *
 *   node --import tsx bench/sd15-profile.ts [--size 512] [--batch 1] [--threads T] [--level all] [--spinning]
 *                                           [--unet dir] [--gemm 2048] [--peak GFLOPS] [--keep-profile]
 *
 * Prints, per part of the network (convolutions, linear layers, the attention products Q·Kᵀ and P·V, softmax, and
 * everything else: norms, element-wise ops, NCHWc layout reorders, shape arithmetic): kernel time, its share, MACs,
 * GFLOP/s, that rate as a share of the peak, and the time it would take at the peak; then the nodes that lose the
 * most time against the peak. The peak is onnxruntime's own N x N MatMul (B an initializer, as a weight is) with
 * the same settings, measured just before and just after the profiled call (the better median), or --peak: e.g.
 * the peak bench/sd15.ts printed, which also measures torch.mm (higher than onnxruntime's MatMul on this machine).
 *
 * Session options: the engine does not expose its ORT options object (packages/diffusion sessions.ts builds it),
 * so this file maps the resolved SessionSettings the same way (providers, optimization level, CPU arena, intra-op
 * threads, spinning) and adds enableProfiling. If sessions.ts changes that mapping, change it here too.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_SESSION_SETTINGS, randn, resolveSessionSettings, type GraphOptimizationLevel } from '../packages/diffusion/src/index.ts';
import { TensorProto_DataType, countMacs, encodeModel, loadModel, makeValueInfo, newGraph, newModel, newNode, newTensor } from '../packages/onnx-graph/src/index.ts';
import { cliOptions } from './measure.ts';

const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));
// The onnxruntime-node the engine loads (a dependency of packages/diffusion, not of the repository root).
type OrtModule = typeof import('../packages/diffusion/node_modules/onnxruntime-node/dist/index.js');
type SessionOptions = import('../packages/diffusion/node_modules/onnxruntime-node/dist/index.js').InferenceSession.SessionOptions;
const ort = createRequire(join(repoRoot, 'packages', 'diffusion', 'package.json'))('onnxruntime-node') as OrtModule;

const args = process.argv.slice(2);
const { option } = cliOptions(args);
const usage = (message: string): never => {
  console.error(`bench/sd15-profile: ${message}`);
  process.exit(64);
};
const wholeNumber = (name: string, fallback: string): number => {
  const v = Number(option(name, fallback));
  if (!Number.isInteger(v) || v < 1) usage(`--${name} must be a whole number >= 1; got "${option(name, fallback)}"`);
  return v;
};
const SIZE = wholeNumber('size', '512');
const BATCH = wholeNumber('batch', '1');
const GEMM = wholeNumber('gemm', '2048');
const PEAK = Number(option('peak', '0'));
if (!(PEAK >= 0)) usage(`--peak must be a number of GFLOP/s; got "${option('peak', '0')}"`);
const unetArg = option('unet', process.env.GATEGRAPH_SD15_UNET || join(repoRoot, '.gategraph', 'sd15-unet', 'unet'));
const unetDir = resolve(unetArg.endsWith('.onnx') ? dirname(unetArg) : unetArg);
const modelPath = join(unetDir, 'model.onnx');
if (SIZE % 64 !== 0) usage(`--size must be a multiple of 64; got ${SIZE}`);
if (!existsSync(modelPath)) {
  console.log(`skipped: no SD-1.5 UNet export at ${unetDir}; make it with /usr/bin/python3 tools/sd15-unet/export_random_unet.py`);
  process.exit(0);
}
const settings = (() => {
  try {
    return resolveSessionSettings({
      intraOpNumThreads: wholeNumber('threads', String(DEFAULT_SESSION_SETTINGS.intraOpNumThreads)),
      graphOptimizationLevel: option('level', DEFAULT_SESSION_SETTINGS.graphOptimizationLevel) as GraphOptimizationLevel,
      intraOpSpinning: args.includes('--spinning'),
    });
  } catch (err) {
    return usage((err as Error).message);
  }
})();
const profileDir = mkdtempSync(join(tmpdir(), 'gategraph-sd15-profile-'));
/** The engine's mapping of SessionSettings to ORT options (packages/diffusion/src/sessions.ts, toOrtOptions). */
const ortOptions = (profile: boolean): SessionOptions => ({
  executionProviders: [...settings.executionProviders!],
  graphOptimizationLevel: settings.graphOptimizationLevel!,
  enableCpuMemArena: settings.enableCpuMemArena!,
  logSeverityLevel: 3,
  intraOpNumThreads: settings.intraOpNumThreads!,
  ...(settings.intraOpSpinning ? {} : { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
  ...(profile ? { enableProfiling: true, profileFilePrefix: join(profileDir, 'unet') } : {}),
});

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

// ---- MACs per node, and which MatMuls multiply by a weight -----------------------------------------------------
const unetFile = loadModel(modelPath);
const macs = countMacs(unetFile.proto, { batch: BATCH, height: SIZE, width: SIZE }, { baseDir: unetFile.baseDir });
const macsOf = new Map(macs.nodes.map((n) => [n.name, n.macs]));
const graph = unetFile.proto.graph!;
const weights = new Set(graph.initializer.map((t) => t.name));
const byNode = new Map(graph.node.map((n) => [n.name, n]));
const producer = new Map(graph.node.flatMap((n) => n.output.map((o) => [o, n.name] as const)));

type Part = 'convolutions' | 'linear layers' | 'attention products (Q·Kᵀ, P·V)' | 'softmax' | 'other (norms, element-wise, layout reorders, shapes)';
const PARTS: Part[] = ['convolutions', 'linear layers', 'attention products (Q·Kᵀ, P·V)', 'softmax', 'other (norms, element-wise, layout reorders, shapes)'];

/**
 * The graph node an ORT kernel event stands for. ORT renames what it rewrites: an NCHWc convolution is named after
 * its output tensor plus "_nchwc" ("/up_blocks.1/upsamplers.0/conv/Conv_output_0_nchwc"), a fused MatMul after the
 * original node plus the fusions' names ("/…/attn1/MatMul/MatmulTransposeFusion//MatMulScaleFusion/").
 */
function originalNode(eventName: string): string | undefined {
  let name = eventName;
  const tensor = /^(.*)_nchwc$/.exec(name)?.[1];
  if (tensor && producer.has(tensor)) return producer.get(tensor);
  while (name) {
    if (byNode.has(name)) return name;
    name = name.replace(/\/+$/, '');
    const cut = name.lastIndexOf('/');
    if (cut <= 0) return undefined;
    name = name.slice(0, cut);
  }
  return undefined;
}

function partOf(op: string, node: string | undefined): Part {
  if (/Conv$/.test(op)) return 'convolutions';
  if (op === 'MatMul' || op === 'FusedMatMul' || op === 'Gemm') {
    const n = node ? byNode.get(node) : undefined;
    return n && !n.input.some((i) => weights.has(i)) && n.opType === 'MatMul' ? 'attention products (Q·Kᵀ, P·V)' : 'linear layers';
  }
  if (op === 'Softmax') return 'softmax';
  return 'other (norms, element-wise, layout reorders, shapes)';
}

// ---- the GEMM peak with the same settings ---------------------------------------------------------------------
const gemmPath = join(profileDir, 'gemm.onnx');
{
  const b = Float32Array.from(randn([GEMM, GEMM], 22).data);
  writeFileSync(
    gemmPath,
    encodeModel(
      newModel(
        newGraph({
          name: 'gemm',
          input: [makeValueInfo('A', TensorProto_DataType.FLOAT, [GEMM, GEMM])],
          output: [makeValueInfo('Y', TensorProto_DataType.FLOAT, [GEMM, GEMM])],
          initializer: [newTensor({ name: 'B', dims: [BigInt(GEMM), BigInt(GEMM)], dataType: TensorProto_DataType.FLOAT, rawData: new Uint8Array(b.buffer) })],
          node: [newNode({ name: 'matmul', opType: 'MatMul', input: ['A', 'B'], output: ['Y'] })],
        }),
        14,
      ),
    ),
  );
}
const gemmSession = await ort.InferenceSession.create(gemmPath, ortOptions(false));
const gemmA = new ort.Tensor('float32', randn([GEMM, GEMM], 21).data, [GEMM, GEMM]);
const gemmPeak = async (): Promise<number> => {
  await gemmSession.run({ A: gemmA });
  const t: number[] = [];
  for (let i = 0; i < 5; i++) {
    const s = performance.now();
    await gemmSession.run({ A: gemmA });
    t.push(performance.now() - s);
  }
  return (2 * GEMM ** 3) / median(t) / 1e6;
};

// ---- the profiled call -----------------------------------------------------------------------------------------
const [load1] = loadavg();
let t0 = performance.now();
const session = await ort.InferenceSession.create(modelPath, ortOptions(true));
console.error(`session open in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
const h = SIZE / 8;
const feeds = {
  sample: new ort.Tensor('float32', randn([BATCH, 4, h, h], 1).data, [BATCH, 4, h, h]),
  timestep: new ort.Tensor('float32', new Float32Array(BATCH).fill(500), [BATCH]),
  encoder_hidden_states: new ort.Tensor('float32', randn([BATCH, 77, 768], 2).data, [BATCH, 77, 768]),
};
// Two untimed calls: onnxruntime's arena and memory pattern for a shape settle only in the second (bench/sd15.ts).
await session.run(feeds);
await session.run(feeds);
const peakBefore = await gemmPeak();
t0 = performance.now();
await session.run(feeds);
const callMs = performance.now() - t0;
const peakAfter = await gemmPeak();
const peak = PEAK || Math.max(peakBefore, peakAfter);
session.endProfiling();
await session.release();
await gemmSession.release();

// ---- join the profile with the MACs --------------------------------------------------------------------------------
const file = readdirSync(profileDir).find((f) => f.startsWith('unet') && f.endsWith('.json'));
if (!file) throw new Error(`no profile written in ${profileDir}`);
interface Event {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string };
}
const events = JSON.parse(readFileSync(join(profileDir, file), 'utf8')) as Event[];
const run = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').at(-1)!;
const parts = new Map(PARTS.map((p) => [p, { us: 0, macs: 0 }]));
const nodes: Array<{ name: string; op: string; us: number; macs: number }> = [];
const unmapped: string[] = [];
for (const e of events) {
  if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < run.ts || e.ts > run.ts + run.dur) continue;
  const op = e.args?.op_name ?? '?';
  const name = e.name.slice(0, -'_kernel_time'.length);
  const node = originalNode(name);
  const m = node ? (macsOf.get(node) ?? 0) : 0;
  if (/Conv$|MatMul$|^Gemm$/.test(op) && !m && !/^(out_sample|sample)/.test(name)) unmapped.push(`${op} ${name}`);
  const part = parts.get(partOf(op, node))!;
  part.us += e.dur;
  part.macs += m;
  nodes.push({ name, op, us: e.dur, macs: m });
}
if (args.includes('--keep-profile')) console.log(`profile: ${join(profileDir, file)}`);
else rmSync(profileDir, { recursive: true, force: true });

const kernelS = [...parts.values()].reduce((a, p) => a + p.us, 0) / 1e6;
const flops = 2 * macs.total;
console.log(
  `${unetDir}: ${SIZE}x${SIZE} batch ${BATCH}, ${settings.intraOpNumThreads} threads, level ${settings.graphOptimizationLevel}, spinning ${settings.intraOpSpinning ? 'on' : 'off'}; ` +
    `load average ${load1!.toFixed(2)} on ${availableParallelism()} cores`,
);
console.log(
  `one call ${(callMs / 1000).toFixed(2)} s (kernels ${kernelS.toFixed(2)} s), ${(flops / 1e9).toFixed(0)} GFLOP: ${(flops / callMs / 1e6).toFixed(1)} GFLOP/s; ` +
    `onnxruntime MatMul ${GEMM}: ${peakBefore.toFixed(1)} GFLOP/s before, ${peakAfter.toFixed(1)} after; ` +
      `peak ${peak.toFixed(1)} GFLOP/s (${PEAK ? '--peak' : 'the better of the two'}): the call reaches ${((100 * flops) / callMs / 1e6 / peak).toFixed(0)} % of it`,
);
console.log('\n| part | kernel time | share of time | G MACs | GFLOP/s | share of peak | time at peak |');
console.log('|---|---|---|---|---|---|---|');
for (const [name, p] of parts) {
  const rate = p.macs ? (2 * p.macs) / p.us / 1e3 : 0;
  console.log(
    `| ${name} | ${(p.us / 1e6).toFixed(2)} s | ${((100 * p.us) / 1e6 / kernelS).toFixed(1)} % | ${(p.macs / 1e9).toFixed(1)} | ` +
      `${p.macs ? rate.toFixed(1) : '-'} | ${p.macs ? `${((100 * rate) / peak).toFixed(0)} %` : '-'} | ${((2 * p.macs) / peak / 1e9).toFixed(2)} s |`,
  );
}
console.log(`\nall: ${kernelS.toFixed(2)} s of kernels; at the peak the MACs would take ${(flops / peak / 1e9).toFixed(2)} s`);
console.log('\nnodes losing the most time against the peak (kernel time - MACs at the peak):');
for (const n of nodes.map((n) => ({ ...n, lost: n.us / 1e6 - (2 * n.macs) / peak / 1e9 })).sort((a, b) => b.lost - a.lost).slice(0, 12)) {
  console.log(
    `  ${n.lost.toFixed(3)} s  ${n.op} ${n.name}  (${(n.us / 1e3).toFixed(0)} ms${n.macs ? `, ${((2 * n.macs) / n.us / 1e3).toFixed(0)} GFLOP/s` : ''})`,
  );
}
if (unmapped.length) console.log(`\nnote: ${unmapped.length} matrix kernels not mapped to a graph node (their MACs are missing above), e.g. ${unmapped.slice(0, 3).join('; ')}`);
