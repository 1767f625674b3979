// POST /free with unload_models runs the packs' onFree hooks (a pack holding ONNX sessions closes them there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postJson, startTestServer } from './helpers.ts';

test('POST /free {unload_models} calls each loaded pack\'s onFree hook; free_memory alone does not', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gg-free-'));
  const marker = join(dir, 'freed.txt');
  mkdirSync(join(dir, 'custom_nodes'));
  writeFileSync(
    join(dir, 'custom_nodes', 'holder.mjs'),
    `import { appendFileSync } from 'node:fs';
import { defineNode, definePack } from '@gategraph/core';
export default definePack({
  name: 'holder',
  nodes: [defineNode({ id: 'Holder', inputs: {}, outputs: [{ type: 'INT' }], execute: () => [1] })],
  onFree: () => appendFileSync(${JSON.stringify(marker)}, 'freed\\n'),
});
`,
  );
  const server = await startTestServer({ dir, registry: undefined, customNodesDir: join(dir, 'custom_nodes') });
  try {
    assert.equal((await postJson(`${server.url}/free`, { free_memory: true })).status, 200);
    assert.equal(existsSync(marker), false, 'free_memory alone clears caches but keeps models loaded');
    assert.equal((await postJson(`${server.url}/free`, { unload_models: true })).status, 200);
    assert.equal(readFileSync(marker, 'utf8'), 'freed\n');
  } finally {
    await server.dispose();
  }
});
