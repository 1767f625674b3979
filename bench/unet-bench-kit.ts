/**
 * What the UNet benchmarks on published architectures share (bench/tgate-sd15.ts, bench/tgate-sdxl.ts): a
 * sampling run per configuration (plain UNet, or the cached variants a plan needs), timed rounds and
 * a child process's peak RSS. Options, medians and machine
 * measurements are bench/measure.ts's.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import {
  ModelComponent,
  OnnxUnetRunner,
  cacheNeedsOf,
  getDefaultSessionPool,
  isPlainPlan,
  planStepper,
  prepareCachedUnet,
  type ExecutionPlan,
  type OpenedUnet,
  type Tensor,
  type UnetIo,
} from '../packages/diffusion/src/index.ts';

export interface Run {
  plan: ExecutionPlan;
  /** The runner and planner for one sampling run on this configuration. */
  runner: OnnxUnetRunner;
  planner?: () => ReturnType<typeof planStepper>;
  /** Releases what the run holds (the gated lease; its session stays open idle until the plain UNet reopens). */
  done(): Promise<void>;
}

export async function prepareRun(unet: OpenedUnet, plan: ExecutionPlan): Promise<Run> {
  if (isPlainPlan(plan)) return { plan, runner: OnnxUnetRunner.forModel(unet), done: async () => {} };
  const cached = await prepareCachedUnet(unet, cacheNeedsOf(plan));
  return { plan, runner: cached.runner, planner: () => planStepper(plan, cached.layout), done: () => cached.release() };
}


/** A timed configuration: its plan, and a short plan that opens and warms its sessions first (untimed). */
export interface TimedConfig {
  name: string;
  plan: ExecutionPlan;
  warm: ExecutionPlan;
}

/**
 * Times whole sampling runs of each configuration, `rounds` times, rotating the order each round (round r starts
 * at configuration r) so no configuration always follows the same one; each run is preceded by its untimed
 * warm-up. Returns the times in ms per configuration name; `onLatent` sees every timed latent (for checks).
 */
export async function timeRounds<C extends TimedConfig>(
  unet: OpenedUnet,
  configs: readonly C[],
  rounds: number,
  generate: (unet: OpenedUnet, run: Run, seed: number) => Promise<Tensor>,
  onLatent: (config: C, latent: Tensor) => void,
): Promise<Map<string, number[]>> {
  const times = new Map<string, number[]>(configs.map((c) => [c.name, []]));
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < configs.length; k++) {
      const config = configs[(k + r) % configs.length]!;
      const t0 = performance.now();
      const warm = await prepareRun(unet, config.warm);
      await generate(unet, warm, 7);
      await warm.done();
      const warmMs = performance.now() - t0;
      const run = await prepareRun(unet, config.plan);
      const t1 = performance.now();
      const latent = await generate(unet, run, 1);
      const ms = performance.now() - t1;
      await run.done();
      onLatent(config, latent);
      times.get(config.name)!.push(ms);
      console.error(`  round ${r + 1}/${rounds} ${config.name}: ${(ms / 1000).toFixed(2)} s (warm-up incl. session switch ${(warmMs / 1000).toFixed(1)} s)`);
    }
  }
  return times;
}

/**
 * The UNet handle a gated child run uses: built from the io the parent read, with a lease that is never opened
 * (openUnet would open the plain session to read its inputs, and ORT does not hand all of a closed session's
 * memory back to the OS, which would show in the child's RSS).
 */
export function unopenedUnet(unetDir: string, io: UnetIo, name: string): OpenedUnet {
  const path = join(unetDir, 'model.onnx');
  const lease = getDefaultSessionPool().acquire(path);
  return { dir: unetDir, name, io: { unet: io }, unet: new ModelComponent('unet', path, lease, [], [], {}, 'model.onnx_data'), release: () => lease.release() };
}

/** Peak RSS of a child process (`script --child <config> --unet <dir> --px <px>`) that samples one image. */
export function childPeakRss(script: string, config: string, unetDir: string, px: number, io: UnetIo): string {
  const child = spawnSync(process.execPath, ['--import', 'tsx', script, '--child', config, '--unet', unetDir, '--px', String(px)], {
    encoding: 'utf8',
    env: { ...process.env, GATEGRAPH_BENCH_UNET_IO: JSON.stringify(io) },
  });
  if (child.status !== 0) {
    console.error(`${config}: the RSS child failed: ${child.stderr.slice(0, 600)}`);
    return 'failed';
  }
  return `${(JSON.parse(child.stdout.trim().split('\n').pop()!) as { peakRssMB: number }).peakRssMB.toFixed(0)} MB`;
}

/** The io the parent passed to a `--child` run. */
export function childUnetIo(): UnetIo {
  const io = JSON.parse(process.env.GATEGRAPH_BENCH_UNET_IO ?? 'null') as UnetIo | null;
  if (!io) throw new Error('--child needs GATEGRAPH_BENCH_UNET_IO (the parent sets it)');
  return io;
}
