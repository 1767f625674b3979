import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { originAllowed } from '../src/index.ts';
import { getJson, makePng, postJson, slowPrompt, startTestServer, TestClient, type TestServer } from './helpers.ts';

let server: TestServer;
before(async () => {
  server = await startTestServer({ maxUploadBytes: 64 * 1024, maxBodyBytes: 32 * 1024, maxImageDimension: 100 });
  writeFileSync(join(server.dir, 'secret.txt'), 'top secret');
  mkdirSync(join(server.config.paths.output, 'sub'), { recursive: true });
  writeFileSync(join(server.config.paths.output, 'sub', 'ok.png'), makePng(2, 2, 1));
  symlinkSync(join(server.dir, 'secret.txt'), join(server.config.paths.output, 'link.txt'));
});
after(async () => {
  await server.dispose();
});

/** A raw request, so the path is sent exactly as written and Host/Origin can be set. */
function raw(path: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<{ status: number; body: string }> {
  const { port } = server;
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += String(chunk)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('/view refuses traversal: 400 for bad names, 403 for subfolders that leave the folder', async () => {
  const cases: Array<[string, number]> = [
    ['filename=../secret.txt', 400],
    ['filename=%2e%2e%2fsecret.txt', 400],
    ['filename=%2e%2e', 400],
    ['filename=/etc/passwd', 400],
    ['filename=%2Fetc%2Fpasswd', 400],
    ['filename=sub%2Fok.png', 400],
    ['filename=..%5Csecret.txt', 400],
    ['filename=ok.png%00.txt&subfolder=sub', 400],
    ['filename=secret.txt&subfolder=..', 403],
    ['filename=secret.txt&subfolder=%2e%2e', 403],
    ['filename=secret.txt&subfolder=sub/../..', 403],
    ['filename=passwd&subfolder=/etc', 403],
    ['filename=passwd&subfolder=%2Fetc', 403],
    ['filename=secret.txt&type=../', 400],
    ['filename=link.txt', 403],
    ['filename=ok.png&subfolder=sub', 200],
    ['filename=ok.png&subfolder=sub/../sub', 200],
  ];
  for (const [query, status] of cases) {
    const response = await raw(`/view?${query}`);
    assert.equal(response.status, status, `/view?${query}`);
    assert.ok(!response.body.includes('top secret'), `/view?${query} leaked the file`);
    if (status !== 200) assert.ok(JSON.parse(response.body).error.message, 'errors are JSON with a message');
  }
});

test('uploads refuse traversal and never write outside the folder', async () => {
  const upload = async (name: string, fields: Record<string, string> = {}) => {
    const form = new FormData();
    form.append('image', new Blob([makePng(2, 2, 9)], { type: 'image/png' }), name);
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    return (await fetch(`${server.url}/upload/image`, { method: 'POST', body: form })).status;
  };
  assert.equal(await upload('../evil.png'), 400);
  assert.equal(await upload('/tmp/evil.png'), 400);
  assert.equal(await upload('a/evil.png'), 400);
  assert.equal(await upload('..'), 400);
  assert.equal(await upload('evil\0.png'), 400);
  assert.equal(await upload('evil.png', { subfolder: '../..' }), 403);
  assert.equal(await upload('evil.png', { subfolder: '/tmp' }), 403);
  assert.equal(await upload('evil.png', { subfolder: 'a/../../..' }), 403);
  assert.equal(await upload('evil.png', { type: 'models' }), 400);
  assert.equal(existsSync(join(server.dir, 'evil.png')), false);
  assert.equal(existsSync(join(server.config.paths.input, 'evil.png')), false);
  assert.equal(await upload('fine.png', { subfolder: 'a/b' }), 200);
  assert.equal(existsSync(join(server.config.paths.input, 'a', 'b', 'fine.png')), true);
});

test('oversized uploads, images and JSON bodies get 413 with a JSON error', async () => {
  const form = new FormData();
  form.append('image', new Blob([Buffer.alloc(65 * 1024, 1)]), 'big.bin');
  const big = await fetch(`${server.url}/upload/image`, { method: 'POST', body: form });
  assert.equal(big.status, 413);
  assert.match(((await big.json()) as any).error.message, /max-upload-size/);
  assert.equal(existsSync(join(server.config.paths.input, 'big.bin')), false);

  const wide = new FormData();
  wide.append('image', new Blob([makePng(101, 2, 1)]), 'wide.png');
  const tooWide = await fetch(`${server.url}/upload/image`, { method: 'POST', body: wide });
  assert.equal(tooWide.status, 413);
  assert.match(((await tooWide.json()) as any).error.message, /101x2 pixels.*100/);
  assert.equal(existsSync(join(server.config.paths.input, 'wide.png')), false);

  const body = { prompt: slowPrompt(1), extra_data: { extra_pnginfo: { workflow: { pad: 'x'.repeat(40 * 1024) } } } };
  const tooLong = await postJson(`${server.url}/prompt`, body);
  assert.equal(tooLong.status, 413);
  assert.equal(tooLong.json.error.type, 'body_too_large');
  assert.equal((await getJson(`${server.url}/queue`)).json.queue_pending.length, 0);
});

test('origin check: a loopback Host with a different Origin is refused, on HTTP and websocket', async () => {
  const host = `127.0.0.1:${server.port}`;
  assert.equal((await raw('/queue', { host, origin: 'http://evil.example' })).status, 403);
  assert.equal((await raw('/prompt', { host, origin: 'http://evil.example', 'content-type': 'application/json' }, 'POST', JSON.stringify({ prompt: slowPrompt(1) }))).status, 403);
  assert.equal((await raw('/queue', { host: `localhost:${server.port}`, origin: `http://127.0.0.1:${server.port}` })).status, 403);
  assert.equal((await raw('/queue', { host, origin: `http://127.0.0.1:${server.port + 1}` })).status, 403);
  assert.equal((await raw('/queue', { host, origin: 'null' })).status, 403);
  assert.equal((await raw('/queue', { host, origin: `http://${host}` })).status, 200);
  assert.equal((await raw('/queue', { host })).status, 200, 'no Origin (scripts, curl) passes');
  assert.equal((await raw('/queue', { host: 'gpu-box.lan:8188', origin: 'http://other.lan' })).status, 200, 'only loopback hosts are checked, as ComfyUI');
  assert.equal((await getJson(`${server.url}/queue`)).json.queue_pending.length, 0);

  const refused = new WebSocket(`ws://${host}/ws?clientId=x`, { origin: 'http://evil.example' });
  const status = await new Promise<number>((resolve, reject) => {
    refused.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    refused.once('open', () => reject(new Error('cross-origin websocket was accepted')));
    refused.once('error', () => {});
  });
  assert.equal(status, 403);
  const same = await TestClient.connect(server.url, 'same-origin');
  await same.close();

  assert.equal(originAllowed('[::1]:8188', 'http://[::1]:8188'), true);
  assert.equal(originAllowed('[::1]:8188', 'http://evil.example'), false);
  assert.equal(originAllowed('localhost', 'http://localhost:3000'), true, 'Host without a port compares hostnames');
});

test('access token: required on API routes and the websocket, not on the editor files', async () => {
  const secured = await startTestServer({ token: 's3cret-token' });
  try {
    const base = secured.url;
    assert.equal((await getJson(`${base}/queue`)).status, 401);
    assert.equal((await getJson(`${base}/api/queue`)).status, 401);
    assert.equal((await getJson(`${base}/queue`, { authorization: 'Bearer wrong' })).status, 401);
    assert.equal((await getJson(`${base}/queue?token=wrong`)).status, 401);
    assert.equal((await getJson(`${base}/extensions`)).status, 401);
    assert.equal((await getJson(`${base}/view?filename=x.png`)).status, 401);
    const denied = await postJson(`${base}/prompt`, { prompt: slowPrompt(1) });
    assert.equal(denied.status, 401);
    assert.match(denied.json.error.message, /Authorization: Bearer/);
    assert.equal((await getJson(`${base}/queue`)).status, 401);

    assert.equal((await getJson(`${base}/queue`, { authorization: 'Bearer s3cret-token' })).status, 200);
    assert.equal((await getJson(`${base}/object_info?token=s3cret-token`)).status, 200);
    assert.equal((await fetch(`${base}/`)).status, 200, 'the editor page is public and asks for the token');

    const refused = new WebSocket(`${base.replace('http', 'ws')}/ws?clientId=t`);
    const status = await new Promise<number>((resolve) => {
      refused.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      refused.once('error', () => {});
    });
    assert.equal(status, 401);
    const client = await TestClient.connect(base, 't', '&token=s3cret-token');
    const queued = await postJson(`${base}/prompt?token=s3cret-token`, { prompt: slowPrompt(77, 1, 0), client_id: 't' });
    assert.equal(queued.status, 200);
    await client.done(queued.json.prompt_id);
    await client.close();
  } finally {
    await secured.dispose();
  }
});
