/**
 * Scale-out (docs/scaling.md): a Redis deployment of real processes on loopback (redis-server with AOF
 * `appendfsync always`, one `serve --redis` API instance, `gategraph worker --redis` workers), measured three ways:
 *
 *  1. throughput with 1, 2 and 3 workers on prompts bounded by waiting, not CPU (LoadImage -> WaitSeconds(1) ->
 *     SaveImage, as a node calling a remote service waits): this machine has 2 cores, so CPU-bound prompts could
 *     not show scaling; prompts/s should grow with the workers (ideal: 1, 2, 3 per second);
 *  2. the queue's own cost per prompt: --prompts prompts that wait 0 s through the Redis deployment (1 worker)
 *     against the single-machine server (`serve`, same packs, same cache setting) queued the same way, all posted
 *     at once, wall time to the last terminal message / prompts; the difference is what Redis, BullMQ and the
 *     extra processes add to each prompt;
 *  3. event latency, worker to client: the executor stamps `execution_start` with the time it started the prompt
 *     (ms, same machine clock); the websocket client notes when it receives it. Median and 95th percentile, both
 *     deployments.
 *
 *   node --import tsx bench/scale.ts [--prompts 60] [--wait-prompts 12]
 *
 * Needs redis-server (Debian's redis-server package; scripts/test-prerequisites.mjs installs it for the tests).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliOptions, loadMeter, median, repoRoot } from './measure.ts';
import { makePng, TestClient } from '../packages/server/test/helpers.ts';
import { apiProcess, DeploymentProcess, processFolders, RedisProcess, redisAvailable, workerProcess } from '../packages/server/test/fixtures/redis-deployment.ts';

const { positiveInt } = cliOptions(process.argv.slice(2));
const PROMPTS = positiveInt('prompts', '60');
const WAIT_PROMPTS = positiveInt('wait-prompts', '12');
const WORKER = ['--cache-none', '--lock-timeout', '10'];

if (!redisAvailable()) {
  console.log('bench/scale: redis-server is not installed (Debian: apt-get install -y redis-server); nothing measured');
  process.exit(0);
}

const base = mkdtempSync(join(tmpdir(), 'gg-scale-'));
const processes: DeploymentProcess[] = [];
let redis: RedisProcess | undefined;

function prompt(seconds: number, n: number) {
  return {
    load: { class_type: 'LoadImage', inputs: { image: 'dot.png' } },
    wait: { class_type: 'WaitSeconds', inputs: { value: ['load', 0], seconds } },
    save: { class_type: 'SaveImage', inputs: { images: ['wait', 0], filename_prefix: `scale${n}` } },
  };
}

async function upload(url: string): Promise<void> {
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(makePng(16, 16, 1))], { type: 'image/png' }), 'dot.png');
  const response = await fetch(`${url}/upload/image`, { method: 'POST', body: form });
  if (response.status !== 200) throw new Error(`upload: ${response.status} ${await response.text()}`);
}

/** Posts `count` prompts at once; resolves with the wall time until the last one's terminal message, and latencies. */
async function burst(url: string, count: number, seconds: number, tag: string): Promise<{ seconds: number; latencies: number[] }> {
  const client = await TestClient.connect(url, `${tag}-${Date.now()}`);
  const received = new Map<string, number>();
  client.ws.on('message', (data, binary) => {
    if (binary) return;
    const m = JSON.parse(String(data)) as { type: string; data: { prompt_id?: string; timestamp?: number } };
    if (m.type === 'execution_start' && m.data.prompt_id && typeof m.data.timestamp === 'number') received.set(m.data.prompt_id, Date.now() - m.data.timestamp);
  });
  const started = performance.now();
  const ids = await Promise.all(
    Array.from({ length: count }, async (_, n) => {
      const response = await fetch(`${url}/prompt`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: prompt(seconds, n), client_id: client.clientId }) });
      const json = (await response.json()) as { prompt_id?: string };
      if (!json.prompt_id) throw new Error(`queueing failed: ${JSON.stringify(json)}`);
      return json.prompt_id;
    }),
  );
  await Promise.all(ids.map((id) => client.done(id, 600_000)));
  const wall = (performance.now() - started) / 1000;
  await client.close();
  return { seconds: wall, latencies: ids.flatMap((id) => (received.has(id) ? [received.get(id)!] : [])) };
}

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

try {
  const meter = loadMeter();
  redis = await RedisProcess.start(join(base, 'redis'));
  const api = await apiProcess(redis, base, 'api').start();
  processes.push(api);
  await upload(api.url);

  console.log(`bench/scale: ${WAIT_PROMPTS} prompts of LoadImage -> WaitSeconds(1) -> SaveImage per row, posted at once (2 cores: the work is waiting, not CPU)`);
  const throughput: Array<{ workers: number; perSecond: number }> = [];
  for (const count of [1, 2, 3]) {
    while (processes.filter((p) => p.kind === 'worker').length < count) {
      processes.push(await workerProcess(redis, base, `w${processes.length}`, WORKER).start());
    }
    const { seconds } = await burst(api.url, WAIT_PROMPTS, 1, `wait${count}`);
    throughput.push({ workers: count, perSecond: WAIT_PROMPTS / seconds });
    console.log(`  ${count} worker${count > 1 ? 's' : ' '}: ${(WAIT_PROMPTS / seconds).toFixed(2)} prompts/s (${seconds.toFixed(1)} s; ideal ${count.toFixed(2)})`);
  }
  for (const p of processes.filter((p) => p.kind === 'worker').slice(1)) await p.kill('SIGTERM');

  // Queue overhead: 0-second prompts, one worker, against the single-machine server.
  const single = new DeploymentProcess('api', ['--port', '0', '--pack', join(repoRoot, 'examples/example-pack'), '--cache-none', '--data-directory', join(base, 'local-data'), ...processFolders(base, 'local')], 'local');
  await single.start();
  processes.push(single);
  await upload(single.url);
  // One untimed round each (first prompts pay for module loading and connections).
  await burst(api.url, 5, 0, 'warm-redis');
  await burst(single.url, 5, 0, 'warm-local');
  const redisRun = await burst(api.url, PROMPTS, 0, 'redis');
  const localRun = await burst(single.url, PROMPTS, 0, 'local');
  const perPrompt = (run: { seconds: number }) => (run.seconds / PROMPTS) * 1000;
  console.log(`queue overhead: ${PROMPTS} prompts of WaitSeconds(0), posted at once, one worker`);
  console.log(`  single machine: ${perPrompt(localRun).toFixed(1)} ms/prompt; Redis + BullMQ + worker process: ${perPrompt(redisRun).toFixed(1)} ms/prompt; added ${(perPrompt(redisRun) - perPrompt(localRun)).toFixed(1)} ms/prompt`);
  console.log('event latency, execution_start stamped by the executor -> received by the websocket client (ms, same clock)');
  for (const [name, run] of [['single machine', localRun], ['Redis', redisRun]] as const) {
    console.log(`  ${name}: median ${median(run.latencies).toFixed(0)} ms, p95 ${percentile(run.latencies, 0.95).toFixed(0)} ms (${run.latencies.length} prompts)`);
  }
  const load = meter.stop();
  console.log(`machine: ${JSON.stringify(load)}`);
  const scaled = throughput[2]!.perSecond / throughput[0]!.perSecond;
  if (scaled < 2) {
    console.error(`3 workers ran only ${scaled.toFixed(2)}x the prompts of one: the queue does not spread waiting work`);
    process.exitCode = 1;
  }
} finally {
  await Promise.allSettled(processes.map((p) => p.kill()));
  await redis?.kill();
  rmSync(base, { recursive: true, force: true });
}
