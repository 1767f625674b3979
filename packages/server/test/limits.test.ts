// Requests that once stalled, poisoned or crashed the server: each is a clear 4xx now, the server keeps
// answering others meanwhile, and what a client reads never shows the server's folders.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { boundedMessage, MAX_LOG_MESSAGE_CHARACTERS } from '@gategraph/core';
import { withoutServerPaths } from '../src/client-text.ts';
import { getJson, postJson, rgbPng, slowPrompt, startTestServer, TestClient, until, workspaceRoot, type TestServer } from './helpers.ts';

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server.dispose();
});

/** A JSON text of an object nested `depth` deep: {"a":{"a":...}}. */
function nested(depth: number): string {
  return '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

test('JSON nested deeper than the limit is refused before parsing, while the server keeps answering', async () => {
  const deep = `{"prompt": ${JSON.stringify(slowPrompt(1)).replace(/\}$/, `, "x": {"class_type": "TestConstant", "inputs": {"value": 1, "deep": ${nested(4100)}}}}`)}}`;
  const [refused, stats] = await Promise.all([
    fetch(`${server.url}/prompt`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: deep }),
    getJson(`${server.url}/system_stats`),
  ]);
  assert.equal(stats.status, 200);
  assert.equal(refused.status, 400);
  const body = (await refused.json()) as { error: { type: string; message: string } };
  assert.equal(body.error.type, 'too_deep');
  assert.match(body.error.message, /nested deeper than 128 levels \(--max-json-depth\)/);
  assert.equal((await getJson(`${server.url}/history`)).status, 200, 'nothing was stored that breaks /history');

  // Brackets inside strings are text, not nesting; a workflow of ordinary depth passes.
  const text = await postJson(`${server.url}/prompt`, { prompt: slowPrompt(2, 1, 0), extra_data: { note: '[[[[{{{{'.repeat(100), ok: JSON.parse(nested(60)) } });
  assert.equal(text.status, 200);
});

test('ids that are Object.prototype keys work as ordinary ids: a "__proto__" prompt id runs and is in the history', async () => {
  const client = await TestClient.connect(server.url, 'proto');
  const prompt = JSON.parse(JSON.stringify(slowPrompt(3, 1, 0)).replace('"1":', '"constructor":').replace('["1",0]', '["constructor",0]'));
  const queued = await postJson(`${server.url}/prompt`, JSON.parse(`{"prompt_id": "__proto__", "client_id": "proto", "prompt": ${JSON.stringify(prompt)}}`));
  assert.equal(queued.status, 200, JSON.stringify(queued.json));
  await client.done('__proto__');
  await client.close();
  const history = (await getJson(`${server.url}/history`)).json as Record<string, { status: { status_str: string } }>;
  assert.ok(Object.hasOwn(history, '__proto__'), 'listed in /history');
  assert.equal(history['__proto__']?.status.status_str, 'success');
  assert.ok(Object.hasOwn((await getJson(`${server.url}/history/__proto__`)).json, '__proto__'));
});

test('paths that name a folder, go through a file or are too long are 4xx with no server path in the message', async () => {
  const userDir = join(server.dir, 'user', 'default');
  mkdirSync(join(userDir, 'workflows', 'folder.json'), { recursive: true });
  writeFileSync(join(userDir, 'workflows', 'file'), 'x');
  const cases: Array<[string, number]> = [
    [`/userdata/${encodeURIComponent('workflows/folder.json')}`, 409],
    [`/userdata/${encodeURIComponent('workflows/file/inside.json')}`, 409],
    [`/userdata/${encodeURIComponent(`workflows/${'n'.repeat(300)}.json`)}`, 400],
  ];
  for (const [path, status] of cases) {
    const response = await fetch(`${server.url}${path}`, { method: 'POST', body: '{}' });
    const text = await response.text();
    assert.equal(response.status, status, `${path}: ${text}`);
    assert.ok(!text.includes(server.dir), `${path}: the message shows no server folder: ${text}`);
  }
  assert.equal(withoutServerPaths("ENOENT: no such file or directory, open '/srv/gg/output/x.png'"), "ENOENT: no such file or directory, open '…/x.png'");
});

test('log messages are bounded: a huge prompt quoted in a warning becomes its start and end', () => {
  const message = `dropped: ${'word '.repeat(2_000_000)}end`;
  const bounded = boundedMessage(message);
  assert.ok(bounded.length <= MAX_LOG_MESSAGE_CHARACTERS + 40);
  assert.match(bounded, /^dropped: word /);
  assert.match(bounded, /characters left out/);
  assert.match(bounded, /end$/);
  assert.equal(boundedMessage('short'), 'short');
});

/** A small PNG file whose header declares `width` x `height` pixels (the data holds one row: a "bomb"). */
function declaredPng(width: number, height: number): Buffer {
  return rgbPng(width, height, deflateSync(Buffer.alloc(1 + width * 3)));
}

test('an image whose header declares 16000x16000 pixels is refused before decoding: upload, preview and channel', async () => {
  const bomb = declaredPng(16000, 16000);
  const form = new FormData();
  form.append('image', new Blob([bomb], { type: 'image/png' }), 'bomb.png');
  const upload = await fetch(`${server.url}/upload/image`, { method: 'POST', body: form });
  assert.equal(upload.status, 413);
  assert.match(((await upload.json()) as { error: { message: string } }).error.message, /16000x16000 pixels \(256\.0 megapixels\); the server accepts images of up to 67\.1 megapixels \(--max-image-pixels\)/);

  // A file that got into the output folder another way (a node wrote it) is not decoded for a preview either.
  writeFileSync(join(server.config.paths.output, 'bomb.png'), bomb);
  for (const query of ['preview=webp;90', 'channel=a']) {
    const [view, stats] = await Promise.all([fetch(`${server.url}/view?filename=bomb.png&${query}`), getJson(`${server.url}/system_stats`)]);
    assert.equal(stats.status, 200);
    assert.equal(view.status, 400, query);
    assert.match(((await view.json()) as { error: { message: string } }).error.message, /pixel/, query);
  }
});

test('uploads are streamed to disk as they arrive, and only so many are received at once (503 with Retry-After)', async () => {
  const busy = await startTestServer({ maxConcurrentUploads: 1 });
  try {
    const boundary = 'gg-upload-boundary';
    const head = `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;
    const tail = `\r\n--${boundary}--\r\n`;
    const chunk = Buffer.alloc(1024 * 1024, 7);
    const pending = request({
      host: '127.0.0.1',
      port: busy.port,
      path: '/upload/image',
      method: 'POST',
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    });
    const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
      pending.on('response', (res) => {
        let body = '';
        res.on('data', (c) => (body += String(c)));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      pending.on('error', reject);
    });
    pending.write(head);
    for (let i = 0; i < 8; i++) pending.write(chunk);
    // The bytes sent so far are on disk before the request ends: nothing holds the whole upload in memory.
    const partDir = join(busy.config.paths.temp, '.uploads');
    await until(() => existsSync(partDir) && readdirSync(partDir).some((f) => statSync(join(partDir, f)).size >= 4 * chunk.length), 10_000);

    // A second upload meanwhile is turned away, to come back later.
    const form = new FormData();
    form.append('image', new Blob([Buffer.from('x')]), 'small.bin');
    const refused = await fetch(`${busy.url}/upload/image`, { method: 'POST', body: form });
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('retry-after'), '1');

    pending.end(tail);
    const first = await response;
    assert.equal(first.status, 200, first.body);
    assert.equal(statSync(join(busy.config.paths.input, 'big.bin')).size, 8 * chunk.length);
    assert.deepEqual(readdirSync(partDir), [], 'the received file is removed once saved');
    const again = new FormData();
    again.append('image', new Blob([Buffer.from('x')]), 'small.bin');
    assert.equal((await fetch(`${busy.url}/upload/image`, { method: 'POST', body: again })).status, 200);
  } finally {
    await busy.dispose();
  }
});

test('a node\'s error reaches clients without the server\'s folders in its message or traceback', async () => {
  const client = await TestClient.connect(server.url, 'paths');
  // Writing into a folder that does not exist fails with ENOENT naming the absolute path of the file.
  const prompt = { '1': { class_type: 'TestConstant', inputs: { value: 4 } }, '2': { class_type: 'TestSaveImage', inputs: { value: ['1', 0], filename_prefix: 'no-such-folder/img' } } };
  const queued = await postJson(`${server.url}/prompt`, { client_id: 'paths', prompt });
  await client.done(queued.json.prompt_id);
  const sent = client.messages.find((m) => m.type === 'execution_error')!.data as { exception_message: string; traceback: string[] };
  const stored = (await getJson(`${server.url}/history/${queued.json.prompt_id}`)).json[queued.json.prompt_id].status.messages.find(
    (m: [string, unknown]) => m[0] === 'execution_error',
  )[1] as { traceback: string[] };
  await client.close();
  assert.ok(sent.traceback.length > 0, 'a traceback is sent, as ComfyUI does');
  for (const text of [sent.exception_message, ...sent.traceback, ...stored.traceback]) {
    assert.ok(!text.includes(workspaceRoot) && !text.includes(server.dir), `no server folder in: ${text}`);
  }
  assert.match(sent.exception_message, /ENOENT: no such file or directory, open '…\/img_00001_\.png'/, 'the file name stays, its folders go');
});

test('a large history is sent in pieces: GET /history arrives whole, and a client leaving half-way stalls nothing', async () => {
  const workflow = { nodes: 'n'.repeat(900 * 1024) }; // ComfyUI's frontend sends the workflow with every prompt
  const ids: string[] = [];
  for (let i = 0; i < 24; i++) {
    const queued = await postJson(`${server.url}/prompt`, { prompt: slowPrompt(900 + i, 1, 0), extra_data: { extra_pnginfo: { workflow } } });
    assert.equal(queued.status, 200, JSON.stringify(queued.json));
    ids.push(queued.json.prompt_id as string);
  }
  await until(async () => {
    const history = await fetch(`${server.url}/history/${ids.at(-1)}`).then((r) => r.json() as Promise<Record<string, unknown>>);
    return Object.hasOwn(history, ids.at(-1)!);
  }, 30_000);

  // A client that reads the start of the answer and hangs up.
  await new Promise<void>((resolve, reject) => {
    const req = request(`${server.url}/history`, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', (error) => ((error as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve() : reject(error)));
    req.end();
  });
  assert.equal((await getJson(`${server.url}/system_stats`)).status, 200);

  const response = await fetch(`${server.url}/history`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /application\/json/);
  const history = (await response.json()) as Record<string, { prompt: unknown[] }>;
  for (const id of ids) {
    const { create_time: createTime, ...extra } = (history[id]?.prompt[3] ?? {}) as Record<string, unknown>;
    assert.deepEqual(extra, { extra_pnginfo: { workflow } }, `entry ${id} arrives whole`);
    assert.equal(typeof createTime, 'number', 'with the time it was queued, as ComfyUI records it');
  }
  const lastTwo = (await getJson(`${server.url}/history?max_items=2`)).json as Record<string, unknown>;
  assert.deepEqual(Object.keys(lastTwo), ids.slice(-2));
});
