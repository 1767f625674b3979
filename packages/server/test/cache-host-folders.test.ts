/**
 * The output cache and the host's folders: a node that reads a file is fingerprinted on the file it will read,
 * in the server's own input and models folders. An image uploaded again under the same name with overwrite
 * loads again instead of being served from the cache.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import type { ApiPrompt } from '@gategraph/core';
import { startServer, type GategraphServer } from '../src/index.ts';
import { getJson, makePng, postJson, TestClient, workspaceServerOptions } from './helpers.ts';

let dir: string;
let server: GategraphServer;
let client: TestClient;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gg-cache-folders-'));
  server = await startServer({ ...workspaceServerOptions(dir), fsync: false });
  client = await TestClient.connect(server.url, randomUUID());
});

after(async () => {
  await client?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function upload(png: Buffer, overwrite: boolean): Promise<void> {
  const form = new FormData();
  form.append('image', new Blob([png], { type: 'image/png' }), 'photo.png');
  if (overwrite) form.append('overwrite', 'true');
  const response = await fetch(`${server.url}/upload/image`, { method: 'POST', body: form });
  assert.equal(response.status, 200, await response.text());
}

/** Runs LoadImage -> SaveImage; the saved image's first pixel and the nodes that came from the cache. */
async function run(): Promise<{ pixel: number[]; cached: string[] }> {
  const prompt: ApiPrompt = {
    '1': { class_type: 'LoadImage', inputs: { image: 'photo.png' } },
    '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'reloaded' } },
  };
  const promptId = randomUUID();
  const queued = await postJson(`${server.url}/prompt`, { prompt, client_id: client.clientId, prompt_id: promptId });
  assert.equal(queued.status, 200, JSON.stringify(queued.json));
  await client.done(promptId, 60_000);
  const cached = client.ofPrompt(promptId).find((m) => m.type === 'execution_cached')?.data.nodes as string[];
  const history = (await getJson(`${server.url}/history/${promptId}`)).json[promptId];
  assert.equal(history.status.status_str, 'success', JSON.stringify(history.status));
  const [image] = history.outputs['2'].images as { filename: string; subfolder: string; type: string }[];
  const bytes = Buffer.from(await (await fetch(`${server.url}/view?${new URLSearchParams(image!)}`)).arrayBuffer());
  const { data } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
  return { pixel: [...data.subarray(0, 3)], cached };
}

test('an image uploaded again with overwrite loads again; the same file comes from the cache', { timeout: 120_000 }, async () => {
  await upload(makePng(8, 8, 1), false);
  const first = await run();
  assert.deepEqual(first.pixel, [37, 11, 1]);
  const again = await run();
  assert.ok(again.cached.includes('1'), 'the unchanged file is not read again');

  await upload(makePng(8, 8, 2), true);
  const second = await run();
  assert.ok(!second.cached.includes('1'), `LoadImage ran again (cached: ${second.cached.join(', ')})`);
  assert.deepEqual(second.pixel, [74, 22, 2], 'the new file\'s pixels');
});
