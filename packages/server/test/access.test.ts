// Access to a server started with a token, as an attacker on the same machine or a web page would try it:
// other spellings of every route, files that a browser would run as a page, loopback in other spellings.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { canonicalHostname, isLoopbackHostname, normalizeRequestUrl, originAllowed } from '../src/index.ts';
import { makePng, postJson, slowPrompt, startTestServer, TestClient, type TestServer } from './helpers.ts';

const TOKEN = 'access-test-token';
let server: TestServer;
let promptId: string;

before(async () => {
  server = await startTestServer({ token: TOKEN });
  const auth = { authorization: `Bearer ${TOKEN}` };
  const client = await TestClient.connect(server.url, 'owner', `&token=${TOKEN}`);
  const queued = await postJson(`${server.url}/prompt`, { prompt: slowPrompt(5, 1, 0), client_id: 'owner' }, auth);
  assert.equal(queued.status, 200);
  promptId = queued.json.prompt_id;
  await client.done(promptId);
  await client.close();
  const saved = await fetch(`${server.url}/userdata/workflows%2Fmine.json`, { method: 'POST', headers: auth, body: '{"secret": "workflow"}' });
  assert.equal(saved.status, 200);
  mkdirSync(join(server.config.paths.output, 'sub'), { recursive: true });
  writeFileSync(join(server.config.paths.output, 'sub', 'ok.png'), makePng(2, 2, 1));
});
after(async () => {
  await server.dispose();
});

/** A raw request: the path goes out exactly as written, and Host/Origin can be anything. */
function raw(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, headers }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += String(chunk)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Other ways to write `/<route>`: letter case, escapes, slashes, dot segments, the /api prefix. */
function spellings(route: string): string[] {
  const [path, query] = route.split('?') as [string, string | undefined];
  const q = query === undefined ? '' : `?${query}`;
  const capital = path[0]!.toUpperCase() + path.slice(1);
  const escaped = `%${path.charCodeAt(0).toString(16)}${path.slice(1)}`;
  const forms = [
    `/${path}`, `/api/${path}`, `/${capital}`, `/${path.toUpperCase()}`, `/API/${path}`, `/Api/${capital}`, `/${path}/`, `/api/${path}/`,
    `//${path}`, `/api//${path}`, `/./${path}`, `/x/../${path}`, `/%2e/${path}`, `/x/%2e%2e/${path}`, `/${escaped}`, `/api/${escaped}`,
    `/%41pi/${path}`,
  ];
  return forms.map((form) => form + q);
}

test('with a token, no spelling of any route gives anything without it', async () => {
  const routes = [
    'history', `history/${promptId}`, 'queue', 'prompt', 'object_info', 'object_info/TestSlow', 'system_stats', 'extensions', 'embeddings',
    'models', 'users', 'settings', 'view?filename=ok.png&subfolder=sub&type=output', 'userdata?dir=workflows', 'userdata/workflows%2Fmine.json',
    'internal/logs', 'free', 'interrupt', 'upload/image',
  ];
  const leaks: string[] = [];
  for (const route of routes) {
    for (const path of spellings(route)) {
      const response = await raw(path);
      if (response.status !== 401) leaks.push(`${path}: ${response.status} ${response.body.slice(0, 80)}`);
      if (response.body.includes(promptId) || response.body.includes('secret')) leaks.push(`${path}: returned data`);
    }
  }
  assert.deepEqual(leaks, []);

  // With the token, an escaped spelling names the same route; letter case does not (as ComfyUI's routes).
  const auth = { authorization: `Bearer ${TOKEN}` };
  assert.ok(Object.hasOwn(JSON.parse((await raw('/%68istory', auth)).body), promptId));
  assert.equal((await raw('//api//history/', auth)).status, 200);
  assert.equal((await raw('/History', auth)).status, 404);
  // The editor's files stay public (the page asks for the token), in any spelling that names them.
  assert.equal((await raw('/')).status, 200);
  assert.equal((await raw('/index.html')).status, 200);
  assert.equal((await raw('/nothing-here.js')).status, 401, 'a path that is no file is not public');
});

test('with a token, the websocket refuses other spellings of /ws without it', async () => {
  for (const path of ['/ws', '/api/ws', '/WS', '/Api/ws', '//ws', '/api//ws/', '/%77s', '/x/../ws']) {
    const socket = new WebSocket(`ws://127.0.0.1:${server.port}${path}?clientId=intruder`);
    const outcome = await new Promise<string>((resolve) => {
      socket.once('open', () => resolve('open'));
      socket.once('unexpected-response', (_req, res) => resolve(String(res.statusCode)));
      socket.once('error', () => resolve('error'));
    });
    socket.terminate();
    assert.ok(outcome === '401' || outcome === '404', `${path}: ${outcome}`);
  }
});

test('/view serves only raster images inline; HTML, SVG and other files download, never run as a page', async () => {
  const input = server.config.paths.input;
  const auth = { authorization: `Bearer ${TOKEN}` };
  // Uploaded as the attack did (the upload route takes any file, as ComfyUI's), or written there by a node.
  for (const [name, text] of [
    ['evil.html', '<script>fetch("/history").then(r => r.text()).then(alert)</script>'],
    ['evil.svg', '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(localStorage.getItem("gategraph.token"))</script></svg>'],
  ]) {
    const form = new FormData();
    form.append('image', new Blob([text!]), name!);
    assert.equal((await fetch(`${server.url}/upload/image`, { method: 'POST', body: form, headers: auth })).status, 200, name);
  }
  writeFileSync(join(input, 'notes.txt'), '<html><script>alert(1)</script></html>');
  writeFileSync(join(input, 'photo.png'), makePng(2, 2, 3));
  for (const name of ['evil.html', 'evil.svg', 'notes.txt']) {
    const response = await raw(`/view?filename=${name}&type=input`, auth);
    assert.equal(response.status, 200, name);
    assert.match(String(response.headers['content-disposition']), /^attachment; filename="/, name);
    assert.equal(response.headers['content-type'], 'application/octet-stream', name);
    assert.equal(response.headers['x-content-type-options'], 'nosniff', name);
    assert.match(String(response.headers['content-security-policy']), /sandbox/, name);
  }
  const image = await raw('/view?filename=photo.png&type=input', auth);
  assert.match(String(image.headers['content-disposition']), /^inline; filename="photo\.png"/);
  assert.equal(image.headers['content-type'], 'image/png');
  assert.equal(image.headers['x-content-type-options'], 'nosniff');

  // The editor's page runs only this server's scripts and cannot be framed by another site.
  const csp = String((await raw('/')).headers['content-security-policy']);
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /script-src[^;]*'unsafe-inline'/);
  assert.match(csp, /frame-ancestors 'none'/);
});

test('every spelling of a loopback Host counts as loopback: a foreign Origin is refused, the same origin is not', async () => {
  const port = server.port;
  const auth = { authorization: `Bearer ${TOKEN}` };
  for (const host of ['0.0.0.0', '127.1', '0x7f000001', '2130706433', '0177.0.0.1', '[::]', '[::1]', '[::ffff:127.0.0.1]', 'LOCALHOST', 'app.localhost']) {
    const foreign = await raw('/queue', { ...auth, host: `${host}:${port}`, origin: 'http://evil.example' });
    assert.equal(foreign.status, 403, `Host ${host}`);
    const socket = new WebSocket(`ws://127.0.0.1:${port}/ws?clientId=x&token=${TOKEN}`, { headers: { host: `${host}:${port}` }, origin: 'http://evil.example' });
    const outcome = await new Promise<string>((resolve) => {
      socket.once('open', () => resolve('open'));
      socket.once('unexpected-response', (_req, res) => resolve(String(res.statusCode)));
      socket.once('error', () => resolve('error'));
    });
    socket.terminate();
    assert.equal(outcome, '403', `websocket with Host ${host}`);
  }
  // The same host written another way is the same origin.
  assert.equal((await raw('/queue', { ...auth, host: `127.1:${port}`, origin: `http://127.0.0.1:${port}` })).status, 200);
  assert.equal((await raw('/queue', { ...auth, host: `0.0.0.0:${port}`, origin: `http://0.0.0.0:${port}` })).status, 200);

  assert.equal(isLoopbackHostname('::1'), true);
  assert.equal(isLoopbackHostname('127.0.0.1.example.com'), false);
  assert.equal(isLoopbackHostname('128.0.0.1'), false);
  assert.equal(canonicalHostname('0x7f.1'), '127.0.0.1');
  assert.equal(originAllowed('[::]:8188', 'http://[::]:8188'), true);
  assert.equal(originAllowed('2130706433:8188', 'http://127.0.0.1:8189'), false);
});

test('request paths are normalized once, for routing and the checks alike', () => {
  assert.equal(normalizeRequestUrl('/%68istory?x=%2F'), '/history?x=%2F');
  assert.equal(normalizeRequestUrl('//api//history/'), '/api/history');
  assert.equal(normalizeRequestUrl('/a/%2e%2e/view'), '/view');
  assert.equal(normalizeRequestUrl('/userdata/workflows%2fa.json'), '/userdata/workflows%2Fa.json', 'an escaped slash stays inside its segment');
  assert.equal(normalizeRequestUrl('/view%'), undefined);
  assert.equal(normalizeRequestUrl('/'), '/');
});
