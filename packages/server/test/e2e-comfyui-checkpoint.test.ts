/**
 * ComfyUI's own default workflow (its API JSON, naming `v1-5-pruned-emaonly.safetensors`), unchanged, queued on a
 * server pointed at a ComfyUI install by extra_model_paths.yaml: the checkpoint file in the install's
 * models/checkpoints is listed, built on first use and sampled, and the image comes back through /history and
 * /view. The checkpoint is tools/test-checkpoints' sd15-small (SD-1.5's key layout and block structure, narrow
 * widths, random weights), under the name ComfyUI's workflow uses.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiPrompt } from '@gategraph/core';
import { startServer, type GategraphServer } from '../src/index.ts';
import { testCheckpoints } from '../../diffusion/test/fixtures/test-checkpoints.ts';
import { getJson, postJson, readPngInfo, TestClient, workspaceRoot, workspaceServerOptions } from './helpers.ts';

const CKPT = 'v1-5-pruned-emaonly.safetensors';
let dir: string;
let server: GategraphServer;
let client: TestClient | undefined;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gg-comfy-ckpt-'));
  const checkpoints = join(dir, 'ComfyUI', 'models', 'checkpoints');
  mkdirSync(checkpoints, { recursive: true });
  symlinkSync(join(testCheckpoints(), 'sd15-small.safetensors'), join(checkpoints, CKPT));
  const yaml = join(dir, 'extra_model_paths.yaml');
  writeFileSync(yaml, `comfyui:\n  base_path: ${join(dir, 'ComfyUI')}\n  checkpoints: models/checkpoints/\n`);
  server = await startServer({ ...workspaceServerOptions(dir), extraModelPathsConfig: [yaml], fsync: false });
});

after(async () => {
  await client?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('ComfyUI\'s default workflow, unchanged, runs on the .safetensors checkpoint of a ComfyUI install', { timeout: 300_000 }, async () => {
  const prompt = JSON.parse(readFileSync(join(workspaceRoot, 'packages', 'core', 'test', 'fixtures', 'default-workflow.api.json'), 'utf8')) as ApiPrompt;
  assert.equal(prompt['4']!.inputs.ckpt_name, CKPT);
  const listed = (await getJson(`${server.url}/object_info/CheckpointLoaderSimple`)).json.CheckpointLoaderSimple.input.required.ckpt_name[0] as string[];
  assert.ok(listed.includes(CKPT), `listed: ${listed.join(', ')}`);

  client = await TestClient.connect(server.url, randomUUID());
  const promptId = randomUUID();
  const queued = await postJson(`${server.url}/prompt`, { prompt, client_id: client.clientId, prompt_id: promptId });
  assert.equal(queued.status, 200, JSON.stringify(queued.json));
  await client.done(promptId, 280_000);
  const messages = client.ofPrompt(promptId);
  const error = messages.find((m) => m.type === 'execution_error');
  assert.equal(error, undefined, JSON.stringify(error?.data));
  const loaderProgress = messages.filter((m) => m.type === 'progress' && m.data.node === '4');
  assert.equal(loaderProgress.at(-1)?.data.value, 4, 'the loader reported building the four components');

  const history = (await getJson(`${server.url}/history/${promptId}`)).json[promptId];
  assert.equal(history.status.status_str, 'success');
  const [image] = history.outputs['9'].images as { filename: string; subfolder: string; type: string }[];
  assert.match(image!.filename, /^ComfyUI_\d{5}_\.png$/);
  const response = await fetch(`${server.url}/view?${new URLSearchParams(image!)}`);
  assert.equal(response.status, 200);
  const png = readPngInfo(new Uint8Array(await response.arrayBuffer()));
  assert.deepEqual([png.width, png.height], [512, 512]);
  assert.deepEqual(JSON.parse(png.text.prompt!), prompt);
});
