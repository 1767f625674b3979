/**
 * The engine's UNet step: onnxruntime-node against eager PyTorch on the same network, same shapes, same
 * thread count, in the same run. Prints the median ms per UNet call at batch 1 (cfg 1, or TGATE after the
 * gate) and batch 2 (a CFG step), and the ratio. Fails (exit 1) if the ONNX output is not finite or the
 * batch-2 call does not match two batch-1 calls.
 *
 *   node --import tsx bench/engine.ts [runs=30] [threads=all cores]
 *
 * Both engines are timed with 1 thread and with `threads` (PyTorch's OpenMP pool collapses when the cores
 * are oversubscribed, e.g. by a training run: the 1-thread row is the fair one on a busy machine).
 *
 * Model: GATEGRAPH_TEST_MODEL or models/tiny-sd. PyTorch: /usr/bin/python3 with torch runs bench/torch_unet.py,
 * which rebuilds the UNet from tools/tiny-sd/modules.py and the training checkpoint (see that file for why
 * this is the same network); without torch or the checkpoint the PyTorch column is skipped with a message.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  OnnxUnetRunner,
  SessionPool,
  concatBatch,
  encodePrompt,
  maxAbsDiff,
  openModelFolder,
  randn,
  splitBatch,
  timestepTensor,
  type Tensor,
} from '../packages/diffusion/src/index.ts';

const RUNS = Number(process.argv[2] ?? 30);
const THREADS = Number(process.argv[3] ?? availableParallelism());
const WARMUP = 5;
const root = fileURLToPath(new URL('..', import.meta.url));
const modelDir = process.env.GATEGRAPH_TEST_MODEL || `${root}models/tiny-sd`;
const python = '/usr/bin/python3';

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (ms: number): string => `${ms.toFixed(2)} ms`;

if (!existsSync(`${modelDir}/unet/model.onnx`)) {
  console.error(`bench/engine: no model at ${modelDir} (unet/model.onnx missing); set GATEGRAPH_TEST_MODEL`);
  process.exit(1);
}

const threadCounts = [...new Set([1, THREADS])];
const [load1] = loadavg();
console.log(`model ${modelDir}; median of ${RUNS} runs after ${WARMUP} warm-up; load average ${load1!.toFixed(2)} on ${availableParallelism()} cores`);
if (load1! > availableParallelism()) {
  console.log('note: the machine is busy (load above the core count): multi-threaded figures are distorted, PyTorch\'s OpenMP ones most of all');
}
const rows: string[][] = [['threads', 'ORT b1', 'ORT b2', 'torch b1', 'torch b2', 'ORT speed-up b1', 'b2']];
let ok = true;
for (const threads of threadCounts) {
  const ort = await timeOnnx(threads);
  if (!ort) {
    ok = false;
    break;
  }
  const torch = timeTorch(threads);
  rows.push([
    String(threads), fmt(ort.b1), fmt(ort.b2),
    typeof torch === 'string' ? 'skipped' : fmt(torch.b1), typeof torch === 'string' ? '' : fmt(torch.b2),
    typeof torch === 'string' ? '' : `${(torch.b1 / ort.b1).toFixed(2)}x`, typeof torch === 'string' ? '' : `${(torch.b2 / ort.b2).toFixed(2)}x`,
  ]);
  if (typeof torch === 'string') console.log(`pytorch eager skipped: ${torch}`);
  else if (threads === threadCounts[0]) console.log(`pytorch ${torch.version} eager, checkpoint step ${torch.step}`);
}
const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
for (const r of rows) console.log(r.map((v, c) => v.padStart(widths[c]!)).join('  '));
console.log('ms per UNet call; b1 = batch 1 (cfg 1, or after the TGATE gate), b2 = batch 2 (one CFG step). Target: ORT >= 1.5x');
process.exit(ok ? 0 : 1);

async function timeOnnx(threads: number): Promise<{ b1: number; b2: number } | undefined> {
  const pool = new SessionPool({ intraOpNumThreads: threads });
  const model = await openModelFolder(modelDir, { pool });
  try {
    const runner = OnnxUnetRunner.forModel(model);
    const io = model.io.unet;
    const [h, w] = io.fixedLatentSize ?? [64, 64];
    const cond = (await encodePrompt(model, 'a red circle at the top left on a gray background')).hiddenStates;
    const uncond = (await encodePrompt(model, '')).hiddenStates;
    const step = async (x: Tensor, ctx: Tensor): Promise<Tensor> => {
      const b = x.shape[0]!;
      const out = await runner.run('full', { [io.sample]: x, [io.timestep]: timestepTensor(io, 500, b), [io.encoderHiddenStates]: ctx }, [io.outSample]);
      return out[io.outSample]!;
    };
    const time = async (x: Tensor, ctx: Tensor): Promise<number> => {
      for (let i = 0; i < WARMUP; i++) await step(x, ctx);
      const ms: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const t0 = performance.now();
        await step(x, ctx);
        ms.push(performance.now() - t0);
      }
      return median(ms);
    };
    const x1 = randn([1, io.latentChannels, h, w], 0);
    const x2 = concatBatch([x1, x1]);
    const ctx2 = concatBatch([uncond, cond]);
    // correctness: the batch of two equals the two rows run alone
    const both = await step(x2, ctx2);
    const [u2, c2] = splitBatch(both, 2) as [Tensor, Tensor];
    const diff = Math.max(maxAbsDiff(u2, await step(x1, uncond)), maxAbsDiff(c2, await step(x1, cond)));
    if (!both.data.every(Number.isFinite) || diff > 1e-3) {
      console.error(`bench/engine: FAILED: the batch-2 output differs from two batch-1 calls by ${diff}`);
      return undefined;
    }
    return { b1: await time(x1, cond), b2: await time(x2, ctx2) };
  } finally {
    await model.release();
    await pool.freeAll();
  }
}

function timeTorch(threads: number): { b1: number; b2: number; version: string; step: unknown } | string {
  if (!existsSync(python)) return `${python} not found`;
  const r = spawnSync(python, [`${root}bench/torch_unet.py`, '--runs', String(RUNS), '--warmup', String(WARMUP), '--threads', String(threads)], { encoding: 'utf8' });
  if (r.status !== 0) return r.stderr.trim().split('\n').at(-1) ?? `exit code ${r.status}`;
  const j = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { torch: string; training_step: unknown; batch1_ms: number[]; batch2_ms: number[] };
  return { b1: median(j.batch1_ms), b2: median(j.batch2_ms), version: j.torch, step: j.training_step };
}
