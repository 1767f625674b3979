/**
 * One UNet call of Stable Diffusion 1.5's architecture (random weights, tools/sd15-unet/export_random_unet.py) on
 * onnxruntime-node through the engine, against eager PyTorch on the SAME weights (what ComfyUI runs on a CPU), in
 * the same run with the rounds alternating; and how much of this machine's fp32 matrix-multiply peak the UNet
 * reaches, with the peak measured here by both engines.
 *
 *   node --import tsx bench/sd15.ts [--size 512] [--runs 3] [--threads T] [--unet dir] [--seed 0] [--export]
 *                                   [--batches 2,1] [--gemm 2048,4096] [--check-tolerance 1e-3]
 *                                   [--level all] [--spinning] [--no-torch] [--unfused]
 *
 * ORT side: openUnet + OnnxUnetRunner (packages/diffusion) with the engine's default session settings, except the
 * intra-op thread count when --threads is given (default: the engine's, all cores); --level (graph optimization
 * level) and --spinning change the engine's other two CPU settings, for finding out what limits the figures.
 * The UNet runs as the engine opens it: its attention fused into onnxruntime's MultiHeadAttention kernel
 * (onnx-graph's attention-fusion.ts, cached next to the export); --unfused opens the graph as exported instead.
 * Each call is what the sampling loop does per step: feeds converted, `out_sample` fetched. --no-torch leaves out
 * the PyTorch side (no ratio; the peak is then onnxruntime's MatMul alone).
 *
 * PyTorch side: bench/sd15_torch.py, a child process driven over stdin/stdout, rebuilds the module from
 * tools/tiny-sd/modules.py with the export's seed and config and checks every parameter byte for byte against the
 * export's initializers (see that file). Eager forward, torch.inference_mode(), float32, torch.set_num_threads(T)
 * (and OpenBLAS sized to T), OMP_WAIT_POLICY=PASSIVE unless set.
 *
 * Check (exit 1): one forward at the benchmarked size and the largest --batches batch on the same inputs through
 * both; the relative L2 error of ORT's output against PyTorch's must be under --check-tolerance. That makes the ratio one between two
 * runtimes computing the same function. (The check is the first of both engines' warm-up calls at its batch.)
 *
 * Timing: after two untimed calls per engine and shape (see the warm-up below), `--runs` rounds; in each, every
 * item (a GEMM per --gemm size, the UNet at each --batches batch) runs on both engines back to back, the engine
 * going first alternating between rounds, so a pair sees the same machine load. Medians per engine and item over
 * all rounds; and per round, the torch / ORT ratio of the pair and ORT's share of that round's GEMM peak, whose
 * medians are the steadier figures when the machine's load drifts between rounds.
 *
 * FLOPs: countMacs (packages/onnx-graph) on the UNet graph at the benchmarked size and batch, 2 FLOPs per MAC,
 * every MAC counted (convolutions, linear layers and the attention products Q·Kᵀ and P·V, which both runtimes
 * compute). Achieved GFLOP/s = FLOPs / median call time. Peak: the best median of an N x N fp32 matrix product,
 * onnxruntime's MatMul (a one-node model built in memory with the onnx-graph proto helpers, its B operand an
 * initializer as the UNet's weights are, opened through the engine's session pool with the same settings) and
 * torch.mm, each at every --gemm size.
 *
 * Load: the machine may be shared. Besides the load average, the bench reports the CPU time other processes used
 * during the timed rounds (/proc/stat busy time minus this process's and the PyTorch child's own), in cores, and
 * the time the hypervisor stole from this VM's vCPUs.
 *
 * UNet: --unet, else GATEGRAPH_SD15_UNET, else .gategraph/sd15-unet/unet. Without an export the bench prints the
 * command that makes it and exits 0 (it is 3.4 GB and takes minutes), or with --export runs that command first.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import {
  DEFAULT_SESSION_SETTINGS,
  OnnxUnetRunner,
  SessionPool,
  openUnet,
  randn,
  timestepTensor,
  type GraphOptimizationLevel,
  type Tensor,
} from '../packages/diffusion/src/index.ts';
import {
  TensorProto_DataType,
  countMacs,
  encodeModel,
  loadModel,
  makeValueInfo,
  newGraph,
  newModel,
  newNode,
  newTensor,
} from '../packages/onnx-graph/src/index.ts';
import { TorchSide, cliOptions, compareOutputs, gflops, loadMeter, median, ms, peakRssMB, python, repoRoot } from './measure.ts';

const args = process.argv.slice(2);
const { option } = cliOptions(args);
const usage = (message: string): never => {
  console.error(`bench/sd15: ${message}`);
  process.exit(64);
};
const wholeNumbers = (name: string, fallback: string): number[] => {
  const v = option(name, fallback).split(',').map(Number);
  if (!v.length || !v.every((x) => Number.isInteger(x) && x >= 1)) usage(`--${name} takes whole numbers >= 1 separated by commas; got "${option(name, fallback)}"`);
  return v;
};

const SIZE = wholeNumbers('size', '512')[0]!;
const RUNS = wholeNumbers('runs', '3')[0]!;
const THREADS = wholeNumbers('threads', String(DEFAULT_SESSION_SETTINGS.intraOpNumThreads))[0]!;
const BATCHES = wholeNumbers('batches', '2,1');
const GEMM_SIZES = wholeNumbers('gemm', '2048,4096');
const SEED = Number(option('seed', '0'));
const TOLERANCE = Number(option('check-tolerance', '1e-3'));
const LEVEL = option('level', DEFAULT_SESSION_SETTINGS.graphOptimizationLevel) as GraphOptimizationLevel;
const SPINNING = args.includes('--spinning');
const NO_TORCH = args.includes('--no-torch');
const UNFUSED = args.includes('--unfused');
if (SIZE % 64 !== 0) usage(`--size must be a multiple of 64 (latents are size/8 and the UNet halves them three times); got ${SIZE}`);
if (!Number.isInteger(SEED)) usage(`--seed must be a whole number; got ${option('seed', '0')}`);
if (!(TOLERANCE > 0)) usage(`--check-tolerance must be a positive number; got ${option('check-tolerance', '1e-3')}`);

const unetArg = option('unet', process.env.GATEGRAPH_SD15_UNET || join(repoRoot, '.gategraph', 'sd15-unet', 'unet'));
const unetDir = resolve(unetArg.endsWith('.onnx') ? dirname(unetArg) : unetArg);
const modelPath = join(unetDir, 'model.onnx');

if (!existsSync(modelPath)) {
  // The export script writes <out>/unet/: that is the folder the bench reads when it is called "unet".
  const out = basename(unetDir) === 'unet' ? dirname(unetDir) : undefined;
  const command = [python, 'tools/sd15-unet/export_random_unet.py', ...(out ? ['--out', out] : []), ...(SEED ? ['--seed', String(SEED)] : [])];
  if (!args.includes('--export') || !out) {
    console.log(
      `skipped: no SD-1.5 UNet export at ${unetDir} (model.onnx missing). Make it with\n  ${command.join(' ')}\n` +
        `(3.4 GB of random weights, a few minutes), or run this bench with --export to do that first${out ? '' : ' (the folder must be named "unet")'}.`,
    );
    process.exit(0);
  }
  console.log(`exporting: ${command.join(' ')}`);
  const r = spawnSync(command[0]!, command.slice(1), { cwd: repoRoot, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`bench/sd15: the export failed (exit ${r.status})`);
    process.exit(1);
  }
}

// ---- FLOPs from the graph ------------------------------------------------------------------------------------
const [load1AtStart] = loadavg();
console.log(
  `bench/sd15: ${unetDir}\n${SIZE}x${SIZE} (latent ${SIZE / 8}x${SIZE / 8}), batches ${BATCHES.join(', ')}, ${THREADS} thread${THREADS > 1 ? 's' : ''}, ` +
    `${RUNS} alternating round${RUNS > 1 ? 's' : ''}; ${availableParallelism()} cores, load average ${load1AtStart!.toFixed(2)} at the start`,
);
const unetFile = loadModel(modelPath);
const flopsOf = new Map<number, { flops: number }>();
for (const batch of BATCHES) {
  const r = countMacs(unetFile.proto, { batch, height: SIZE, width: SIZE }, { baseDir: unetFile.baseDir });
  flopsOf.set(batch, { flops: 2 * r.total });
  console.log(
    `batch ${batch}: ${(r.total / 1e9).toFixed(1)} G MACs = ${((2 * r.total) / 1e9).toFixed(1)} GFLOP per call ` +
      `(conv/linear ${(r.weightMacs / 1e9).toFixed(1)} G MACs, attention products ${(r.activationMatMul / 1e9).toFixed(1)} G)`,
  );
}

// ---- both engines up -----------------------------------------------------------------------------------------
const pool = ((): SessionPool => {
  try {
    return new SessionPool({ intraOpNumThreads: THREADS, graphOptimizationLevel: LEVEL, intraOpSpinning: SPINNING });
  } catch (err) {
    return usage((err as Error).message);
  }
})();
// Started before the session opens, so that it builds its module and checks the weights meanwhile.
const torchChild = !NO_TORCH && existsSync(python) ? new TorchSide(['--unet', unetDir, '--seed', String(SEED), '--threads', String(THREADS)]) : undefined;
const t0 = performance.now();
const unet = await openUnet(unetDir, { pool, fuseAttention: !UNFUSED });
const runner = OnnxUnetRunner.forModel(unet);
const io = unet.io.unet;
console.log(`onnxruntime session open in ${((performance.now() - t0) / 1000).toFixed(1)} s (session settings: ${JSON.stringify({ ...pool.settings, executionProviders: undefined })}; attention ${unet.unet.path.includes('.gategraph-derived') ? `fused: ${basename(unet.unet.path)}` : 'as exported'})`);
let torchInfo: Record<string, unknown> | undefined;
try {
  torchInfo = await torchChild?.ready();
} catch (err) {
  console.error(`FAIL ${(err as Error).message}`);
  process.exit(1);
}
const torch = torchInfo ? torchChild : undefined;
if (!torchInfo) {
  const why = NO_TORCH ? '--no-torch' : torchChild ? 'torch is not installed for /usr/bin/python3' : `${python} not found`;
  console.log(`PyTorch column skipped: ${why} (the peak is then onnxruntime's MatMul alone)`);
} else {
  const w = torchInfo.weights as { checked: boolean; parameters?: number; elements?: number };
  console.log(
    `pytorch ${String(torchInfo.torch)} eager, ${String(torchInfo.threads)} threads, OMP_WAIT_POLICY=${String(torchInfo.omp_wait_policy)}; ` +
      `weights: ${w.checked ? `all ${w.parameters} parameter tensors (${((w.elements ?? 0) / 1e6).toFixed(1)} M values) identical to the export's initializers` : 'not checked'}`,
  );
}

const latent = (batch: number) => [batch, io.sampleChannels, SIZE / 8, SIZE / 8];
const ortCall = async (sample: Tensor, context: Tensor): Promise<Tensor> => {
  const batch = sample.shape[0]!;
  const out = await runner.run('full', { [io.sample]: sample, [io.timestep]: timestepTensor(io, 500, batch), [io.encoderHiddenStates]: context }, [io.outSample]);
  return out[io.outSample]!;
};

// ---- numerical check: the same function ----------------------------------------------------------------------
let failed = false;
const xdim = io.crossAttentionDim;
const checkBatch = Math.max(...BATCHES);
{
  const sample = randn(latent(checkBatch), 11);
  const context = randn([checkBatch, 77, xdim], 12);
  const c0 = performance.now();
  const ortOut = await ortCall(sample, context);
  const ortMs = performance.now() - c0;
  if (!ortOut.data.every(Number.isFinite)) {
    console.error('FAIL onnxruntime output has non-finite values');
    process.exit(1);
  }
  if (torch) {
    const r = await torch.forward(sample.data, context.data, checkBatch, SIZE);
    const { rel, maxDiff, maxRef, sameLength } = compareOutputs(ortOut.data, r.out);
    const ok = sameLength && rel < TOLERANCE;
    console.log(
      `check (batch ${checkBatch}, same inputs): relative L2 error ${rel.toExponential(2)}, max |diff| ${maxDiff.toExponential(2)} ` +
        `(output max |value| ${maxRef.toFixed(3)}); tolerance ${TOLERANCE}: ${ok ? 'same function' : 'FAIL'} ` +
        `[untimed: ORT ${ms(ortMs)}, torch ${ms(r.ms)}, first call of each]`,
    );
    if (!ok) failed = true;
  }
}
if (failed) {
  console.error('FAIL onnxruntime and PyTorch disagree on the same input: the timings would not compare the same computation');
  torch?.quit();
  process.exit(1);
}

// ---- the GEMM model for the peak ----------------------------------------------------------------------------
const gemmDir = mkdtempSync(join(tmpdir(), 'gategraph-gemm-'));
const gemmLeases = new Map<number, { lease: ReturnType<SessionPool['acquire']>; a: Tensor; b: Float32Array }>();
for (const n of GEMM_SIZES) {
  // B is an initializer, as a layer's weight is: ORT prepacks it once when the session opens.
  const a = randn([n, n], 21);
  const b = Float32Array.from(randn([n, n], 22).data);
  const graph = newGraph({
    name: `gemm${n}`,
    input: [makeValueInfo('A', TensorProto_DataType.FLOAT, [n, n])],
    output: [makeValueInfo('Y', TensorProto_DataType.FLOAT, [n, n])],
    initializer: [newTensor({ name: 'B', dims: [BigInt(n), BigInt(n)], dataType: TensorProto_DataType.FLOAT, rawData: new Uint8Array(b.buffer) })],
    node: [newNode({ name: 'matmul', opType: 'MatMul', input: ['A', 'B'], output: ['Y'] })],
  });
  const path = join(gemmDir, `gemm${n}.onnx`);
  writeFileSync(path, encodeModel(newModel(graph, 14)));
  gemmLeases.set(n, { lease: pool.acquire(path), a, b });
}
const ortGemm = async (n: number): Promise<Float32Array> => {
  const g = gemmLeases.get(n)!;
  const out = await g.lease.run({ A: g.a }, ['Y']);
  return (out.Y as unknown as { data: Float32Array }).data;
};
// A product that is wrong would make a fast peak meaningless: spot-check a few entries in float64.
for (const n of GEMM_SIZES) {
  const y = await ortGemm(n);
  const { a, b } = gemmLeases.get(n)!;
  for (const [i, j] of [[0, 0], [n - 1, n - 1], [n >> 1, 7]] as const) {
    let s = 0;
    let mag = 0;
    for (let k = 0; k < n; k++) {
      s += a.data[i * n + k]! * b[k * n + j]!;
      mag += Math.abs(a.data[i * n + k]! * b[k * n + j]!);
    }
    if (Math.abs(y[i * n + j]! - s) > 1e-4 * mag) {
      console.error(`FAIL onnxruntime MatMul ${n}x${n}: Y[${i},${j}] = ${y[i * n + j]} but the product is ${s}`);
      process.exit(1);
    }
  }
}

// ---- warm-up: two untimed calls per engine and shape --------------------------------------------------------
// Two, because onnxruntime's memory settles only in the second call of a shape: its arena and memory pattern grow
// over the first two, which touch fresh pages and run slower than the rest (figures in bench/README.md). PyTorch
// gets the same treatment.
const WARMUP = 2;
const inputs = new Map(BATCHES.map((b) => [b, { sample: randn(latent(b), 31 + b), context: randn([b, 77, xdim], 41 + b) }]));
for (const b of BATCHES) {
  for (let i = b === checkBatch ? 1 : 0; i < WARMUP; i++) {
    // the check was the first call of its shape on both
    await ortCall(inputs.get(b)!.sample, inputs.get(b)!.context);
    if (torch) await torch.ask({ cmd: 'unet', batch: b, size: SIZE, reps: 1 });
  }
}
if (torch) for (const n of GEMM_SIZES) await torch.ask({ cmd: 'gemm', n, reps: 1 });

// ---- alternating rounds --------------------------------------------------------------------------------------
type Item = { kind: 'gemm'; n: number } | { kind: 'unet'; batch: number };
const items: Item[] = [...GEMM_SIZES.map((n) => ({ kind: 'gemm' as const, n })), ...BATCHES.map((batch) => ({ kind: 'unet' as const, batch }))];
const keyOf = (it: Item) => (it.kind === 'gemm' ? `gemm ${it.n}` : `unet b${it.batch}`);
/** rounds[r].get(item) = the ms of each engine in round r (GEMM_REPS products, or one UNet call). */
const rounds: Array<Map<string, { ort: number[]; torch: number[] }>> = [];
const GEMM_REPS = 3; // a few products per round steady the median at little cost next to the UNet calls
const load = loadMeter(torch?.pid);
const wall0 = performance.now();
for (let r = 0; r < RUNS; r++) {
  const round = new Map(items.map((it) => [keyOf(it), { ort: [] as number[], torch: [] as number[] }]));
  rounds.push(round);
  for (const it of items) {
    const slot = round.get(keyOf(it))!;
    for (const engine of r % 2 ? (['torch', 'ort'] as const) : (['ort', 'torch'] as const)) {
      if (engine === 'torch' && !torch) continue;
      if (it.kind === 'gemm') {
        if (engine === 'ort') {
          for (let k = 0; k < GEMM_REPS; k++) {
            const s = performance.now();
            await ortGemm(it.n);
            slot.ort.push(performance.now() - s);
          }
        } else {
          slot.torch.push(...(await torch!.ask<{ ms: number[] }>({ cmd: 'gemm', n: it.n, reps: GEMM_REPS })).ms);
        }
      } else {
        const { sample, context } = inputs.get(it.batch)!;
        if (engine === 'ort') {
          const s = performance.now();
          await ortCall(sample, context);
          slot.ort.push(performance.now() - s);
        } else {
          slot.torch.push(...(await torch!.ask<{ ms: number[] }>({ cmd: 'unet', batch: it.batch, size: SIZE, reps: 1 })).ms);
        }
      }
    }
  }
  console.error(`  round ${r + 1}/${RUNS} done, ${((performance.now() - wall0) / 1000).toFixed(0)} s`);
}
const { wallS, othersCores, stealCores, load1AtEnd } = load.stop();
const rss = { ort: peakRssMB('self'), torch: torch ? peakRssMB(torch.pid) : NaN };
torch?.quit();
await unet.release();
for (const g of gemmLeases.values()) await g.lease.release();
await pool.freeAll();
rmSync(gemmDir, { recursive: true, force: true });

// ---- report --------------------------------------------------------------------------------------------------
const all = (key: string, engine: 'ort' | 'torch') => rounds.flatMap((round) => round.get(key)![engine]);
console.log(
  `\nload: other processes used ${othersCores.toFixed(2)} of ${availableParallelism()} cores on average during the ${wallS.toFixed(0)} s of timed rounds, ` +
    `the hypervisor stole ${stealCores.toFixed(2)} (load average ${load1AtStart!.toFixed(2)} at the start, ${load1AtEnd!.toFixed(2)} at the end, this bench included)`,
);
console.log('\nfp32 GEMM peak (N x N x N, median of each engine over all rounds):');
let peak = 0;
let peakBy = '';
for (const n of GEMM_SIZES) {
  const f = 2 * n ** 3;
  const [to, tt] = [all(`gemm ${n}`, 'ort'), all(`gemm ${n}`, 'torch')];
  const o = gflops(f, median(to));
  const p = torch ? gflops(f, median(tt)) : 0;
  if (o > peak) [peak, peakBy] = [o, `onnxruntime MatMul ${n}`];
  if (p > peak) [peak, peakBy] = [p, `torch.mm ${n}`];
  console.log(
    `  ${n}: onnxruntime MatMul ${o.toFixed(1)} GFLOP/s (${ms(median(to))})${torch ? `, torch.mm ${p.toFixed(1)} GFLOP/s (${ms(median(tt))})` : ''}; ` +
      `best single product ${gflops(f, Math.min(...to, ...tt)).toFixed(1)} GFLOP/s`,
  );
}
console.log(`  peak: ${peak.toFixed(1)} GFLOP/s (${peakBy}, the higher median)`);
/** The peak within one round: the best engine-and-size median of that round's products, measured beside its UNet calls. */
const roundPeak = (round: Map<string, { ort: number[]; torch: number[] }>) =>
  Math.max(...GEMM_SIZES.flatMap((n) => [round.get(`gemm ${n}`)!.ort, round.get(`gemm ${n}`)!.torch].filter((t) => t.length).map((t) => gflops(2 * n ** 3, median(t)))));

const date = new Date().toISOString().slice(0, 10);
const loadText = `others ${othersCores.toFixed(1)} cores, steal ${stealCores.toFixed(2)} (load avg ${load1AtStart!.toFixed(1)})`;
console.log('\n| date | machine load | size | batch | threads | ORT ms | torch ms | torch / ORT | GFLOP per call | ORT GFLOP/s | peak GFLOP/s | share of peak |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
const details: string[] = [];
const summary: string[] = [];
for (const batch of BATCHES) {
  const key = `unet b${batch}`;
  const { flops } = flopsOf.get(batch)!;
  const o = median(all(key, 'ort'));
  const p = torch ? median(all(key, 'torch')) : NaN;
  const og = gflops(flops, o);
  console.log(
    `| ${date} | ${loadText} | ${SIZE} | ${batch} | ${THREADS} | ${o.toFixed(0)} | ${torch ? p.toFixed(0) : 'skipped'} | ` +
      `${torch ? `${(p / o).toFixed(2)}x` : ''} | ${(flops / 1e9).toFixed(flops < 1e10 ? 1 : 0)} | ${og.toFixed(1)} | ${peak.toFixed(1)} | ${((100 * og) / peak).toFixed(0)} % |`,
  );
  // Per round: the two engines' calls ran back to back, and the products just before them: ratios within a round
  // cancel load that drifts between rounds.
  const pairs = rounds.map((round) => {
    const t = round.get(key)!;
    return { ratio: torch ? t.torch[0]! / t.ort[0]! : NaN, share: gflops(flops, t.ort[0]!) / roundPeak(round) };
  });
  details.push(
    `batch ${batch}: ORT ${all(key, 'ort').map(ms).join(', ')}; torch ${torch ? all(key, 'torch').map(ms).join(', ') : 'skipped'}` +
      (torch ? ` (${gflops(flops, p).toFixed(1)} GFLOP/s = ${((100 * gflops(flops, p)) / peak).toFixed(0)} % of the peak)` : '') +
      `; per round${torch ? `: torch / ORT ${pairs.map((x) => `${x.ratio.toFixed(2)}x`).join(', ')} (median ${median(pairs.map((x) => x.ratio)).toFixed(2)}x)` : ''}` +
      `${torch ? ',' : ':'} ORT share of that round's GEMM peak ${pairs.map((x) => `${(100 * x.share).toFixed(0)} %`).join(', ')} (median ${(100 * median(pairs.map((x) => x.share))).toFixed(0)} %)`,
  );
  summary.push(`batch ${batch}: ${torch ? `ORT ${(p / o).toFixed(2)}x faster than PyTorch eager (target >= 2x), ` : ''}at ${((100 * og) / peak).toFixed(0)} % of the GEMM peak (target >= 60 %)`);
}
console.log(`\n${details.join('\n')}`);
console.log(
  `peak RSS: this process (onnxruntime, with the GEMM sessions) ${rss.ort.toFixed(0)} MB` + (torch ? `; the PyTorch process ${rss.torch.toFixed(0)} MB` : ''),
);
console.log(`\n${summary.join('\n')}`);
process.exit(failed ? 1 : 0);
