// The queue on Redis with workers in other processes (docs/scaling.md), tested as it is deployed: a real
// redis-server (AOF, appendfsync always), two API instances (`pnpm serve --redis`) and three workers (`gategraph
// worker --redis`), each with folders of its own, on loopback. The prompts load an uploaded image, wait (a node
// that only waits, as a remote call would) and save it, so inputs and outputs must travel between machines.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiPrompt } from '@gategraph/core';
import { getJson, makePng, postJson, TestClient, until, type WsMessage } from './helpers.ts';
import { apiProcess, RedisProcess, workerProcess, type DeploymentProcess } from './fixtures/redis-deployment.ts';

const LOCK = ['--lock-timeout', '2'];
// Every prompt runs its nodes (identical prompts would otherwise come from a worker's output cache in no time).
const WORKER = [...LOCK, '--cache-none'];
const base = mkdtempSync(join(tmpdir(), 'gg-redis-'));
let redis: RedisProcess;
let apiA: DeploymentProcess;
let apiB: DeploymentProcess;
const workers: DeploymentProcess[] = [];
const clients: TestClient[] = [];

before(async () => {
  redis = await RedisProcess.start(join(base, 'redis'));
  [apiA, apiB] = await Promise.all([apiProcess(redis, base, 'api-a', LOCK).start(), apiProcess(redis, base, 'api-b', LOCK).start()]);
  workers.push(...(await Promise.all(['w1', 'w2', 'w3'].map((id) => workerProcess(redis, base, id, WORKER).start()))));
  // Uploaded to one API instance: the workers find it in Redis.
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(makePng(16, 16, 1))], { type: 'image/png' }), 'dot.png');
  const upload = await fetch(`${apiA.url}/upload/image`, { method: 'POST', body: form });
  assert.equal(upload.status, 200, await upload.text());
});

after(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await Promise.allSettled([apiA, apiB, ...workers].filter(Boolean).map((p) => p.kill()));
  await redis?.kill();
  rmSync(base, { recursive: true, force: true });
});

/** LoadImage(dot.png) -> WaitSeconds -> SaveImage. */
function prompt(seconds: number, prefix: string): ApiPrompt {
  return {
    load: { class_type: 'LoadImage', inputs: { image: 'dot.png' } },
    wait: { class_type: 'WaitSeconds', inputs: { value: ['load', 0], seconds } },
    save: { class_type: 'SaveImage', inputs: { images: ['wait', 0], filename_prefix: prefix } },
  };
}

async function queue(api: DeploymentProcess, body: Record<string, unknown>): Promise<string> {
  const { status, json } = await postJson(`${api.url}/prompt`, body);
  assert.equal(status, 200, JSON.stringify(json));
  return json.prompt_id as string;
}

async function history(api: DeploymentProcess): Promise<Record<string, any>> {
  return (await getJson(`${api.url}/history`)).json;
}

const terminal = (m: WsMessage) => m.type === 'executing' && m.data.node === null;

test('60 prompts from 5 websocket clients over 2 API instances and 3 workers: each runs once, each client gets its own messages, any instance serves any output', async () => {
  for (let i = 0; i < 5; i++) clients.push(await TestClient.connect(i < 3 ? apiA.url : apiB.url, `client-${i}`));
  const own = new Map<string, string[]>(clients.map((c) => [c.clientId, []]));
  const ids: string[] = [];
  for (let round = 0; round < 12; round++) {
    for (const [i, client] of clients.entries()) {
      // Posted through either instance, whichever the client is connected to.
      const id = await queue((round + i) % 2 ? apiA : apiB, { prompt: prompt(round % 3 === 0 ? 1 : 0, `c${i}`), client_id: client.clientId });
      own.get(client.clientId)!.push(id);
      ids.push(id);
    }
  }
  await Promise.all(clients.map((c) => Promise.all(own.get(c.clientId)!.map((id) => c.done(id, 120_000)))));

  const entries = await history(apiB);
  assert.deepEqual(Object.keys(entries).sort(), [...ids].sort(), 'every prompt in the history once');
  for (const id of ids) assert.equal(entries[id].status.status_str, 'success', `${id}: ${JSON.stringify(entries[id].status)}`);
  for (const client of clients) {
    const mine = new Set(own.get(client.clientId));
    const foreign = client.messages.filter((m) => typeof m.data?.prompt_id === 'string' && !mine.has(m.data.prompt_id));
    assert.deepEqual(foreign, [], `${client.clientId} got another client's messages`);
    for (const id of mine) {
      const of = client.ofPrompt(id);
      assert.deepEqual(of.filter((m) => m.type === 'execution_start').length, 1, `${id}: one execution_start`);
      assert.deepEqual(of.filter((m) => m.type === 'execution_success').length, 1, `${id}: one execution_success`);
      assert.deepEqual(of.filter(terminal).length, 1, `${id}: one final executing`);
      const executed = of.find((m) => m.type === 'executed' && m.data.node === 'save');
      assert.ok(executed?.data.output.images[0].filename, `${id}: executed with its image`);
    }
  }
  // Every worker took work, and none ran a prompt twice.
  const runs = workers.flatMap((w) => w.grep(' executed in ').map((line) => ({ worker: w.name, id: /Prompt (\S+) executed/.exec(line)![1]! })));
  for (const w of workers) assert.ok(runs.some((r) => r.worker === w.name), `${w.name} ran prompts`);
  assert.equal(runs.length, ids.length, 'each prompt ran once');
  // Outputs are on the workers' machines; both API instances serve them.
  for (const id of ids.slice(0, 10)) {
    const image = entries[id].outputs.save.images[0];
    for (const api of [apiA, apiB]) {
      const view = await fetch(`${api.url}/view?filename=${encodeURIComponent(image.filename)}&type=output&subfolder=${encodeURIComponent(image.subfolder)}`);
      assert.equal(view.status, 200, `${api.name} /view ${image.filename}`);
      assert.deepEqual([...new Uint8Array(await view.arrayBuffer()).subarray(1, 4)], [0x50, 0x4e, 0x47]);
    }
  }
});

test('front, delete and interrupt reach across processes; /queue and /system_stats say which worker runs what; a worker stopped with SIGTERM records its prompt', async () => {
  // Three long prompts occupy the three workers.
  const long = await Promise.all([0, 1, 2].map(() => queue(apiA, { prompt: prompt(20, 'long') })));
  await until(async () => (await getJson(`${apiB.url}/queue`)).json.queue_running.length === 3, 20_000);
  const running = (await getJson(`${apiB.url}/queue`)).json.queue_running as Array<[number, string, unknown, Record<string, unknown>]>;
  assert.deepEqual(running.map((r) => r[3].worker).sort(), ['w1', 'w2', 'w3']);
  const stats = (await getJson(`${apiA.url}/system_stats`)).json;
  assert.deepEqual(stats.workers.map((w: { id: string }) => w.id), ['w1', 'w2', 'w3']);
  assert.equal(stats.workers.filter((w: { running: string | null }) => w.running !== null).length, 3);

  const p1 = await queue(apiA, { prompt: prompt(0, 'p1') });
  const p2 = await queue(apiA, { prompt: prompt(0, 'p2') });
  const p3 = await queue(apiB, { prompt: prompt(0, 'p3'), front: true });
  const p4 = await queue(apiB, { prompt: prompt(0, 'p4'), front: true });
  const pending = (await getJson(`${apiA.url}/queue`)).json.queue_pending.map((p: [number, string]) => p[1]);
  assert.deepEqual(pending, [p4, p3, p1, p2], 'a later front prompt before an earlier one, both before the rest');
  assert.deepEqual((await postJson(`${apiB.url}/queue`, { delete: [p2] })).json, { removed: [p2] });

  // Interrupting through the other instance stops the prompt on whichever worker runs it.
  assert.deepEqual((await postJson(`${apiB.url}/interrupt`, { prompt_id: long[0] })).json, { interrupted: true });
  await until(async () => (await getJson(`${apiA.url}/history/${long[0]}`)).json[long[0]!] !== undefined, 10_000);
  const stopped = (await getJson(`${apiA.url}/history/${long[0]}`)).json[long[0]!];
  assert.equal(stopped.status.status_str, 'error');
  assert.ok(stopped.status.messages.some(([type]: [string]) => type === 'execution_interrupted'));
  // The one freed worker takes the front prompts first, then the rest in order.
  await until(async () => {
    const done = await history(apiA);
    return [p1, p3, p4].every((id) => id in done);
  }, 20_000);
  for (const id of long.slice(1)) await postJson(`${apiA.url}/interrupt`, { prompt_id: id });
  const entries = await history(apiA);
  assert.equal(entries[p2], undefined, 'a deleted prompt never runs');
  const started = (id: string) => entries[id].status.messages.find(([type]: [string]) => type === 'execution_start')[1].timestamp as number;
  assert.ok(started(p4) <= started(p3) && started(p3) <= started(p1), 'front prompts started first');
  await until(async () => long.every((id) => id in entries) || Promise.resolve(history(apiA)).then((h) => long.every((id) => id in h)), 10_000);

  // A worker stopped with SIGTERM (a deploy) interrupts its prompt and records it before it leaves.
  const stopping = await queue(apiB, { prompt: prompt(20, 'stopping') });
  await until(async () => ((await getJson(`${apiA.url}/queue`)).json.queue_running as Array<[number, string, unknown, Record<string, string>]>).some((r) => r[1] === stopping && r[3].worker !== 'starting'), 20_000);
  const name = ((await getJson(`${apiA.url}/queue`)).json.queue_running as Array<[number, string, unknown, Record<string, string>]>).find((r) => r[1] === stopping)![3].worker!;
  const index = workers.findIndex((w) => w.name === name);
  await workers[index]!.kill('SIGTERM');
  const recorded = (await getJson(`${apiA.url}/history/${stopping}`)).json[stopping];
  assert.ok(recorded, 'recorded before the worker exited');
  const [type, data] = recorded.status.messages.at(-1);
  assert.deepEqual([type, data.reason], ['execution_interrupted', 'server_stopped']);
  assert.match(data.message, /The worker running this prompt was stopped/);
  workers[index] = await workerProcess(redis, base, name, WORKER).start();
});

test('a worker killed mid-prompt, an API instance restarted and Redis crashed (AOF): nothing acknowledged is lost, every prompt ends once', async () => {
  const ids: string[] = [];
  const post = async (api: DeploymentProcess, n: number, seconds: number) => {
    for (let i = 0; i < n; i++) ids.push(await queue(api, { prompt: prompt(seconds, 'fault'), client_id: 'faults' }));
  };
  await post(apiA, 6, 2);
  // Kill the worker running the first prompt, with no chance to clean up.
  const runningOurs = async () => ((await getJson(`${apiA.url}/queue`)).json.queue_running as Array<[number, string, unknown, Record<string, string>]>).filter((r) => ids.includes(r[1]) && r[3].worker !== 'starting');
  await until(async () => (await runningOurs()).length > 0, 20_000);
  const [, victimPrompt, , extra] = (await runningOurs())[0]!;
  const victim = workers.find((w) => w.name === extra!.worker)!;
  await victim.kill('SIGKILL');
  // A worker added mid-run takes work.
  const added = await workerProcess(redis, base, 'w4', WORKER).start();
  workers.push(added);
  await post(apiB, 6, 1);
  // An API instance dies and comes back (on another port): the queue lives on in Redis.
  await apiB.kill('SIGKILL');
  apiB = await apiProcess(redis, base, 'api-b2', LOCK).start();
  await post(apiB, 6, 1);
  // Redis crashes and restarts from its append-only file.
  await redis.crashAndRestart();
  await post(apiA, 6, 0);

  await until(async () => {
    try {
      const entries = await history(apiB);
      return ids.every((id) => id in entries);
    } catch {
      return false;
    }
  }, 120_000);
  const entries = await history(apiB);
  const lost = ids.filter((id) => entries[id].status.status_str !== 'success');
  assert.deepEqual(lost, [victimPrompt], 'only the killed worker\'s prompt did not finish');
  const [type, data] = entries[victimPrompt].status.messages.at(-1);
  assert.equal(type, 'execution_interrupted');
  assert.equal(data.reason, 'worker_lost');
  assert.match(data.message, new RegExp(`The worker running this prompt \\(${victim.name}\\) stopped answering`));
  // No prompt ran to success twice (a lost prompt is not retried).
  const runs = workers.flatMap((w) => w.grep(' executed in ').map((line) => /Prompt (\S+) executed/.exec(line)![1]!)).filter((id) => ids.includes(id));
  assert.equal(new Set(runs).size, runs.length, 'no prompt executed twice');
  assert.ok(added.grep(' executed in ').length > 0, 'the added worker took prompts');
});
