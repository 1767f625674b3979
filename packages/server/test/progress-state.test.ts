// ComfyUI's progress_state messages on a real server: after each change, every started node of the prompt with
// its state and progress, sent only to the client that queued it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { postJson, slowPrompt, startTestServer, TestClient, type TestServer, type WsMessage } from './helpers.ts';

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server.dispose();
});

async function queue(client: TestClient, seed: number): Promise<string> {
  const id = randomUUID();
  const queued = await postJson(`${server.url}/prompt`, { prompt: slowPrompt(seed, 4, 10), client_id: client.clientId, prompt_id: id });
  assert.equal(queued.status, 200, JSON.stringify(queued.json));
  return id;
}

type Nodes = Record<string, { value: number; max: number; state: string; node_id: string; prompt_id: string; display_node_id: string; parent_node_id: string | null; real_node_id: string }>;

test('progress_state follows each node from running to finished, for the prompt\'s own client only', { timeout: 30_000 }, async () => {
  const a = await TestClient.connect(server.url, randomUUID());
  const b = await TestClient.connect(server.url, randomUUID());
  try {
    const first = await queue(a, 1);
    const second = await queue(b, 2);
    await a.done(first);
    await b.done(second);
    const states = (client: TestClient) => client.messages.filter((m: WsMessage) => m.type === 'progress_state').map((m) => m.data as { prompt_id: string; nodes: Nodes });
    assert.deepEqual([...new Set(states(a).map((s) => s.prompt_id))], [first], 'client A sees its own prompt only');
    assert.deepEqual([...new Set(states(b).map((s) => s.prompt_id))], [second], 'client B sees its own prompt only');

    const seen = states(a);
    const last = seen.at(-1)!.nodes;
    assert.deepEqual(Object.keys(last).sort(), ['1', '2', '3']);
    for (const node of Object.values(last)) assert.equal(node.state, 'finished', JSON.stringify(node));
    assert.deepEqual(last['2'], { value: 4, max: 4, state: 'finished', node_id: '2', prompt_id: first, display_node_id: '2', parent_node_id: null, real_node_id: '2' });
    // The slow node's progress, in order, while it ran; the node after it had not started yet.
    const running = seen.filter((s) => s.nodes['2']?.state === 'running').map((s) => s.nodes['2']!.value);
    assert.deepEqual(running, [0, 1, 2, 3, 4]);
    assert.ok(seen.filter((s) => s.nodes['2']?.state === 'running').every((s) => s.nodes['3'] === undefined), 'pending nodes are left out');
    assert.ok(seen.filter((s) => s.nodes['2']?.state === 'running').every((s) => s.nodes['1']?.state === 'finished'));

    // The last prompt again (the classic cache keeps the last prompt's outputs): all cached, finished at once.
    const again = randomUUID();
    await postJson(`${server.url}/prompt`, { prompt: slowPrompt(2, 4, 10), client_id: a.clientId, prompt_id: again });
    await a.done(again);
    const cached = states(a).filter((s) => s.prompt_id === again);
    assert.equal(cached.length, 1);
    assert.deepEqual(Object.values(cached[0]!.nodes).map((n) => n.state), ['finished', 'finished', 'finished']);
  } finally {
    await a.close();
    await b.close();
  }
});

test('a failing node is reported in state error', { timeout: 30_000 }, async () => {
  const client = await TestClient.connect(server.url, randomUUID());
  try {
    const id = randomUUID();
    await postJson(`${server.url}/prompt`, {
      prompt: { '1': { class_type: 'TestConstant', inputs: { value: 7 } }, '2': { class_type: 'TestFail', inputs: { value: ['1', 0] } } },
      client_id: client.clientId,
      prompt_id: id,
    });
    await client.done(id);
    const last = client.messages.filter((m) => m.type === 'progress_state').at(-1)!.data as { nodes: Nodes };
    assert.equal(last.nodes['1']!.state, 'finished');
    assert.equal(last.nodes['2']!.state, 'error');
  } finally {
    await client.close();
  }
});

test('progress_state: concurrent nodes run at once; an expanded node names the node that made it; history meta too', { timeout: 30_000 }, async () => {
  const client = await TestClient.connect(server.url, randomUUID());
  try {
    const id = randomUUID();
    const queued = await postJson(`${server.url}/prompt`, {
      prompt: {
        '1': { class_type: 'TestConstant', inputs: { value: 9 } },
        '2': { class_type: 'TestWait', inputs: { value: ['1', 0], ms: 300 } },
        '3': { class_type: 'TestWait', inputs: { value: ['1', 0], ms: 301 } },
        '4': { class_type: 'TestExpandSave', inputs: { value: ['2', 0] } },
        '5': { class_type: 'TestSaveImage', inputs: { value: ['4', 0], filename_prefix: 'a' } },
        '6': { class_type: 'TestSaveImage', inputs: { value: ['3', 0], filename_prefix: 'b' } },
      },
      client_id: client.clientId,
      prompt_id: id,
    });
    assert.equal(queued.status, 200, JSON.stringify(queued.json));
    await client.done(id);
    const states = client.messages.filter((m) => m.type === 'progress_state').map((m) => m.data as { nodes: Nodes });
    assert.ok(states.some((s) => s.nodes['2']?.state === 'running' && s.nodes['3']?.state === 'running'), 'both waits were running at once');
    const last = states.at(-1)!.nodes;
    const expanded = Object.values(last).filter((n) => n.parent_node_id !== null);
    assert.ok(expanded.length >= 2, JSON.stringify(last));
    for (const node of expanded) {
      assert.equal(node.parent_node_id, '4');
      assert.equal(node.display_node_id, '4');
      assert.equal(node.real_node_id, '4');
      assert.equal(node.state, 'finished');
    }
    const history = (await (await fetch(`${server.url}/history/${id}`)).json()) as Record<string, { outputs: Record<string, unknown>; meta: Record<string, { display_node: string; parent_node: string | null }> }>;
    const entry = history[id]!;
    const expandedSave = Object.keys(entry.outputs).find((nodeId) => nodeId.startsWith('4.'));
    assert.ok(expandedSave, `the expansion's save node is in the history: ${Object.keys(entry.outputs).join(', ')}`);
    assert.deepEqual({ display: entry.meta[expandedSave]!.display_node, parent: entry.meta[expandedSave]!.parent_node }, { display: '4', parent: '4' });
  } finally {
    await client.close();
  }
});
