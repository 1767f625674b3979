/**
 * Bounded load test, loopback only: 5 websocket clients queue 10 prompts each (50 in all) of a small
 * workflow against a server in its own process; all complete, each client sees only its own prompts,
 * nothing is lost. Prints throughput and the server's peak RSS. Stops by itself (60 s at most).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getJson, postJson, slowPrompt, spawnChildServer, TestClient } from './helpers.ts';

const CLIENTS = 5;
const PROMPTS_PER_CLIENT = 10;

test('load: 5 clients x 10 prompts all complete, isolated, nothing lost', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gg-load-'));
  const { child, url } = await spawnChildServer(dir);
  try {
    const clients = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => TestClient.connect(url, `load-${i}`)));
    const started = performance.now();
    const owned = new Map<string, string[]>();
    await Promise.all(
      clients.map(async (client, c) => {
        const ids: string[] = [];
        await Promise.all(
          Array.from({ length: PROMPTS_PER_CLIENT }, async (_, p) => {
            const seed = c * PROMPTS_PER_CLIENT + p;
            const r = await postJson(`${url}/prompt`, { prompt: slowPrompt(seed, 2, 1, 'png'), client_id: client.clientId });
            assert.equal(r.status, 200);
            ids.push(r.json.prompt_id);
          }),
        );
        owned.set(client.clientId, ids);
        await Promise.all(ids.map((id) => client.done(id, 50_000)));
      }),
    );
    const seconds = (performance.now() - started) / 1000;

    const history = (await getJson(`${url}/history`)).json;
    assert.equal(Object.keys(history).length, CLIENTS * PROMPTS_PER_CLIENT);
    for (const client of clients) {
      const mine = new Set(owned.get(client.clientId));
      const seen = new Set(client.messages.filter((m) => m.data?.prompt_id).map((m) => m.data.prompt_id as string));
      assert.deepEqual([...seen].sort(), [...mine].sort(), `${client.clientId} saw exactly its own prompts`);
      for (const id of mine) {
        const entry = history[id];
        assert.equal(entry.status.status_str, 'success');
        const image = entry.outputs['3'].images[0];
        assert.ok(existsSync(join(dir, 'output', image.filename)));
        const messages = client.ofPrompt(id);
        assert.equal(messages.filter((m) => m.type === 'progress').length, 2);
        assert.equal(messages.filter((m) => m.type === 'execution_success').length, 1);
      }
      assert.ok(client.binary.length <= PROMPTS_PER_CLIENT * 2, 'previews only for its own prompts');
    }
    const files = new Set(Object.values(history).map((e: any) => e.outputs['3'].images[0].filename));
    assert.equal(files.size, CLIENTS * PROMPTS_PER_CLIENT, 'no output file was overwritten');
    assert.equal((await getJson(`${url}/prompt`)).json.exec_info.queue_remaining, 0);

    const stats = (await getJson(`${url}/system_stats`)).json;
    const total = CLIENTS * PROMPTS_PER_CLIENT;
    console.log(
      `load: ${total} prompts from ${CLIENTS} clients in ${seconds.toFixed(2)} s = ${(total / seconds).toFixed(1)} prompts/s; ` +
        `server peak RSS ${(stats.system.rss_peak / 2 ** 20).toFixed(1)} MiB`,
    );
    await Promise.all(clients.map((client) => client.close()));
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)));
    rmSync(dir, { recursive: true, force: true });
  }
});
