/**
 * What the UNet benchmarks on published architectures share (bench/tgate-sd15.ts, bench/tgate-sdxl.ts): argument
 * parsing, a sampling run per configuration (plain UNet, or the cached variants a plan needs), and medians.
 */
import {
  OnnxUnetRunner,
  cacheNeedsOf,
  isPlainPlan,
  planStepper,
  prepareCachedUnet,
  type ExecutionPlan,
  type OpenedUnet,
} from '../packages/diffusion/src/index.ts';

export function cliOptions(args: readonly string[]) {
  const option = (name: string, fallback: string): string => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
  };
  const positiveInt = (name: string, fallback: string): number => {
    const v = Number(option(name, fallback));
    if (!Number.isInteger(v) || v < 1) {
      console.error(`--${name} must be a whole number >= 1; got "${option(name, fallback)}"`);
      process.exit(2);
    }
    return v;
  };
  return { option, positiveInt, flag: (name: string) => args.includes(`--${name}`) };
}

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

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
