/**
 * Plain and gated side by side (workflows/tgate-compare.json: one loader, a plain KSampler and a TGATE one on the
 * same seed, both images saved), the way users judge TGATE: the comparison graph re-queued with a new seed each
 * round. For the embedded model and SD-1.5's architecture (random weights, 256 px, when present), and for TGATE
 * alone and TGATE + DeepCache (3/0) on the gated side, it prints the gated sampler's speed-up
 *   - inside the comparison graph: median plain KSampler time / median gated KSampler time, both from the same
 *     prompts (node_started -> node_finished);
 *   - alone: the plain chain and the gated chain each queued alone;
 * the three prompts take turns in each round (rotated order), so machine load falls on them alike;
 * and their ratio (within 5 %: exit 1 otherwise), the sessions opened after the first round (0 expected while
 * the model's plain and gated graphs fit the session memory budget: SessionPool, "Memory budget"), and the peak
 * RSS beside the budget. The comparison graph also runs once through a real server (HTTP + websocket) on the
 * embedded model, its speed-up read from the `executing` messages' arrival.
 *
 * Also the default workflow's time per image with the engine's thread choice (bench/engine-threads.ts) against
 * the previous fixed setting (all cores everywhere: GATEGRAPH_INTRA_OP_THREADS), each in a child process, the two
 * alternating.
 *
 *   node --import tsx bench/tgate-compare.ts [--rounds 5] [--sd15-rounds 3] [--sd15-steps 12]
 *
 * SD-1.5 runs --sd15-steps steps (gate at 40 %) to keep the bench in minutes; the comparison does not depend on
 * the step count. Its folder: .gategraph/test-models-full/sd15-optimum (tools/test-models, --scale full).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Executor, loadPacks, NodeRegistry, silentLogger, validatePrompt, type ApiPrompt, type HostPaths } from '../packages/core/src/index.ts';
import { getDefaultSessionPool } from '../packages/diffusion/src/index.ts';
import { cliOptions, loadMeter, median, peakRssMB, repoRoot } from './measure.ts';

const { positiveInt, flag } = cliOptions(process.argv.slice(2));
const ROUNDS = positiveInt('rounds', '5');
const SD15_ROUNDS = positiveInt('sd15-rounds', '3');
const SD15_STEPS = positiveInt('sd15-steps', '12');
const GB = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GB`;

const dir = mkdtempSync(join(tmpdir(), 'bench-tgate-compare-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const paths: HostPaths = { output: join(dir, 'output'), input: join(dir, 'input'), temp: join(dir, 'temp'), models: join(dir, 'models') };
for (const p of Object.values(paths)) mkdirSync(p, { recursive: true });
const tiny = join(repoRoot, 'models', 'tiny-sd');
const sd15 = join(repoRoot, '.gategraph', 'test-models-full', 'sd15-optimum');
symlinkSync(tiny, join(paths.models, 'tiny-sd'), 'dir');
if (existsSync(join(sd15, 'unet', 'model.onnx'))) symlinkSync(sd15, join(paths.models, 'sd15'), 'dir');
process.env.GATEGRAPH_MODELS = paths.models;

const template = JSON.parse(readFileSync(join(repoRoot, 'workflows', 'tgate-compare.json'), 'utf8')) as ApiPrompt;

if (flag('child-default')) await childDefaultWorkflow();
else await main();

/** The comparison graph for a model and a gated configuration; `keep` picks the chains that run. */
function comparison(model: string, withDeepCache: boolean, seed: number, keep: 'both' | 'plain' | 'gated', steps: number): { prompt: ApiPrompt; outputs: string[] } {
  const p = structuredClone(template);
  p['4']!.inputs.ckpt_name = model;
  if (model === 'sd15') Object.assign(p['5']!.inputs, { width: 256, height: 256 });
  for (const id of ['3', '12']) Object.assign(p[id]!.inputs, { seed, steps });
  p['10']!.inputs.gate_step = Math.round(steps * 0.4);
  if (withDeepCache) {
    p['15'] = { class_type: 'DeepCache', inputs: { model: ['11', 0], cache_interval: 3, cache_branch_id: 0, schedule: 'uniform', centre: 15 } };
    p['12']!.inputs.model = ['15', 0];
  }
  const outputs = keep === 'both' ? ['9', '14'] : keep === 'plain' ? ['9'] : ['14'];
  return { prompt: p, outputs };
}

async function main(): Promise<void> {
  const registry = new NodeRegistry();
  const report = await loadPacks({ packages: [join(repoRoot, 'packages', 'nodes-tgate')], registry });
  if (report.failed.length) throw new Error(`the pack did not load: ${JSON.stringify(report.failed)}`);
  const executor = new Executor(registry, { paths, logger: silentLogger });
  const pool = getDefaultSessionPool();
  const meter = loadMeter();
  let seed = 1000;
  let failed = false;

  /** Runs a prompt; returns each KSampler's time (ms) by node id. */
  async function run(prompt: ApiPrompt, outputs: string[]): Promise<Record<string, number>> {
    const validation = await validatePrompt(prompt, registry, { outputs, context: { paths } });
    if (!validation.ok) throw new Error(JSON.stringify(validation.error));
    const started = new Map<string, number>();
    const times: Record<string, number> = {};
    const result = await executor.run(validation.prompt, {
      promptId: `bench-${seed}`,
      outputs: validation.outputs,
      onEvent: (event) => {
        if (event.type === 'node_started') started.set(event.data.node, performance.now());
        if (event.type === 'node_finished' && started.has(event.data.node)) times[event.data.node] = performance.now() - started.get(event.data.node)!;
      },
    });
    if (result.status !== 'success') throw new Error(`the prompt failed: ${JSON.stringify(result.error)}`);
    return times;
  }

  const models = existsSync(join(paths.models, 'sd15')) ? ['tiny-sd', 'sd15'] : ['tiny-sd'];
  if (models.length === 1) console.log(`(SD-1.5's architecture not at ${sd15}: /usr/bin/python3 tools/test-models/make_test_models.py --scale full --only sd15-optimum makes it)`);
  console.log(`bench/tgate-compare: ${availableParallelism()} cores; session memory budget ${GB(pool.memoryBudgetBytes)}`);
  for (const model of models) {
    const rounds = model === 'sd15' ? SD15_ROUNDS : ROUNDS;
    const steps = model === 'sd15' ? SD15_STEPS : 25;
    for (const withDeepCache of [false, true]) {
      const name = `${model}, ${withDeepCache ? 'TGATE + DeepCache' : 'TGATE'} (${steps} steps, gate ${Math.round(steps * 0.4)})`;
      // One untimed run of each prompt: derives and opens everything once.
      for (const keep of ['both', 'plain', 'gated'] as const) {
        const { prompt, outputs } = comparison(model, withDeepCache, seed++, keep, steps);
        await run(prompt, outputs);
      }
      const openedBefore = pool.opened;
      const inside = { plain: [] as number[], gated: [] as number[] };
      const alone = { plain: [] as number[], gated: [] as number[] };
      // Each round runs the comparison prompt and the two chains alone, in a rotated order, so that machine load
      // falls on all three alike; no session needs reopening between them while they fit the budget.
      for (let r = 0; r < rounds; r++) {
        const kinds = (['both', 'plain', 'gated'] as const).map((_, i, all) => all[(i + r) % 3]!);
        for (const keep of kinds) {
          const { prompt, outputs } = comparison(model, withDeepCache, seed++, keep, steps);
          const t = await run(prompt, outputs);
          if (keep === 'both') {
            inside.plain.push(t['3']!);
            inside.gated.push(t['12']!);
          } else alone[keep].push(t[keep === 'plain' ? '3' : '12']!);
        }
      }
      const openedInside = pool.opened - openedBefore;
      const speedInside = median(inside.plain) / median(inside.gated);
      const speedAlone = median(alone.plain) / median(alone.gated);
      const ratio = speedInside / speedAlone;
      const ok = Math.abs(ratio - 1) <= 0.05;
      if (!ok) failed = true;
      console.log(
        `  ${name}: inside the comparison graph ${speedInside.toFixed(2)}x (plain ${median(inside.plain).toFixed(0)} ms, gated ${median(inside.gated).toFixed(0)} ms); ` +
          `alone ${speedAlone.toFixed(2)}x (${median(alone.plain).toFixed(0)} / ${median(alone.gated).toFixed(0)} ms); ratio ${ratio.toFixed(3)}${ok ? '' : '  <- more than 5 % apart'}; ` +
          `sessions opened after the first runs: ${openedInside}`,
      );
    }
  }
  console.log(`peak RSS ${peakRssMB('self').toFixed(0)} MB; session memory budget ${GB(pool.memoryBudgetBytes)}; sessions open now ${GB(pool.openBytes)}`);

  await throughServer();
  await defaultWorkflowThreads();
  console.log(`machine: ${JSON.stringify(meter.stop())}`);
  if (failed) process.exitCode = 1;
}

/** The comparison graph through a real server once (embedded model): gated speed-up from `executing` arrivals. */
async function throughServer(): Promise<void> {
  const { startServer } = await import('../packages/server/src/index.ts');
  const { TestClient, postJson } = await import('../packages/server/test/helpers.ts');
  const server = await startServer({ root: repoRoot, port: 0, env: {}, logger: silentLogger, paths, dataDir: join(dir, 'server-data'), editorDir: join(dir, 'no-editor'), fsync: false });
  try {
    const client = await TestClient.connect(server.url, 'bench-compare');
    const speeds: number[] = [];
    for (let r = 0; r < 4; r++) {
      const arrivals = new Map<string, number>();
      const listener = (data: Buffer, binary: boolean) => {
        if (binary) return;
        const m = JSON.parse(String(data)) as { type: string; data: { node?: string | null } };
        if (m.type === 'executing' && typeof m.data.node === 'string') arrivals.set(m.data.node, performance.now());
      };
      client.ws.on('message', listener);
      const { json } = await postJson(`${server.url}/prompt`, { prompt: comparison('tiny-sd', false, 5000 + r, 'both', 25).prompt, client_id: client.clientId });
      await client.done(json.prompt_id, 300_000);
      client.ws.off('message', listener);
      if (r === 0) continue; // the server's thread opens the model on the first
      // KSampler 3 runs from its `executing` to the next node's; likewise 12.
      const order = [...arrivals.entries()].sort((a, b) => a[1] - b[1]);
      const span = (id: string) => {
        const i = order.findIndex(([n]) => n === id);
        return order[i + 1]![1] - order[i]![1];
      };
      speeds.push(span('3') / span('12'));
    }
    await client.close();
    console.log(`through the server (tiny-sd, TGATE, 3 re-queued comparison prompts): gated sampler ${median(speeds).toFixed(2)}x faster than the plain one in the same prompt`);
  } finally {
    await server.close();
  }
}

/** The default workflow's time per image: the engine's thread rule vs all cores everywhere, in child processes. */
async function defaultWorkflowThreads(): Promise<void> {
  const runs: Record<'rule' | 'fixed', number[]> = { rule: [], fixed: [] };
  for (let r = 0; r < 4; r++) {
    for (const mode of r % 2 ? (['fixed', 'rule'] as const) : (['rule', 'fixed'] as const)) {
      const env = { ...process.env, ...(mode === 'fixed' ? { GATEGRAPH_INTRA_OP_THREADS: String(availableParallelism()) } : { GATEGRAPH_INTRA_OP_THREADS: '' }) };
      const child = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'bench', 'tgate-compare.ts'), '--child-default'], { env, encoding: 'utf8', cwd: repoRoot });
      const line = /per image (\d+(?:\.\d+)?) ms/.exec(child.stdout ?? '');
      if (!line) throw new Error(`the default-workflow child failed: ${child.stderr}`);
      runs[mode].push(Number(line[1]));
    }
  }
  const fixed = median(runs.fixed);
  const rule = median(runs.rule);
  console.log(`default workflow (tiny-sd, 25 steps), time per image: all cores everywhere ${fixed.toFixed(0)} ms; threads by model ${rule.toFixed(0)} ms (${(fixed / rule).toFixed(2)}x)`);
}

/** Child: the default workflow re-queued with new seeds; prints the median time per image. */
async function childDefaultWorkflow(): Promise<void> {
  const registry = new NodeRegistry();
  await loadPacks({ packages: [join(repoRoot, 'packages', 'nodes-tgate')], registry });
  const executor = new Executor(registry, { paths, logger: silentLogger });
  const prompt = JSON.parse(readFileSync(join(repoRoot, 'workflows', 'default.json'), 'utf8')) as ApiPrompt;
  const times: number[] = [];
  for (let r = 0; r < 6; r++) {
    prompt['3']!.inputs.seed = 100 + r;
    const validation = await validatePrompt(prompt, registry, { context: { paths } });
    const t0 = performance.now();
    const result = await executor.run(validation.prompt, { promptId: `default-${r}`, outputs: validation.outputs });
    if (result.status !== 'success') throw new Error(JSON.stringify(result.error));
    if (r > 0) times.push(performance.now() - t0); // the first loads the model
  }
  console.log(`per image ${median(times).toFixed(1)} ms`);
}
