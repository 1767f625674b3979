// ComfyUI's /userdata routes, as the editor uses them to keep workflows on the server.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startTestServer, type TestServer } from './helpers.ts';

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t?.dispose();
});

const file = (path: string) => `/userdata/${encodeURIComponent(path)}`;

test('a workflow saved under workflows/ is listed, read back, protected from overwriting and deleted', async () => {
  assert.deepEqual(await (await fetch(`${t.url}/userdata?dir=workflows`)).json(), [], 'no folder yet: an empty list');
  const workflow = JSON.stringify({ last_node_id: 1, nodes: [] });
  const saved = await fetch(`${t.url}${file('workflows/my graph.json')}`, { method: 'POST', body: workflow, headers: { 'Content-Type': 'application/json' } });
  assert.equal(saved.status, 200);
  assert.equal(await saved.json(), 'workflows/my graph.json');
  assert.equal(readFileSync(join(t.dir, 'user', 'default', 'workflows', 'my graph.json'), 'utf8'), workflow);

  assert.deepEqual(await (await fetch(`${t.url}/api/userdata?dir=workflows`)).json(), ['my graph.json']);
  assert.equal(await (await fetch(`${t.url}${file('workflows/my graph.json')}`)).text(), workflow);

  const refused = await fetch(`${t.url}${file('workflows/my graph.json')}?overwrite=false`, { method: 'POST', body: '{}' });
  assert.equal(refused.status, 409);
  assert.equal(await (await fetch(`${t.url}${file('workflows/my graph.json')}`)).text(), workflow, 'not replaced');

  assert.equal((await fetch(`${t.url}${file('workflows/my graph.json')}`, { method: 'DELETE' })).status, 204);
  assert.equal((await fetch(`${t.url}${file('workflows/my graph.json')}`)).status, 404);
});

test('paths that could leave the user folder are refused', async () => {
  for (const bad of ['../secret.json', 'workflows/../../x.json', '/etc/passwd', 'a\\b.json']) {
    const response = await fetch(`${t.url}${file(bad)}`, { method: 'POST', body: '{}' });
    assert.equal(response.status, 400, bad);
  }
  assert.equal((await fetch(`${t.url}/userdata?dir=..`)).status, 400);
  // A link inside the folder that points outside it.
  const outside = join(t.dir, 'outside');
  mkdirSync(outside);
  mkdirSync(join(t.dir, 'user', 'default'), { recursive: true });
  symlinkSync(outside, join(t.dir, 'user', 'default', 'escape'));
  const response = await fetch(`${t.url}${file('escape/x.json')}`, { method: 'POST', body: '{}' });
  assert.equal(response.status, 403);
  assert.equal(existsSync(join(outside, 'x.json')), false);
});
