// The server's --extra-model-paths-config: a ComfyUI install and an A1111 webui elsewhere on disk, named by
// extra_model_paths.yaml files, show up in /object_info; a file that is not there stops the start in one line.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ExtraModelPathsConfigError, parseCliArgs, startServer } from '../src/index.ts';
import { getJson, workspaceRoot, workspaceServerOptions } from './helpers.ts';

const ENV = 'GATEGRAPH_EXTRA_MODEL_PATHS';
const dir = mkdtempSync(join(tmpdir(), 'gg-extra-server-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function write(path: string, text = 'x'): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
}
write(join(dir, 'ComfyUI', 'models', 'checkpoints', 'sdxl', 'comfy-model.safetensors'));
write(join(dir, 'ComfyUI', 'models', 'diffusers', 'comfy-onnx', 'model_index.json'), '{"_class_name":"OnnxStableDiffusionPipeline"}');
write(join(dir, 'webui', 'models', 'Stable-diffusion', 'webui-model.ckpt'));
write(join(dir, 'webui', 'models', 'VAE', 'webui-vae.safetensors'));
const comfyYaml = join(dir, 'config', 'extra_model_paths.yaml');
write(comfyYaml, 'comfyui:\n  base_path: ../ComfyUI/\n  is_default: true\n  checkpoints: models/checkpoints/\n  diffusers: models/diffusers\n');
const webuiYaml = join(dir, 'config', 'a111.yaml');
write(webuiYaml, 'a111:\n  base_path: ../webui\n  checkpoints: models/Stable-diffusion\n  vae: models/VAE\n');

/** Flags that keep a started server's files inside `dir`. */
function folderFlags(name: string): string[] {
  const d = join(dir, name);
  return [
    '--port', '0', '--data-directory', join(d, 'data'), '--output-directory', join(d, 'output'), '--input-directory', join(d, 'input'),
    '--temp-directory', join(d, 'temp'), '--custom-nodes', join(d, 'custom_nodes'), '--editor-dir', join(d, 'no-editor'),
  ];
}

function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env[ENV];
  return env;
}

test('--extra-model-paths-config is repeatable and resolved against the current folder', () => {
  assert.deepEqual(parseCliArgs(['--extra-model-paths-config', 'a.yaml', '--extra-model-paths-config', '/x/b.yaml']).extraModelPathsConfig, [resolve('a.yaml'), '/x/b.yaml']);
  assert.equal(parseCliArgs([]).extraModelPathsConfig, undefined);
});

test('pnpm serve --extra-model-paths-config: /object_info lists the checkpoints each file adds', { timeout: 120_000 }, async () => {
  const child = spawn(process.execPath, ['packages/server/bin/serve.mjs', ...folderFlags('served'), '--extra-model-paths-config', comfyYaml, '--extra-model-paths-config', webuiYaml], {
    cwd: workspaceRoot,
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the server did not start:\n${output}`)), 90_000);
      child.stdout.on('data', () => {
        const match = /listening on (http:\/\/\S+)/.exec(output);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
      void exited.then(() => reject(new Error(`the server exited:\n${output}`)));
    });
    const { status, json } = await getJson(`${url}/object_info/CheckpointLoaderSimple`);
    assert.equal(status, 200);
    const names = json.CheckpointLoaderSimple.input.required.ckpt_name[0] as string[];
    for (const name of ['sdxl/comfy-model.safetensors', 'comfy-onnx', 'webui-model.ckpt', 'tiny-sd']) assert.ok(names.includes(name), `${name} in ${names.join(', ')}`);
    const all = await getJson(`${url}/api/object_info`);
    assert.deepEqual(all.json.CheckpointLoaderSimple.input.required.ckpt_name[0], names);
    assert.deepEqual(all.json.VAELoader.input.required.vae_name[0], ['webui-vae.safetensors'], 'the a111 section\'s vae folder');
    assert.doesNotMatch(output, /extra_model_paths|a111\.yaml/, 'a good file says nothing');
  } finally {
    child.kill('SIGTERM');
    assert.equal(await exited, 0, output);
  }
});

test('startServer({extraModelPathsConfig}) lists them while it runs and puts the variable back when it stops', { timeout: 120_000 }, async () => {
  const before = process.env[ENV];
  delete process.env[ENV];
  try {
    const server = await startServer({ ...workspaceServerOptions(join(dir, 'in-process')), extraModelPathsConfig: [webuiYaml] });
    try {
      assert.equal(process.env[ENV], webuiYaml);
      const names = (await getJson(`${server.url}/object_info/CheckpointLoaderSimple`)).json.CheckpointLoaderSimple.input.required.ckpt_name[0] as string[];
      assert.ok(names.includes('webui-model.ckpt'), names.join(', '));
      assert.ok(!names.includes('comfy-onnx'), 'only the file it was given');
    } finally {
      await server.close();
    }
    assert.equal(process.env[ENV], undefined);

    await assert.rejects(
      startServer({ ...workspaceServerOptions(join(dir, 'missing')), extraModelPathsConfig: [join(dir, 'nope.yaml')] }),
      (error: unknown) => error instanceof ExtraModelPathsConfigError && error.message === `--extra-model-paths-config: ${join(dir, 'nope.yaml')} does not exist (expected an extra_model_paths.yaml file)`,
    );
    assert.equal(process.env[ENV], undefined);
  } finally {
    if (before !== undefined) process.env[ENV] = before;
  }
});

test('pnpm serve with a missing --extra-model-paths-config file exits 64 with one line, before loading anything', () => {
  const r = spawnSync(process.execPath, ['packages/server/bin/serve.mjs', ...folderFlags('refused'), '--extra-model-paths-config', join(dir, 'nope.yaml')], {
    cwd: workspaceRoot,
    env: childEnv(),
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 64, r.stderr);
  assert.equal(r.stderr.trim(), `--extra-model-paths-config: ${join(dir, 'nope.yaml')} does not exist (expected an extra_model_paths.yaml file)`);
});
