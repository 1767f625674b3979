/**
 * TGATE through the node a user runs: the default workflow (plain KSampler) against workflows/tgate.json
 * (GateSchedule + CacheCrossAttn, gate 10) on the embedded model, run by the real executor with the real pack,
 * in alternating rounds with a new seed each round (so KSampler, VAEDecode and SaveImage run every time, while
 * the loader and text encoders stay cached, as they do for a user re-queueing). Prints the median wall-clock of
 * re-queued run per configuration and the ratio, the first run after switching configuration (it reopens the
 * UNet), and the sessions the re-queued runs opened (0 expected: the gated UNet stays open between gated runs,
 * see SessionPool's idle sessions; exit 1 otherwise).
 *
 *   node --import tsx bench/tgate-ksampler.ts [--rounds 9]
 *
 * Unlike bench/tgate.ts (the sampling loop alone), this includes what a run costs around it: patch planning,
 * finding the derived graph, switching UNet sessions, VAE decode and PNG writing.
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Executor, loadPacks, NodeRegistry, silentLogger, validatePrompt, type ApiPrompt, type HostPaths } from '../packages/core/src/index.ts';
import { getDefaultSessionPool } from '../packages/diffusion/src/index.ts';

const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));
const args = process.argv.slice(2);
const at = args.indexOf('--rounds');
const ROUNDS = at >= 0 ? Number(args[at + 1]) : 9;
const modelDir = resolve(process.env.GATEGRAPH_TEST_MODEL ?? join(repoRoot, 'models', 'tiny-sd'));

const dir = mkdtempSync(join(tmpdir(), 'bench-tgate-ksampler-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const paths: HostPaths = { output: join(dir, 'output'), input: join(dir, 'input'), temp: join(dir, 'temp'), models: join(dir, 'models') };
for (const p of Object.values(paths)) mkdirSync(p, { recursive: true });
symlinkSync(modelDir, join(paths.models, 'tiny-sd'), 'dir');
process.env.GATEGRAPH_MODELS = paths.models;

const registry = new NodeRegistry();
const report = await loadPacks({ packages: [join(repoRoot, 'packages', 'nodes-tgate')], registry });
if (report.failed.length) throw new Error(`the pack did not load: ${JSON.stringify(report.failed)}`);

const CONFIGS = { plain: 'workflows/default.json', tgate: 'workflows/tgate.json' } as const;
type Config = keyof typeof CONFIGS;
const executor = new Executor(registry, { paths, logger: silentLogger });
const pool = getDefaultSessionPool();

async function runOnce(config: Config, seed: number): Promise<{ ms: number; opened: number }> {
  const prompt = JSON.parse(readFileSync(join(repoRoot, CONFIGS[config]), 'utf8')) as ApiPrompt;
  prompt['3']!.inputs.seed = seed;
  const validation = await validatePrompt(prompt, registry);
  if (Object.keys(validation.nodeErrors).length) throw new Error(`${config}: invalid prompt ${JSON.stringify(validation.nodeErrors)}`);
  const openedBefore = pool.opened;
  const started = performance.now();
  const result = await executor.run(validation.prompt, { promptId: `${config}-${seed}`, outputs: validation.outputs });
  const ms = performance.now() - started;
  if (result.status !== 'success') throw new Error(`${config}: ${JSON.stringify(result.error)}`);
  return { ms, opened: pool.opened - openedBefore };
}

// Warm-up: each configuration once (opens the model, derives or finds the gated graph).
for (const c of Object.keys(CONFIGS) as Config[]) await runOnce(c, 1);

const steady: Record<Config, number[]> = { plain: [], tgate: [] };
const switching: Record<Config, number[]> = { plain: [], tgate: [] };
const opened: Record<Config, number> = { plain: 0, tgate: 0 };
for (let r = 0; r < ROUNDS; r++) {
  // Each configuration twice in a row, in rotated order: the first run after the other configuration pays the
  // session switch (the plain and gated UNets hold the same weights and are never open together); the second is
  // a user re-queueing the same graph.
  const order: Config[] = r % 2 ? ['tgate', 'plain'] : ['plain', 'tgate'];
  for (const c of order) {
    const first = await runOnce(c, 1000 + 2 * r);
    const again = await runOnce(c, 1001 + 2 * r);
    switching[c].push(first.ms);
    steady[c].push(again.ms);
    opened[c] += again.opened;
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const plainMs = median(steady.plain);
console.log(`KSampler workflows on ${modelDir} (25 steps, ddim, cfg 6), ${ROUNDS} rounds, median ms per run:`);
console.log('  config   re-queued   ratio   first run after the other config   sessions opened by re-queued runs');
for (const c of Object.keys(CONFIGS) as Config[]) {
  const m = median(steady[c]);
  console.log(`  ${c.padEnd(6)} ${m.toFixed(0).padStart(8)} ms   x${(plainMs / m).toFixed(2)}   ${median(switching[c]).toFixed(0).padStart(8)} ms   ${String(opened[c]).padStart(10)}`);
}
console.log('  (a re-queued run opens no session; switching between plain and gated reopens the UNet once)');
if (opened.tgate > 0) {
  console.error('FAIL: re-queued gated runs reopened a session: the gated UNet should stay open while idle');
  process.exit(1);
}
