/**
 * Sampling-loop overhead outside the UNet: seeded noise ('torch-cpu' vs 'philox') and one scheduler step
 * (with the CFG batch plumbing: concat, split, guidance) per sampler, on SD latents. Prints median ms and
 * side-by-side ratios. Fails (exit 1) if 'torch-cpu' noise stops matching PyTorch (fixture hash) or a
 * sampler driven by a perfect model does not end at the clean latent.
 *
 *   node --import tsx bench/sampling-overhead.ts [repetitions=9]
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import {
  axpby,
  concatBatch,
  createNoiseGenerator,
  createScheduler,
  guidance,
  maxAbsDiff,
  randn,
  SAMPLER_NAMES,
  splitBatch,
  zeros,
  type Tensor,
} from '../packages/diffusion/src/index.ts';

const REPS = Number(process.argv[2] ?? 9);
let failed = false;

function median(fn: () => void): number {
  const times: number[] = [];
  fn(); // warm-up
  for (let r = 0; r < REPS; r++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

// -- correctness: the 512x512 latent for seed 123456789 must still be torch's, bit for bit
const refs = JSON.parse(readFileSync(new URL('../packages/diffusion/test/fixtures/noise_refs.json', import.meta.url), 'utf8')) as {
  cases: { seed: string; draws: { shape: number[]; sha256?: string }[] }[];
};
const ref = refs.cases.find((c) => c.seed === '123456789')!.draws[0]!;
const latent = randn(ref.shape, 123456789n);
const bytes = Buffer.alloc(latent.data.length * 4);
latent.data.forEach((v, i) => bytes.writeFloatLE(v, i * 4));
if (createHash('sha256').update(bytes).digest('hex') !== ref.sha256) {
  console.error('FAIL: torch-cpu noise no longer matches torch.randn for seed 123456789');
  failed = true;
}

console.log(`noise, median of ${REPS} (ms)`);
console.log('shape              torch-cpu   philox   torch-cpu/philox');
for (const shape of [[1, 4, 64, 64], [2, 4, 96, 96], [1, 4, 128, 128]]) {
  const t = median(() => createNoiseGenerator(1, 'torch-cpu').randn(shape));
  const p = median(() => createNoiseGenerator(1, 'philox').randn(shape));
  console.log(`${JSON.stringify(shape).padEnd(18)} ${t.toFixed(2).padStart(9)} ${p.toFixed(2).padStart(8)}   ${(t / p).toFixed(2)}x`);
}

// -- one step of each sampler on a 512x512 latent, CFG plumbing included; a perfect eps "model"
const shape = [1, 4, 64, 64];
const x0 = randn(shape, 5, 'philox');
const noise = randn(shape, 6);
const STEPS = 20;
console.log(`\nscheduler step on ${JSON.stringify(shape)} incl. CFG concat/split/guidance, ${STEPS} steps (ms per step)`);
console.log('sampler            ms/step   vs euler   end error');
let eulerMs = 0;
// the first pass warms V8 up on every sampler (the tensor ops are shared), the second one is reported
for (const [pass, name] of [...SAMPLER_NAMES.map((n) => [0, n] as const), ...SAMPLER_NAMES.map((n) => [1, n] as const)]) {
  let err = 0;
  const ms = median(() => {
    const s = createScheduler(name, {}, STEPS, { schedule: 'karras' });
    const gen = createNoiseGenerator(7, 'philox');
    let x = s.addNoise(zeros(shape), noise);
    for (let i = 0; i < STEPS; i++) {
      const input = s.scaleModelInput(x, i);
      const batch = concatBatch([input, input]); // what the UNet would get
      const sigma = s.sigmas[i]!;
      const a = 1 / (1 + sigma * sigma);
      const outs: Tensor[] = splitBatch(batch, 2).map((half) => axpby(1 / Math.sqrt(1 - a), half, -Math.sqrt(a / (1 - a)), x0));
      x = s.step(guidance(outs[0]!, outs[1]!, 7.5), i, x, gen);
    }
    err = maxAbsDiff(x, x0);
  }) / STEPS;
  if (pass === 0) continue;
  if (name === 'euler') eulerMs = ms;
  if (!(err < 1e-4)) {
    console.error(`FAIL: ${name} with a perfect model ends ${err} away from x0`);
    failed = true;
  }
  console.log(`${name.padEnd(18)} ${ms.toFixed(3).padStart(7)}   ${(ms / eulerMs).toFixed(2).padStart(6)}x   ${err.toExponential(1)}`);
}
console.log('\n(euler_ancestral includes drawing its step noise; an SD-1.5 UNet step on CPU takes seconds)');
process.exit(failed ? 1 : 0);
