import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getJson, postJson, slowPrompt, slowStepsRun, startTestServer, TestClient } from './helpers.ts';

test('queue order: number, front and arrival; delete and clear pending; run in that order', async () => {
  const server = await startTestServer();
  try {
    const client = await TestClient.connect(server.url, 'q');
    const post = (body: Record<string, unknown>) => postJson(`${server.url}/prompt`, { client_id: 'q', ...body });
    // A long prompt occupies the worker while the queue is arranged.
    const blocker = await post({ prompt: slowPrompt(1, 1000, 20), prompt_id: 'blocker' });
    await client.waitFor((m) => m.type === 'progress' && m.data.prompt_id === 'blocker');

    const a = await post({ prompt: slowPrompt(2, 1, 0), prompt_id: 'a' });
    const b = await post({ prompt: slowPrompt(3, 1, 0), prompt_id: 'b' });
    const c = await post({ prompt: slowPrompt(4, 1, 0), prompt_id: 'c', front: true });
    const d = await post({ prompt: slowPrompt(5, 1, 0), prompt_id: 'd', number: 1000 });
    const e = await post({ prompt: slowPrompt(6, 1, 0), prompt_id: 'e', number: a.json.number });
    const f = await post({ prompt: slowPrompt(7, 1, 0), prompt_id: 'f', front: true });
    assert.ok(a.json.number < b.json.number);
    assert.ok(c.json.number < a.json.number, 'front goes before everything pending');
    assert.ok(f.json.number < c.json.number, 'a later front goes before an earlier front');
    assert.equal(d.json.number, 1000);
    assert.equal(e.json.number, a.json.number);

    const queue = (await getJson(`${server.url}/queue`)).json;
    assert.deepEqual(queue.queue_running.map((item: unknown[]) => item[1]), ['blocker']);
    assert.deepEqual(queue.queue_pending.map((item: unknown[]) => item[1]), ['f', 'c', 'a', 'e', 'b', 'd']);
    const [number, id, prompt, extra, outputs] = queue.queue_pending[2];
    assert.equal(number, a.json.number);
    assert.equal(id, 'a');
    assert.equal(prompt['1'].inputs.value, 2);
    assert.equal(extra.client_id, 'q');
    assert.deepEqual(outputs, ['3']);
    assert.equal((await getJson(`${server.url}/prompt`)).json.exec_info.queue_remaining, 7);

    // Delete one pending, then run the rest in order.
    assert.deepEqual((await postJson(`${server.url}/queue`, { delete: ['b', 'unknown'] })).json, { removed: ['b'] });
    const pending = (await getJson(`${server.url}/queue`)).json.queue_pending.map((item: unknown[]) => item[1]);
    assert.deepEqual(pending, ['f', 'c', 'a', 'e', 'd']);

    await postJson(`${server.url}/interrupt`, { prompt_id: 'blocker' });
    await client.done('d');
    const order = Object.keys((await getJson(`${server.url}/history`)).json);
    assert.deepEqual(order, ['blocker', 'f', 'c', 'a', 'e', 'd']);
    assert.deepEqual((await getJson(`${server.url}/history/b`)).json, {}, 'a deleted prompt never runs');
    void blocker;

    // Clear.
    await post({ prompt: slowPrompt(8, 1000, 20), prompt_id: 'blocker2' });
    await client.waitFor((m) => m.type === 'progress' && m.data.prompt_id === 'blocker2');
    await post({ prompt: slowPrompt(9, 1, 0), prompt_id: 'x' });
    await post({ prompt: slowPrompt(10, 1, 0), prompt_id: 'y' });
    assert.deepEqual((await postJson(`${server.url}/queue`, { clear: true })).json.removed.sort(), ['x', 'y']);
    const cleared = (await getJson(`${server.url}/queue`)).json;
    assert.deepEqual(cleared.queue_pending, []);
    assert.equal(cleared.queue_running.length, 1, 'clear leaves the running prompt alone');
    await postJson(`${server.url}/interrupt`, {});
    await client.done('blocker2');
    await client.close();
  } finally {
    await server.dispose();
  }
});

test('interrupt stops the running prompt within one step; a prompt_id that is not running is ignored', async () => {
  const server = await startTestServer();
  try {
    const client = await TestClient.connect(server.url, 'int');
    const stepMs = 50;
    const running = await postJson(`${server.url}/prompt`, { client_id: 'int', prompt: slowPrompt(11, 200, stepMs) });
    const waiting = await postJson(`${server.url}/prompt`, { client_id: 'int', prompt: slowPrompt(12, 2, 0) });
    const id = running.json.prompt_id as string;
    await client.waitFor((m) => m.type === 'progress' && m.data.prompt_id === id && m.data.value >= 3);

    // Naming another prompt does nothing to the running one.
    assert.deepEqual((await postJson(`${server.url}/interrupt`, { prompt_id: waiting.json.prompt_id })).json, { interrupted: false });
    const stepsBefore = slowStepsRun.get(id)!;
    const started = performance.now();
    assert.deepEqual((await postJson(`${server.url}/api/interrupt`, { prompt_id: id })).json, { interrupted: true });
    await client.waitFor((m) => m.type === 'execution_interrupted' && m.data.prompt_id === id);
    const elapsed = performance.now() - started;
    await client.done(id);

    assert.ok(slowStepsRun.get(id)! <= stepsBefore + 2, `stopped within a step (ran ${slowStepsRun.get(id)} of 200, ${stepsBefore} before the interrupt)`);
    assert.ok(elapsed < stepMs * 4 + 1000, `interrupted in ${elapsed.toFixed(0)} ms`);
    const interrupted = client.ofPrompt(id).find((m) => m.type === 'execution_interrupted')!;
    assert.equal(interrupted.data.node_id, '2');
    assert.equal(interrupted.data.node_type, 'TestSlow');

    const entry = (await getJson(`${server.url}/history/${id}`)).json[id];
    assert.equal(entry.status.status_str, 'error');
    assert.equal(entry.status.completed, false);
    assert.equal(entry.status.messages.at(-1)[0], 'execution_interrupted');
    assert.deepEqual(entry.outputs, {});

    // The next prompt still runs.
    await client.done(waiting.json.prompt_id);
    const next = (await getJson(`${server.url}/history/${waiting.json.prompt_id}`)).json[waiting.json.prompt_id];
    assert.equal(next.status.status_str, 'success');
    await client.close();
  } finally {
    await server.dispose();
  }
});
