// Nodes run off the server's event loop (src/executor-thread.ts): a node that computes synchronously leaves HTTP
// and websocket answering and its progress arriving as it happens; /interrupt stops a node at its next check, and
// one that never checks within the hard-stop bound (a fresh thread then runs the next prompt); models and cached
// results stay in the thread across prompts; /free and the cache flags reach it. A real server on loopback
// loading a real pack from custom_nodes/, as `pnpm serve` does.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { ApiPrompt } from '@gategraph/core';
import { HARD_STOP_REASON } from '../src/index.ts';
import { getJson, postJson, startTestServer, TestClient, type TestServer, type WsMessage } from './helpers.ts';

/** BusyLoop and Spin block their thread; Load/Report stand for a model loader and a node using it. */
const PACK = `import { threadId } from 'node:worker_threads';
import { defineNode, definePack, int, socket, string } from '@gategraph/core';
const models = new Map();
let loads = 0;
const busy = (ms) => { const end = Date.now() + ms; while (Date.now() < end) {} };
export default definePack({
  name: 'thread-test',
  nodes: [
    defineNode({
      id: 'BusyLoop',
      description: 'Computes synchronously for ms, reporting progress (and so checking for interrupts) steps times.',
      outputNode: true,
      inputs: { ms: int({ default: 2000, min: 0, max: 600000 }), steps: int({ default: 10, min: 1, max: 1000 }), seed: int({ default: 0 }) },
      outputs: [],
      execute(inputs, ctx) {
        for (let step = 1; step <= inputs.steps; step++) {
          busy(inputs.ms / inputs.steps);
          ctx.progress(step, inputs.steps);
        }
        return { ui: { thread: [threadId] }, result: [] };
      },
    }),
    defineNode({
      id: 'Spin',
      description: 'Computes synchronously for ms and never checks for interrupts.',
      outputNode: true,
      inputs: { ms: int({ default: 60000, min: 0, max: 600000 }), seed: int({ default: 0 }) },
      outputs: [],
      execute(inputs) {
        busy(inputs.ms);
        return { ui: {}, result: [] };
      },
    }),
    defineNode({
      id: 'Load',
      inputs: { name: string({ default: 'm' }) },
      outputs: [{ type: 'TEST_MODEL' }],
      execute(inputs) {
        if (!models.has(inputs.name)) models.set(inputs.name, ++loads);
        return [inputs.name];
      },
    }),
    defineNode({
      id: 'Report',
      outputNode: true,
      inputs: { model: socket('TEST_MODEL'), seed: int({ default: 0 }) },
      outputs: [],
      execute(inputs) {
        return { ui: { loads: [loads], loaded: [models.has(inputs.model)], thread: [threadId] }, result: [] };
      },
    }),
  ],
  onFree: () => models.clear(),
});
`;

const HARD_STOP_MS = 1500;
const dir = mkdtempSync(join(tmpdir(), 'gg-thread-'));
mkdirSync(join(dir, 'custom_nodes'));
writeFileSync(join(dir, 'custom_nodes', 'thread-test.mjs'), PACK);

let server: TestServer;
let client: TestClient;
before(async () => {
  server = await startTestServer({ dir, registry: undefined, customNodesDir: join(dir, 'custom_nodes'), hardStopMs: HARD_STOP_MS });
  client = await TestClient.connect(server.url, randomUUID());
});
after(async () => {
  await client.close();
  await server.dispose();
});

async function queue(prompt: ApiPrompt, target = server): Promise<string> {
  const promptId = randomUUID();
  const queued = await postJson(`${target.url}/prompt`, { prompt, client_id: client.clientId, prompt_id: promptId });
  assert.equal(queued.status, 200, JSON.stringify(queued.json));
  return promptId;
}

const report = (seed: number): ApiPrompt => ({
  '1': { class_type: 'Load', inputs: { name: 'm' } },
  '2': { class_type: 'Report', inputs: { model: ['1', 0], seed } },
});

/** The Report node's UI output in the prompt's history entry. */
async function reported(promptId: string, target = server): Promise<{ loads: number; loaded: boolean; thread: number }> {
  const history = (await getJson(`${target.url}/history/${promptId}`)).json[promptId];
  assert.equal(history.status.status_str, 'success', JSON.stringify(history.status));
  const ui = history.outputs['2'];
  return { loads: ui.loads[0], loaded: ui.loaded[0], thread: ui.thread[0] };
}

const messageTypes = (promptId: string) => client.ofPrompt(promptId).map((m) => m.type);

test('while a node computes synchronously for 2 s, HTTP and websocket answer at once and progress arrives as it happens', { timeout: 30_000 }, async () => {
  const arrivals: number[] = [];
  const start = performance.now();
  const promptId = await queue({ '1': { class_type: 'BusyLoop', inputs: { ms: 2000, steps: 10, seed: 1 } } });
  const onProgress = (m: WsMessage) => m.type === 'progress' && m.data.prompt_id === promptId;
  client.ws.on('message', (data, binary) => {
    if (!binary && onProgress(JSON.parse(String(data)) as WsMessage)) arrivals.push(performance.now() - start);
  });
  await client.waitFor((m) => onProgress(m) && m.data.value >= 1);

  // Timed while the node keeps its thread busy.
  const httpMs: number[] = [];
  const wsMs: number[] = [];
  let busy = true;
  void client.done(promptId, 20_000).then(() => (busy = false));
  while (busy && httpMs.length < 8) {
    let t = performance.now();
    const stats = await getJson(`${server.url}/system_stats`);
    assert.equal(stats.status, 200);
    httpMs.push(performance.now() - t);
    t = performance.now();
    const other = await TestClient.connect(server.url, randomUUID());
    wsMs.push(performance.now() - t);
    await other.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await client.done(promptId, 20_000);
  const total = performance.now() - start;

  assert.ok(messageTypes(promptId).includes('execution_success'), JSON.stringify(messageTypes(promptId)));
  assert.ok(httpMs.length >= 4, `several requests made during the node's 2 s (got ${httpMs.length})`);
  assert.ok(Math.max(...httpMs) < 250, `GET /system_stats answered while the node ran: ${httpMs.map((ms) => ms.toFixed(0)).join(', ')} ms`);
  assert.ok(Math.max(...wsMs) < 250, `a websocket connected and got its status while the node ran: ${wsMs.map((ms) => ms.toFixed(0)).join(', ')} ms`);
  assert.equal(arrivals.length, 10, 'every step reported');
  // Steps are 200 ms apart: they arrive spread over the run, not in a burst at its end.
  assert.ok(arrivals[9]! - arrivals[0]! > 1200, `progress arrived as it happened: ${arrivals.map((ms) => ms.toFixed(0)).join(', ')} ms`);
  assert.ok(arrivals[0]! < total - 1200, 'the first step arrived long before the prompt ended');
});

test('/interrupt stops a synchronously computing node at its next check, in its thread', { timeout: 30_000 }, async () => {
  const before = await queue(report(100));
  await client.done(before);
  const threadBefore = (await reported(before)).thread;

  const promptId = await queue({ '1': { class_type: 'BusyLoop', inputs: { ms: 60_000, steps: 600, seed: 2 } } });
  await client.waitFor((m) => m.type === 'progress' && m.data.prompt_id === promptId && m.data.value >= 2);
  const t = performance.now();
  assert.deepEqual((await postJson(`${server.url}/interrupt`, {})).json, { interrupted: true });
  const interrupted = await client.waitFor((m) => m.type === 'execution_interrupted' && m.data.prompt_id === promptId);
  const stoppedMs = performance.now() - t;
  await client.done(promptId);

  assert.ok(stoppedMs < 1000, `stopped at its next check (100 ms apart), not by the hard stop: ${stoppedMs.toFixed(0)} ms`);
  assert.equal(interrupted.data.node_id, '1');
  assert.equal(interrupted.data.reason, undefined, 'an ordinary interrupt');
  const history = (await getJson(`${server.url}/history/${promptId}`)).json[promptId];
  assert.equal(history.status.status_str, 'error');
  assert.equal(history.status.completed, false);

  const after = await queue(report(101));
  await client.done(after);
  const { thread, loads } = await reported(after);
  assert.equal(thread, threadBefore, 'the same thread runs on: nothing was terminated');
  assert.equal(loads, 1, 'the model stayed loaded');
});

test('/interrupt on a node that never checks terminates its thread within the bound; the next prompt runs on a fresh one', { timeout: 30_000 }, async () => {
  const before = await queue(report(200));
  await client.done(before);
  const threadBefore = (await reported(before)).thread;

  const promptId = await queue({ '1': { class_type: 'Spin', inputs: { ms: 60_000, seed: 3 } } });
  await client.waitFor((m) => m.type === 'executing' && m.data.prompt_id === promptId && m.data.node === '1');
  const t = performance.now();
  assert.deepEqual((await postJson(`${server.url}/interrupt`, {})).json, { interrupted: true });
  // Meanwhile the server answers as usual.
  const during = performance.now();
  assert.equal((await getJson(`${server.url}/queue`)).status, 200);
  assert.ok(performance.now() - during < 250);

  const interrupted = await client.waitFor((m) => m.type === 'execution_interrupted' && m.data.prompt_id === promptId, 10_000);
  const stoppedMs = performance.now() - t;
  await client.done(promptId);
  assert.ok(stoppedMs >= HARD_STOP_MS - 50 && stoppedMs < HARD_STOP_MS + 2000, `stopped by the hard stop after ${HARD_STOP_MS} ms: ${stoppedMs.toFixed(0)} ms`);
  assert.equal(interrupted.data.reason, HARD_STOP_REASON);
  assert.equal(interrupted.data.node_id, '1');
  assert.equal(interrupted.data.node_type, 'Spin');
  assert.match(interrupted.data.message, /node 1 \(Spin\) did not stop within 1\.5 s of the interrupt/);
  const history = (await getJson(`${server.url}/history/${promptId}`)).json[promptId];
  assert.equal(history.status.status_str, 'error');
  assert.deepEqual(history.status.messages.at(-1)[0], 'execution_interrupted');
  assert.equal(history.status.messages.at(-1)[1].reason, HARD_STOP_REASON, 'the reason is in the history too');

  const after = await queue(report(201));
  await client.done(after, 20_000);
  assert.ok(messageTypes(after).includes('execution_success'), JSON.stringify(messageTypes(after)));
  const { thread, loads, loaded } = await reported(after);
  assert.notEqual(thread, threadBefore, 'a fresh thread');
  assert.equal(loads, 1, 'the model loaded again in the fresh thread');
  assert.equal(loaded, true);
});

test('models and cached results stay in the thread across prompts; POST /free reaches it', { timeout: 30_000 }, async () => {
  const first = await queue(report(300));
  await client.done(first);
  const loadsBefore = (await reported(first)).loads;

  const again = await queue(report(300));
  await client.done(again);
  const cached = client.ofPrompt(again).find((m) => m.type === 'execution_cached');
  assert.deepEqual([...(cached?.data.nodes ?? [])].sort(), ['1', '2'], 'an unchanged prompt is all cached');
  assert.ok(!client.ofPrompt(again).some((m) => m.type === 'executing' && m.data.node !== null), 'nothing executed');
  assert.match(String(client.ofPrompt(again).find((m) => m.type === 'execution_success')?.data.note), /every node/);

  const changed = await queue(report(301));
  await client.done(changed);
  assert.deepEqual(client.ofPrompt(changed).find((m) => m.type === 'execution_cached')?.data.nodes, ['1'], 'the loader is cached');
  assert.equal((await reported(changed)).loads, loadsBefore, 'and its model still loaded');

  // free_memory empties the cache in the thread: the loader runs again, its model still there.
  assert.equal((await postJson(`${server.url}/free`, { free_memory: true })).status, 200);
  const afterFree = await queue(report(301));
  await client.done(afterFree);
  assert.deepEqual(client.ofPrompt(afterFree).find((m) => m.type === 'execution_cached')?.data.nodes, []);
  assert.equal((await reported(afterFree)).loads, loadsBefore);

  // unload_models runs the pack's onFree in the thread: the model loads again.
  assert.equal((await postJson(`${server.url}/free`, { unload_models: true })).status, 200);
  const afterUnload = await queue(report(301));
  await client.done(afterUnload);
  assert.equal((await reported(afterUnload)).loads, loadsBefore + 1);
});

test('the cache flags reach the thread: with --cache-none an unchanged prompt runs again', { timeout: 30_000 }, async () => {
  const noCache = await startTestServer({
    dir: mkdtempSync(join(tmpdir(), 'gg-thread-none-')),
    registry: undefined,
    customNodesDir: join(dir, 'custom_nodes'),
    cache: { mode: 'none' },
  });
  const other = await TestClient.connect(noCache.url, client.clientId);
  try {
    for (let i = 0; i < 2; i++) {
      const promptId = await queue(report(400), noCache);
      await other.done(promptId);
      assert.deepEqual(other.ofPrompt(promptId).find((m) => m.type === 'execution_cached')?.data.nodes, [], `run ${i + 1} executes every node`);
      assert.equal((await reported(promptId, noCache)).loads, 1, 'the model itself stays loaded');
    }
  } finally {
    await other.close();
    await noCache.dispose();
  }
});
