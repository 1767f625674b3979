// A node validating its own input (ComfyUI's VALIDATE_INPUTS) sees whether the client wrote 1 or 1.0, as
// ComfyUI's Python json tells it; through POST /prompt and in core's parser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postJson, startTestServer } from './helpers.ts';

const PACK = `import { defineNode, definePack, float } from '@gategraph/core';
export default definePack({
  name: 'strict-int',
  nodes: [
    defineNode({
      id: 'WantsIntLiteral',
      outputNode: true,
      inputs: { value: float() },
      validatesInputs: ['value'],
      validate: (_inputs, ctx) => ctx.numberKinds.value === 'int' || 'value must be written as an integer literal, got ' + ctx.numberKinds.value,
      outputs: [],
      execute: () => ({ ui: {} }),
    }),
  ],
});
`;

test('POST /prompt keeps int vs float literals for a validate hook that takes its input over', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gg-literals-'));
  mkdirSync(join(dir, 'custom_nodes'));
  writeFileSync(join(dir, 'custom_nodes', 'strict-int.mjs'), PACK);
  const server = await startTestServer({ dir, registry: undefined, customNodesDir: join(dir, 'custom_nodes') });
  try {
    const body = (literal: string) => `{"prompt": {"1": {"class_type": "WantsIntLiteral", "inputs": {"value": ${literal}}}}}`;
    const asInt = await postJson(`${server.url}/prompt`, body('1'));
    assert.equal(asInt.status, 200, JSON.stringify(asInt.json));
    const asFloat = await postJson(`${server.url}/prompt`, body('1.0'));
    assert.equal(asFloat.status, 400);
    assert.match(asFloat.json.node_errors['1'].errors[0].message, /got float/);
    const broken = await postJson(`${server.url}/prompt`, '{"prompt": {');
    assert.equal(broken.status, 400);
    assert.equal(broken.json.error.type, 'invalid_json');
  } finally {
    await server.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
