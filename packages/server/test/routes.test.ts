import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getJson, makePng, postJson, slowPrompt, startTestServer, TestClient, until, type TestServer } from './helpers.ts';

let server: TestServer;
before(async () => {
  server = await startTestServer({
    webExtensions: [],
  });
});
after(async () => {
  await server.dispose();
});

test('every route answers under / and /api with ComfyUI shapes', async () => {
  for (const prefix of ['', '/api']) {
    const base = server.url + prefix;
    assert.deepEqual((await getJson(`${base}/prompt`)).json, { exec_info: { queue_remaining: 0 } });
    assert.deepEqual((await getJson(`${base}/queue`)).json, { queue_running: [], queue_pending: [] });

    const info = await getJson(`${base}/object_info`);
    assert.equal(info.status, 200);
    assert.deepEqual(Object.keys(info.json).sort(), ['TestConstant', 'TestExpandSave', 'TestFail', 'TestSaveImage', 'TestSlow', 'TestWait']);
    const save = info.json.TestSaveImage;
    assert.equal(save.output_node, true);
    assert.deepEqual(save.input.required.filename_prefix, ['STRING', { default: 'test' }]);
    assert.equal(save.category, 'test');
    for (const key of ['input', 'input_order', 'output', 'output_is_list', 'output_name', 'name', 'display_name', 'description', 'python_module', 'category', 'output_node']) {
      assert.ok(key in save, `object_info entry has ${key}`);
    }
    assert.deepEqual((await getJson(`${base}/object_info/TestSlow`)).json, { TestSlow: info.json.TestSlow });
    assert.deepEqual((await getJson(`${base}/object_info/NoSuchNode`)).json, {});

    const stats = (await getJson(`${base}/system_stats`)).json;
    assert.equal(typeof stats.system.ram_total, 'number');
    assert.equal(typeof stats.system.ram_free, 'number');
    assert.equal(typeof stats.system.os, 'string');
    assert.equal(stats.devices[0].type, 'cpu');
    assert.ok(stats.system.rss_peak >= stats.system.rss - 2 ** 20, 'a peak is never below the current size');

    assert.deepEqual((await getJson(`${base}/extensions`)).json, []);
    assert.deepEqual((await postJson(`${base}/free`, { unload_models: true, free_memory: true })).status, 200);
    assert.deepEqual((await postJson(`${base}/interrupt`, {})).json, { interrupted: false });
    assert.deepEqual((await getJson(`${base}/history`)).json, {});
    assert.deepEqual((await getJson(`${base}/history/unknown-id`)).json, {});
  }
});

test('/history lists, pages, deletes and clears', async () => {
  const client = await TestClient.connect(server.url, 'history-client');
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await postJson(`${server.url}/api/prompt`, { prompt: slowPrompt(100 + i, 1, 0), client_id: 'history-client' });
    ids.push(r.json.prompt_id);
    await client.done(r.json.prompt_id);
  }
  assert.deepEqual(Object.keys((await getJson(`${server.url}/history`)).json), ids);
  assert.deepEqual(Object.keys((await getJson(`${server.url}/history?max_items=2`)).json), ids.slice(1));
  assert.deepEqual(Object.keys((await getJson(`${server.url}/history?max_items=1&offset=0`)).json), ids.slice(0, 1));
  assert.equal((await getJson(`${server.url}/history?max_items=-3`)).status, 400);

  assert.equal((await postJson(`${server.url}/history`, { delete: [ids[0]] })).status, 200);
  assert.deepEqual(Object.keys((await getJson(`${server.url}/history`)).json), ids.slice(1));
  assert.equal((await postJson(`${server.url}/history`, { clear: true })).status, 200);
  assert.deepEqual((await getJson(`${server.url}/history`)).json, {});
  await client.close();
});

test('POST /prompt validation errors have ComfyUI’s shapes', async () => {
  const post = (body: unknown) => postJson(`${server.url}/prompt`, body);

  const noPrompt = await post({ client_id: 'x' });
  assert.equal(noPrompt.status, 400);
  assert.equal(noPrompt.json.error.type, 'no_prompt');
  assert.deepEqual(noPrompt.json.node_errors, {});

  const badJson = await post('{"prompt": ');
  assert.equal(badJson.status, 400);
  assert.equal(badJson.json.error.type, 'invalid_json');

  const badField = await post({ prompt: slowPrompt(1), front: 'yes' });
  assert.equal(badField.status, 400);
  assert.equal(badField.json.error.type, 'invalid_request');
  assert.match(badField.json.error.message, /front/);
  for (const key of ['type', 'message', 'details', 'extra_info']) assert.ok(key in badField.json.error);

  const unknownNode = await post({ prompt: { '1': { class_type: 'Nope', inputs: {} } } });
  assert.equal(unknownNode.status, 400);
  assert.equal(unknownNode.json.error.type, 'missing_node_type');
  assert.deepEqual(unknownNode.json.node_errors, {});

  const noOutputs = await post({ prompt: { '1': { class_type: 'TestConstant', inputs: { value: 1 } } } });
  assert.equal(noOutputs.status, 400);
  assert.equal(noOutputs.json.error.type, 'prompt_no_outputs');

  // Several broken outputs at once: each error under its node id, with the outputs it breaks.
  const broken = await post({
    prompt: {
      '1': { class_type: 'TestConstant', inputs: { value: 5000 } },
      '2': { class_type: 'TestSaveImage', inputs: { value: ['1', 0], filename_prefix: 'a' } },
      '3': { class_type: 'TestSaveImage', inputs: { filename_prefix: 'b' } },
      '4': { class_type: 'TestSaveImage', inputs: { value: ['9', 0], filename_prefix: 'c' } },
      '5': { class_type: 'TestSlow', inputs: { value: ['6', 0], steps: 1, step_ms: 0, previews: 'gif' } },
      '6': { class_type: 'TestConstant', inputs: { value: 1 } },
      '7': { class_type: 'TestSaveImage', inputs: { value: ['5', 0], filename_prefix: 'd' } },
    },
  });
  assert.equal(broken.status, 400);
  assert.equal(broken.json.error.type, 'prompt_outputs_failed_validation');
  const errors = broken.json.node_errors;
  const tooBig = errors['1'];
  assert.equal(tooBig.class_type, 'TestConstant');
  assert.deepEqual(tooBig.dependent_outputs, ['2']);
  assert.equal(tooBig.errors[0].type, 'value_bigger_than_max');
  assert.equal(tooBig.errors[0].extra_info.input_name, 'value');
  assert.equal(tooBig.errors[0].extra_info.received_value, 5000);
  assert.deepEqual(tooBig.errors[0].extra_info.input_config, ['INT', { default: 1, min: 0, max: 1000 }]);
  assert.equal(errors['3'].errors[0].type, 'required_input_missing');
  assert.equal(errors['4'].errors[0].type, 'bad_linked_input');
  assert.equal(errors['5'].errors[0].type, 'value_not_in_list');
  assert.deepEqual(errors['5'].dependent_outputs, ['7']);
  for (const entry of Object.values(errors) as any[]) {
    for (const error of entry.errors) for (const key of ['type', 'message', 'details', 'extra_info']) assert.ok(key in error);
  }

  const mismatch = await post({
    prompt: {
      '1': { class_type: 'TestConstant', inputs: { value: 1 } },
      '2': { class_type: 'TestSaveImage', inputs: { value: ['3', 0], filename_prefix: 'a' } },
      '3': { class_type: 'TestSaveImage', inputs: { value: ['1', 4], filename_prefix: 'b' } },
    },
  });
  assert.equal(mismatch.status, 400);
  assert.equal(mismatch.json.node_errors['2'].errors[0].type, 'bad_linked_input');
  assert.match(mismatch.json.node_errors['3'].errors[0].message, /slot|output/);
});

test('partial acceptance: 200 with node_errors, only the valid output runs', async () => {
  const client = await TestClient.connect(server.url, 'partial');
  const r = await postJson(`${server.url}/prompt`, {
    client_id: 'partial',
    prompt: {
      '1': { class_type: 'TestConstant', inputs: { value: 3 } },
      '2': { class_type: 'TestSaveImage', inputs: { value: ['1', 0], filename_prefix: 'ok' } },
      '3': { class_type: 'TestSaveImage', inputs: { filename_prefix: 'broken' } },
    },
  });
  assert.equal(r.status, 200);
  assert.equal(r.json.node_errors['3'].errors[0].type, 'required_input_missing');
  assert.deepEqual(r.json.node_errors['3'].dependent_outputs, ['3']);
  await client.done(r.json.prompt_id);
  const entry = (await getJson(`${server.url}/history/${r.json.prompt_id}`)).json[r.json.prompt_id];
  assert.deepEqual(Object.keys(entry.outputs), ['2']);
  assert.deepEqual(entry.prompt[4], ['2']);
  await client.close();
});

test('prompt_id from the request is used, and must be unique', async () => {
  const client = await TestClient.connect(server.url, 'ids');
  const first = await postJson(`${server.url}/prompt`, { prompt: slowPrompt(41, 1, 0), prompt_id: 'my-id-1', client_id: 'ids' });
  assert.equal(first.status, 200);
  assert.equal(first.json.prompt_id, 'my-id-1');
  const dupWhileQueued = await postJson(`${server.url}/prompt`, { prompt: slowPrompt(42, 1, 0), prompt_id: 'my-id-1' });
  assert.equal(dupWhileQueued.status, 400);
  assert.equal(dupWhileQueued.json.error.type, 'duplicate_prompt_id');
  await client.done('my-id-1');
  const dupInHistory = await postJson(`${server.url}/prompt`, { prompt: slowPrompt(43, 1, 0), prompt_id: 'my-id-1' });
  assert.equal(dupInHistory.status, 400);
  assert.match(dupInHistory.json.error.message, /already used/);
  await client.close();
});

test('partial_execution_targets runs only the named outputs', async () => {
  const client = await TestClient.connect(server.url, 'targets');
  const r = await postJson(`${server.url}/prompt`, {
    client_id: 'targets',
    partial_execution_targets: ['3'],
    prompt: {
      '1': { class_type: 'TestConstant', inputs: { value: 61 } },
      '2': { class_type: 'TestSaveImage', inputs: { value: ['1', 0], filename_prefix: 'x' } },
      '3': { class_type: 'TestSaveImage', inputs: { value: ['1', 0], filename_prefix: 'y' } },
    },
  });
  assert.equal(r.status, 200);
  await client.done(r.json.prompt_id);
  const entry = (await getJson(`${server.url}/history/${r.json.prompt_id}`)).json[r.json.prompt_id];
  assert.deepEqual(Object.keys(entry.outputs), ['3']);
  await client.close();
});

test('GET / serves a page saying the editor is not built; a built editor is served when present', async () => {
  const page = await fetch(`${server.url}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /editor is not built[\s\S]*--editor-dir/);

  const editorDir = join(server.dir, 'editor-dist');
  mkdirSync(editorDir, { recursive: true });
  writeFileSync(join(editorDir, 'index.html'), '<!doctype html><title>editor</title>');
  writeFileSync(join(editorDir, 'app.js'), 'console.log(1)');
  const extDir = join(server.dir, 'pack-web');
  mkdirSync(join(extDir, 'sub'), { recursive: true });
  writeFileSync(join(extDir, 'main.js'), 'export {}');
  writeFileSync(join(extDir, 'sub', 'widget.js'), 'export {}');
  const other = await startTestServer({
    editorDir,
    webExtensions: [{ pack: 'my-pack', urlPrefix: '/extensions/my-pack/', dir: extDir, files: ['main.js', 'sub/widget.js'] }],
  });
  try {
    assert.equal(await (await fetch(`${other.url}/`)).text(), '<!doctype html><title>editor</title>');
    assert.equal(await (await fetch(`${other.url}/app.js`)).text(), 'console.log(1)');
    assert.deepEqual((await getJson(`${other.url}/extensions`)).json, ['/extensions/my-pack/main.js', '/extensions/my-pack/sub/widget.js']);
    const script = await fetch(`${other.url}/extensions/my-pack/sub/widget.js`);
    assert.equal(script.status, 200);
    assert.match(script.headers.get('content-type') ?? '', /javascript/);
    assert.equal((await fetch(`${other.url}/extensions/my-pack/../../../etc/passwd`)).status, 404);
  } finally {
    await other.dispose();
  }
});

test('/view serves input and temp files and answers 404 for a missing file', async () => {
  mkdirSync(join(server.config.paths.input, 'sub'), { recursive: true });
  writeFileSync(join(server.config.paths.input, 'sub', 'in.png'), makePng(2, 2, 1));
  writeFileSync(join(server.config.paths.temp, 'preview.png'), makePng(2, 2, 2));
  const input = await fetch(`${server.url}/view?filename=in.png&subfolder=sub&type=input`);
  assert.equal(input.status, 200);
  assert.deepEqual(Buffer.from(await input.arrayBuffer()), makePng(2, 2, 1));
  const temp = await fetch(`${server.url}/api/view?filename=preview.png&type=temp`);
  assert.deepEqual(Buffer.from(await temp.arrayBuffer()), makePng(2, 2, 2));
  // ComfyUI's annotated name form.
  const annotated = await fetch(`${server.url}/view?filename=${encodeURIComponent('preview.png [temp]')}`);
  assert.equal(annotated.status, 200);
  assert.equal((await fetch(`${server.url}/view?filename=missing.png`)).status, 404);
  assert.equal((await fetch(`${server.url}/view?filename=in.png&type=models`)).status, 400);
  assert.equal((await fetch(`${server.url}/view`)).status, 400);
});

test('POST /upload/image saves, deduplicates identical content and renames clashes', async () => {
  const upload = async (data: Buffer, name: string, fields: Record<string, string> = {}) => {
    const form = new FormData();
    form.append('image', new Blob([data], { type: 'image/png' }), name);
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    const response = await fetch(`${server.url}/upload/image`, { method: 'POST', body: form });
    return { status: response.status, json: (await response.json()) as any };
  };
  const a = makePng(3, 3, 1);
  const b = makePng(3, 3, 2);
  assert.deepEqual((await upload(a, 'cat.png')).json, { name: 'cat.png', subfolder: '', type: 'input' });
  assert.deepEqual((await upload(a, 'cat.png')).json, { name: 'cat.png', subfolder: '', type: 'input' }, 'same bytes: same file');
  assert.deepEqual((await upload(b, 'cat.png')).json, { name: 'cat (1).png', subfolder: '', type: 'input' }, 'clash: new name');
  assert.deepEqual((await upload(makePng(3, 3, 3), 'cat.png')).json.name, 'cat (2).png');
  assert.deepEqual((await upload(b, 'cat.png')).json.name, 'cat (1).png', 'dedup against a renamed copy too');
  const view = await fetch(`${server.url}/view?filename=${encodeURIComponent('cat (1).png')}&type=input`);
  assert.deepEqual(Buffer.from(await view.arrayBuffer()), b);

  assert.deepEqual((await upload(b, 'cat.png', { overwrite: 'true' })).json.name, 'cat.png');
  const replaced = await fetch(`${server.url}/view?filename=cat.png&type=input`);
  assert.deepEqual(Buffer.from(await replaced.arrayBuffer()), b);

  const inSub = await upload(a, 'dog.png', { subfolder: 'pets/dogs', type: 'temp' });
  assert.deepEqual(inSub.json, { name: 'dog.png', subfolder: 'pets/dogs', type: 'temp' });
  const fromSub = await fetch(`${server.url}/view?filename=dog.png&subfolder=pets/dogs&type=temp`);
  assert.equal(fromSub.status, 200);

  const unicode = await upload(a, 'café 雪.png');
  assert.equal(unicode.json.name, 'café 雪.png');
  const unicodeView = await fetch(`${server.url}/view?filename=${encodeURIComponent('café 雪.png')}&type=input`);
  assert.equal(unicodeView.status, 200);
  assert.match(unicodeView.headers.get('content-disposition') ?? '', /filename\*=UTF-8''caf%C3%A9%20%E9%9B%AA\.png/);
  assert.deepEqual(Buffer.from(await unicodeView.arrayBuffer()), a);

  const noFile = await fetch(`${server.url}/upload/image`, { method: 'POST', body: new FormData() });
  assert.equal(noFile.status, 400);
});

test('POST /queue and /interrupt reject malformed bodies', async () => {
  assert.equal((await postJson(`${server.url}/queue`, { delete: 'abc' })).status, 400);
  assert.equal((await postJson(`${server.url}/queue`, { clear: 'yes' })).status, 400);
  assert.equal((await postJson(`${server.url}/interrupt`, { prompt_id: 5 })).status, 400);
  assert.equal((await postJson(`${server.url}/history`, { delete: [1] })).status, 400);
  await until(async () => (await getJson(`${server.url}/prompt`)).json.exec_info.queue_remaining === 0);
});
