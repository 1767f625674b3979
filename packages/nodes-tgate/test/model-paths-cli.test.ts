// `gategraph --extra-model-paths-config` as a user runs it: a real process, a ComfyUI-style install elsewhere on
// disk with the embedded model in its models/diffusers/ and a single file in its models/checkpoints/.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noModel, readJson, repoRoot, testModelDir } from './helpers.ts';
import type { ApiPrompt } from '@gategraph/core';

const dir = mkdtempSync(join(tmpdir(), 'gg-extra-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const install = join(dir, 'ComfyUI');
mkdirSync(join(install, 'models', 'diffusers'), { recursive: true });
mkdirSync(join(install, 'models', 'checkpoints', 'sd'), { recursive: true });
symlinkSync(testModelDir, join(install, 'models', 'diffusers', 'extra-tiny'), 'dir');
writeFileSync(join(install, 'models', 'checkpoints', 'sd', 'v1-5.safetensors'), 'x');
mkdirSync(join(dir, 'second', 'Stable-diffusion'), { recursive: true });
writeFileSync(join(dir, 'second', 'Stable-diffusion', 'from-webui.ckpt'), 'x');
mkdirSync(join(dir, 'config'));
const config = join(dir, 'config', 'extra_model_paths.yaml');
writeFileSync(config, 'comfyui:\n  base_path: ../ComfyUI\n  checkpoints: models/checkpoints\n  diffusers: models/diffusers\n');
const second = join(dir, 'config', 'second.yaml');
writeFileSync(second, 'a111:\n  base_path: ../second\n  checkpoints: Stable-diffusion\n');
const broken = join(dir, 'config', 'broken.yaml');
writeFileSync(broken, 'comfyui:\n  base_path: ../ComfyUI\n  checkpoints: models/checkpoints: x\n');
const emptyModels = join(dir, 'models');
mkdirSync(emptyModels);

const workflow = join(dir, 'extra.json');
const prompt = readJson<ApiPrompt>(join(repoRoot, 'workflows', 'default.json'));
prompt['4']!.inputs.ckpt_name = 'extra-tiny';
writeFileSync(workflow, JSON.stringify(prompt));

function gategraph(...args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, GATEGRAPH_MODELS: emptyModels };
  delete env.GATEGRAPH_EXTRA_MODEL_PATHS;
  const r = spawnSync(process.execPath, ['packages/core/bin/gategraph.mjs', ...args, '--models-dir', emptyModels, '--output-dir', join(dir, 'out'), '--no-custom-nodes'], {
    cwd: repoRoot,
    encoding: 'utf8',
    env,
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('validate: a model found only through --extra-model-paths-config is listed and valid; without the flag it is unknown', { skip: noModel }, () => {
  const ok = gategraph('validate', workflow, '--extra-model-paths-config', config);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /valid/);
  const without = gategraph('validate', workflow);
  assert.equal(without.code, 2, without.stderr);
  assert.match(without.stderr, /CheckpointLoaderSimple #4: Input "ckpt_name" is "extra-tiny", which is not/);
});

test('nodes --json: ckpt_name lists what every --extra-model-paths-config file adds (the flag repeats)', () => {
  const r = gategraph('nodes', '--json', '--extra-model-paths-config', config, '--extra-model-paths-config', second);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout) as Record<string, { input: { required: Record<string, [string[]]> } }>;
  const ckpts = info.CheckpointLoaderSimple!.input.required.ckpt_name![0];
  assert.ok(ckpts.includes('sd/v1-5.safetensors'), ckpts.join(', '));
  assert.ok(ckpts.includes('from-webui.ckpt'), ckpts.join(', '));
  if (!noModel) assert.ok(ckpts.includes('extra-tiny'), ckpts.join(', '));
  const alone = gategraph('nodes', '--json', '--extra-model-paths-config', second);
  const only = (JSON.parse(alone.stdout) as typeof info).CheckpointLoaderSimple!.input.required.ckpt_name![0];
  assert.ok(only.includes('from-webui.ckpt') && !only.includes('sd/v1-5.safetensors'), only.join(', '));
});

test('a missing --extra-model-paths-config file is a usage error (64) in one line; a broken one is named with its line and skipped', () => {
  const missing = gategraph('nodes', '--extra-model-paths-config', join(dir, 'nope.yaml'));
  assert.equal(missing.code, 64, missing.stderr);
  assert.equal(missing.stderr.trim(), `--extra-model-paths-config: ${join(dir, 'nope.yaml')} does not exist (expected an extra_model_paths.yaml file)`);

  const bad = gategraph('nodes', '--json', '--extra-model-paths-config', broken);
  assert.equal(bad.code, 0, bad.stderr);
  assert.match(bad.stderr, new RegExp(`${broken.replace(/[.]/g, '\\.')} is not valid YAML: line 3, column \\d+: .*; its model folders are not searched`));
  assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(bad.stderr.split('\n').filter((l) => l.includes('broken.yaml')).length, 1, 'said once');
});
