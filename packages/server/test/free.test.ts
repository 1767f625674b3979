// POST /free with unload_models runs the packs' onFree hooks (a pack holding ONNX sessions closes them there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { postJson, startTestServer, TestClient, until } from './helpers.ts';

/** A server loading one pack from custom_nodes/holder.mjs, written by `source(marker)`; `marker` is the file its onFree appends to. */
async function serverWithPack(source: (marker: string) => string) {
  const dir = mkdtempSync(join(tmpdir(), 'gg-free-'));
  const marker = join(dir, 'freed.txt');
  mkdirSync(join(dir, 'custom_nodes'));
  writeFileSync(join(dir, 'custom_nodes', 'holder.mjs'), source(marker));
  return { marker, server: await startTestServer({ dir, registry: undefined, customNodesDir: join(dir, 'custom_nodes') }) };
}

test('POST /free {unload_models} calls each loaded pack\'s onFree hook; free_memory alone does not', async () => {
  const { marker, server } = await serverWithPack(
    (marker) => `import { appendFileSync } from 'node:fs';
import { defineNode, definePack } from '@gategraph/core';
export default definePack({
  name: 'holder',
  nodes: [defineNode({ id: 'Holder', inputs: {}, outputs: [{ type: 'INT' }], execute: () => [1] })],
  onFree: () => appendFileSync(${JSON.stringify(marker)}, 'freed\\n'),
});
`,
  );
  try {
    assert.equal((await postJson(`${server.url}/free`, { free_memory: true })).status, 200);
    assert.equal(existsSync(marker), false, 'free_memory alone clears caches but keeps models loaded');
    assert.equal((await postJson(`${server.url}/free`, { unload_models: true })).status, 200);
    assert.equal(readFileSync(marker, 'utf8'), 'freed\n');
  } finally {
    await server.dispose();
  }
});

test('POST /free during a prompt answers at once and takes effect when the prompt is done, never under a running node', async () => {
  // A node that holds "models" while it runs, as a sampler holds its sessions: it fails if they are released.
  const { marker, server } = await serverWithPack(
    (marker) => `import { appendFileSync } from 'node:fs';
import { defineNode, definePack, int } from '@gategraph/core';
let loaded = true;
export default definePack({
  name: 'holder',
  nodes: [
    defineNode({
      id: 'SlowHolder',
      outputNode: true,
      inputs: { seed: int({ default: 0 }) },
      outputs: [],
      async execute(_inputs, ctx) {
        loaded = true;
        for (let step = 1; step <= 20; step++) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          if (!loaded) throw new Error('the models were released under a running node (step ' + step + ')');
          ctx.progress(step, 20);
        }
        return { ui: {}, result: [] };
      },
    }),
  ],
  onFree: () => {
    loaded = false;
    appendFileSync(${JSON.stringify(marker)}, 'freed at ' + Date.now() + '\\n');
  },
});
`,
  );
  const client = await TestClient.connect(server.url, randomUUID());
  try {
    const promptId = randomUUID();
    const queued = await postJson(`${server.url}/prompt`, { prompt: { '1': { class_type: 'SlowHolder', inputs: { seed: 1 } } }, client_id: client.clientId, prompt_id: promptId });
    assert.equal(queued.status, 200, JSON.stringify(queued.json));
    await client.waitFor((m) => m.type === 'progress' && m.data.prompt_id === promptId && m.data.value >= 3);
    assert.equal((await postJson(`${server.url}/free`, { unload_models: true, free_memory: true })).status, 200);
    assert.equal(existsSync(marker), false, 'nothing is unloaded while the prompt runs');
    await client.done(promptId);
    const doneAt = Date.now();
    const types = client.ofPrompt(promptId).map((m) => m.type);
    assert.ok(types.includes('execution_success'), JSON.stringify(client.ofPrompt(promptId).find((m) => m.type === 'execution_error')?.data));
    await until(() => existsSync(marker));
    assert.match(readFileSync(marker, 'utf8'), /^freed at \d+\n$/, 'unloaded once, after the prompt');
    assert.ok(Number(/\d+/.exec(readFileSync(marker, 'utf8'))![0]) <= doneAt + 1000);
  } finally {
    await client.close();
    await server.dispose();
  }
});
