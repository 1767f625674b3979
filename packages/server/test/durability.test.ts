import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@gategraph/core';
import { DurableStore, SERVER_STOPPED_MESSAGE, type QueueItem } from '../src/index.ts';
import { getJson, postJson, slowPrompt, spawnChildServer, startTestServer, TestClient, until } from './helpers.ts';

const tempDir = () => mkdtempSync(join(tmpdir(), 'gg-durable-'));

test('a graceful restart keeps history and pending prompts; the running one is recorded as interrupted', async () => {
  const dir = tempDir();
  try {
    const first = await startTestServer({ dir });
    const client = await TestClient.connect(first.url, 'r');
    const done = await postJson(`${first.url}/prompt`, { client_id: 'r', prompt: slowPrompt(1, 1, 0), prompt_id: 'done' });
    await client.done(done.json.prompt_id);
    await postJson(`${first.url}/prompt`, { client_id: 'r', prompt: slowPrompt(2, 1000, 20), prompt_id: 'running' });
    await client.waitFor((m) => m.type === 'progress' && m.data.prompt_id === 'running');
    await postJson(`${first.url}/prompt`, { client_id: 'r', prompt: slowPrompt(3, 1, 0), prompt_id: 'p1' });
    await postJson(`${first.url}/prompt`, { client_id: 'r', prompt: slowPrompt(4, 1, 0), prompt_id: 'p2', front: true });
    await first.close();
    // The client was told why its prompt stopped.
    const told = client.messages.find((m) => m.type === 'execution_interrupted' && m.data.prompt_id === 'running');
    assert.equal(told?.data.reason, 'server_stopped');

    const second = await startTestServer({ dir });
    try {
      assert.deepEqual(second.recovered, [], 'nothing was left running by a graceful stop');
      const history = (await getJson(`${second.url}/history`)).json;
      assert.equal(history.done.status.status_str, 'success');
      assert.equal(history.running.status.status_str, 'error');
      assert.equal(history.running.status.messages.at(-1)[0], 'execution_interrupted');
      // Pending prompts survived, kept their order, and run.
      await until(async () => {
        const h = (await getJson(`${second.url}/history`)).json;
        return h.p1 !== undefined && h.p2 !== undefined;
      });
      const order = Object.keys((await getJson(`${second.url}/history`)).json);
      assert.deepEqual(order, ['done', 'running', 'p2', 'p1']);
      // Ids stay unique across the restart.
      const dup = await postJson(`${second.url}/prompt`, { prompt: slowPrompt(5, 1, 0), prompt_id: 'done' });
      assert.equal(dup.status, 400);
    } finally {
      await second.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the store as a crash leaves it: the running prompt is reported interrupted, pending ones run', async () => {
  const dir = tempDir();
  try {
    // What a process killed mid-prompt leaves: `start` without `finish`, and a half-written last line.
    const { store } = DurableStore.open({ dir: join(dir, 'data'), history: { maxEntries: 100, maxBytes: 1e9 }, logger: silentLogger });
    const item = (id: string, seed: number, seq: number): QueueItem => ({
      number: seq,
      promptId: id,
      prompt: slowPrompt(seed, 1, 0),
      extraData: { client_id: 'crash' },
      outputs: ['3'],
      seq,
    });
    store.commit({ op: 'enqueue', item: item('was-running', 1, 0) });
    store.commit({ op: 'enqueue', item: item('was-pending', 2, 1) });
    store.commit({ op: 'start', id: 'was-running' });
    // Closing leaves the running prompt recorded as running, as a crash does (the stale lock a crash also
    // leaves is data-lock.test.ts's subject).
    store.close();
    const log = readdirSync(join(dir, 'data')).find((f) => f.startsWith('log-'))!;
    appendFileSync(join(dir, 'data', log), '{"op":"enqueue","item":{"numb');

    const server = await startTestServer({ dir });
    try {
      assert.deepEqual(server.recovered, ['was-running']);
      const entry = (await getJson(`${server.url}/history/was-running`)).json['was-running'];
      assert.equal(entry.status.status_str, 'error');
      assert.equal(entry.status.completed, false);
      const [type, data] = entry.status.messages.at(-1);
      assert.equal(type, 'execution_interrupted');
      assert.equal(data.message, SERVER_STOPPED_MESSAGE);
      assert.equal(data.prompt_id, 'was-running');
      await until(async () => (await getJson(`${server.url}/history/was-pending`)).json['was-pending'] !== undefined);
      const pending = (await getJson(`${server.url}/history/was-pending`)).json['was-pending'];
      assert.equal(pending.status.status_str, 'success');
    } finally {
      await server.close();
    }
    // A third start replays the compacted store: nothing is reported twice.
    const third = await startTestServer({ dir });
    try {
      assert.deepEqual(third.recovered, []);
      assert.deepEqual(Object.keys((await getJson(`${third.url}/history`)).json), ['was-running', 'was-pending']);
    } finally {
      await third.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a server process killed with SIGKILL mid-prompt loses nothing', async () => {
  const dir = tempDir();
  const { child, url } = await spawnChildServer(dir);
  try {
    const client = await TestClient.connect(url, 'k');
    await postJson(`${url}/prompt`, { client_id: 'k', prompt: slowPrompt(1, 1000, 20), prompt_id: 'killed' });
    await postJson(`${url}/prompt`, { client_id: 'k', prompt: slowPrompt(2, 1, 0), prompt_id: 'queued' });
    await client.waitFor((m) => m.type === 'progress' && m.data.prompt_id === 'killed');
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;

    const server = await startTestServer({ dir });
    try {
      assert.deepEqual(server.recovered, ['killed']);
      const killed = (await getJson(`${server.url}/history/killed`)).json.killed;
      assert.equal(killed.status.status_str, 'error');
      assert.equal(killed.status.messages.at(-1)[1].message, SERVER_STOPPED_MESSAGE);
      await until(async () => (await getJson(`${server.url}/history/queued`)).json.queued !== undefined);
      assert.equal((await getJson(`${server.url}/history/queued`)).json.queued.status.status_str, 'success');
    } finally {
      await server.close();
    }
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
