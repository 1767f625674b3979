import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ALL_CACHED_NOTE } from '../src/index.ts';
import { getJson, makePng, postJson, slowPrompt, startTestServer, TestClient } from './helpers.ts';

test("ComfyUI's websocket example contract: queue, read until executing null, history, view each image", async () => {
  const server = await startTestServer();
  try {
    const clientId = randomUUID();
    const client = await TestClient.connect(server.url, clientId);
    const first = client.messages[0]!;
    assert.equal(first.type, 'status');
    assert.equal(first.data.sid, clientId);
    assert.deepEqual(first.data.status, { exec_info: { queue_remaining: 0 } });

    const promptId = randomUUID();
    // The example posts with urllib: JSON without a Content-Type header.
    const response = await fetch(`${server.url}/prompt`, {
      method: 'POST',
      body: JSON.stringify({ prompt: slowPrompt(7), client_id: clientId, prompt_id: promptId }),
    });
    assert.equal(response.status, 200);
    const queued = (await response.json()) as { prompt_id: string; number: number; node_errors: object };
    assert.equal(queued.prompt_id, promptId);
    assert.equal(typeof queued.number, 'number');
    assert.deepEqual(queued.node_errors, {});

    await client.done(promptId);
    const types = client.ofPrompt(promptId).map((m) => m.type);
    assert.equal(types[0], 'execution_start');
    assert.equal(types[1], 'execution_cached');
    assert.deepEqual(
      types.filter((t) => t === 'executing').length,
      4,
      'executing for nodes 1, 2, 3 and the final null',
    );
    assert.deepEqual(
      client.ofPrompt(promptId).filter((m) => m.type === 'progress').map((m) => [m.data.value, m.data.max, m.data.node]),
      [
        [1, 3, '2'],
        [2, 3, '2'],
        [3, 3, '2'],
      ],
    );
    assert.ok(types.indexOf('executed') < types.indexOf('execution_success'));
    assert.equal(types.at(-1), 'executing');

    // History is already written when `executing null` arrives.
    const history = await getJson(`${server.url}/history/${promptId}`);
    assert.equal(history.status, 200);
    const entry = history.json[promptId];
    assert.equal(entry.status.status_str, 'success');
    assert.equal(entry.status.completed, true);
    assert.deepEqual(
      entry.status.messages.map((m: [string, unknown]) => m[0]),
      ['execution_start', 'execution_cached', 'execution_success'],
    );
    assert.equal(entry.prompt[1], promptId);
    assert.deepEqual(entry.prompt[4], ['3']);
    assert.deepEqual(entry.meta['3'], { node_id: '3', display_node: '3', parent_node: null, real_node_id: '3' });

    const images = Object.values(entry.outputs as Record<string, { images: { filename: string; subfolder: string; type: string }[] }>).flatMap(
      (o) => o.images,
    );
    assert.equal(images.length, 1);
    for (const image of images) {
      const params = new URLSearchParams({ filename: image.filename, subfolder: image.subfolder, type: image.type });
      const view = await fetch(`${server.url}/view?${params}`);
      assert.equal(view.status, 200);
      assert.equal(view.headers.get('content-type'), 'image/png');
      const bytes = Buffer.from(await view.arrayBuffer());
      assert.deepEqual(bytes, readFileSync(join(server.config.paths.output, image.filename)));
      assert.deepEqual(bytes, makePng(8, 8, 7));
    }
    await client.close();
  } finally {
    await server.dispose();
  }
});

test('execution messages go only to the prompt’s client; status goes to everyone', async () => {
  const server = await startTestServer();
  try {
    const alice = await TestClient.connect(server.url, 'alice');
    const bob = await TestClient.connect(server.url, 'bob');
    const a = await postJson(`${server.url}/prompt`, { prompt: slowPrompt(1, 4, 5, 'png'), client_id: 'alice' });
    const b = await postJson(`${server.url}/prompt`, { prompt: slowPrompt(2, 4, 5, 'png'), client_id: 'bob' });
    await alice.done(a.json.prompt_id);
    await bob.done(b.json.prompt_id);

    const promptIdsSeen = (client: TestClient) =>
      new Set(client.messages.filter((m) => m.data?.prompt_id !== undefined).map((m) => m.data.prompt_id));
    assert.deepEqual([...promptIdsSeen(alice)], [a.json.prompt_id]);
    assert.deepEqual([...promptIdsSeen(bob)], [b.json.prompt_id]);
    assert.equal(alice.ofPrompt(a.json.prompt_id).filter((m) => m.type === 'progress').length, 4);

    // Previews: binary frames, u32 BE type 1, u32 BE format 2 (PNG), then the image; only to the owner.
    assert.equal(alice.binary.length, 4);
    assert.equal(bob.binary.length, 4);
    const frame = alice.binary[0]!;
    assert.equal(frame.readUInt32BE(0), 1);
    assert.equal(frame.readUInt32BE(4), 2);
    assert.deepEqual(frame.subarray(8), makePng(4, 4, 1));
    assert.deepEqual(bob.binary[0]!.subarray(8), makePng(4, 4, 2));

    // Both saw queue status updates (broadcast), without a sid.
    for (const client of [alice, bob]) {
      const idle = await client.waitFor((m) => m.type === 'status' && m.data.status.exec_info.queue_remaining === 0 && m.data.sid === undefined);
      assert.deepEqual(idle.data, { status: { exec_info: { queue_remaining: 0 } } });
      assert.ok(client.messages.some((m) => m.type === 'status' && m.data.status.exec_info.queue_remaining >= 1));
    }
    await alice.close();
    await bob.close();
  } finally {
    await server.dispose();
  }
});

test('a disconnected client misses messages; reconnecting with the same clientId gets the later ones', async () => {
  const server = await startTestServer();
  try {
    const first = await TestClient.connect(server.url, 'carol');
    const queued = await postJson(`${server.url}/prompt`, { prompt: slowPrompt(3, 40, 25), client_id: 'carol' });
    const promptId = queued.json.prompt_id as string;
    await first.waitFor((m) => m.type === 'progress' && m.data.value >= 2);
    await first.close();
    const again = await TestClient.connect(server.url, 'carol');
    // On reconnect during its prompt, the client is told which node is executing.
    const where = await again.waitFor((m) => m.type === 'executing' && m.data.prompt_id === promptId);
    assert.equal(where.data.node, '2');
    await again.done(promptId);
    const progress = again.ofPrompt(promptId).filter((m) => m.type === 'progress');
    assert.ok(progress.length > 0);
    assert.equal(progress.at(-1)!.data.value, 40);
    // Nothing was replayed: the first message progress value is later than the first client's last.
    const lastSeenBefore = first.messages.filter((m) => m.type === 'progress').at(-1)!.data.value as number;
    assert.ok(progress[0]!.data.value > lastSeenBefore);
    await again.close();
  } finally {
    await server.dispose();
  }
});

test('a resubmitted identical prompt says that everything came from the cache', async () => {
  const server = await startTestServer();
  try {
    const client = await TestClient.connect(server.url, 'dave');
    const prompt = slowPrompt(9);
    const first = await postJson(`${server.url}/prompt`, { prompt, client_id: 'dave' });
    await client.done(first.json.prompt_id);
    const second = await postJson(`${server.url}/prompt`, { prompt, client_id: 'dave' });
    await client.done(second.json.prompt_id);

    const messages = client.ofPrompt(second.json.prompt_id);
    const cached = messages.find((m) => m.type === 'execution_cached')!;
    assert.deepEqual([...cached.data.nodes].sort(), ['1', '2', '3']);
    assert.equal(messages.filter((m) => m.type === 'executing' && m.data.node !== null).length, 0);
    assert.equal(messages.find((m) => m.type === 'execution_success')!.data.note, ALL_CACHED_NOTE);
    // The cached output node still reports its images, as ComfyUI does.
    assert.equal(messages.find((m) => m.type === 'executed')!.data.node, '3');

    const entry = (await getJson(`${server.url}/history/${second.json.prompt_id}`)).json[second.json.prompt_id];
    const cachedMessage = entry.status.messages.find((m: [string, any]) => m[0] === 'execution_cached');
    assert.deepEqual([...cachedMessage[1].nodes].sort(), ['1', '2', '3']);
    assert.ok(entry.outputs['3'].images.length === 1);
    await client.close();
  } finally {
    await server.dispose();
  }
});

test('execution_error reaches the client and the history', async () => {
  const server = await startTestServer();
  try {
    const client = await TestClient.connect(server.url, 'erin');
    const prompt = {
      '1': { class_type: 'TestConstant', inputs: { value: 5 } },
      '2': { class_type: 'TestFail', inputs: { value: ['1', 0] } },
    };
    const queued = await postJson(`${server.url}/prompt`, { prompt, client_id: 'erin' });
    assert.equal(queued.status, 200);
    await client.done(queued.json.prompt_id);
    const error = client.ofPrompt(queued.json.prompt_id).find((m) => m.type === 'execution_error')!;
    assert.equal(error.data.node_id, '2');
    assert.equal(error.data.node_type, 'TestFail');
    assert.match(error.data.exception_message, /TestFail always fails \(value 5\)/);
    const entry = (await getJson(`${server.url}/history/${queued.json.prompt_id}`)).json[queued.json.prompt_id];
    assert.equal(entry.status.status_str, 'error');
    assert.equal(entry.status.completed, false);
    assert.equal(entry.status.messages.at(-1)[0], 'execution_error');
    await client.close();
  } finally {
    await server.dispose();
  }
});

test('previews to a client that does not read are dropped; the prompt is not slowed down', async () => {
  const server = await startTestServer();
  try {
    const slow = await TestClient.connect(server.url, 'slow-reader');
    const watcher = await TestClient.connect(server.url, 'watcher');
    // The client stops reading: its socket buffer fills up on the server side.
    const raw = (slow.ws as unknown as { _socket: import('node:net').Socket })._socket;
    raw.pause();
    const queued = await postJson(`${server.url}/prompt`, { prompt: slowPrompt(5, 200, 0, 'large'), client_id: 'slow-reader' });
    // 200 previews of 512 KiB = 100 MiB if all were queued; the run must finish anyway.
    const done = await postJson(`${server.url}/prompt`, { prompt: slowPrompt(6, 1, 0), client_id: 'watcher' });
    await watcher.done(done.json.prompt_id, 20_000);
    const entry = (await getJson(`${server.url}/history/${queued.json.prompt_id}`)).json[queued.json.prompt_id];
    assert.equal(entry.status.status_str, 'success');
    assert.ok(server.hub.droppedPreviews > 100, `dropped ${server.hub.droppedPreviews} previews`);

    raw.resume();
    await slow.done(queued.json.prompt_id, 20_000);
    // Every JSON message still arrived, in order; only previews were dropped.
    assert.equal(slow.ofPrompt(queued.json.prompt_id).filter((m) => m.type === 'progress').length, 200);
    assert.ok(slow.binary.length < 200);
    await slow.close();
    await watcher.close();
  } finally {
    await server.dispose();
  }
});
