// What the product writes at run time under a checkout (server store, outputs, uploads, saved workflows, derived
// model graphs, user packs) never shows up in `git status`: every default location is ignored by .gitignore.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { resolveConfig, userDataDir } from '../src/config.ts';
import { workspaceRoot } from './helpers.ts';

const notACheckout = existsSync(join(workspaceRoot, '.git')) ? undefined : 'not a git checkout';

test('every place the product writes to by default is ignored by git', { skip: notACheckout }, () => {
  const config = resolveConfig(workspaceRoot, {}, {});
  const written = [
    join(config.dataDir, 'log.jsonl'),
    join(config.paths.output, 'gategraph_00001_.png'),
    join(config.paths.input, 'upload.png'),
    join(config.paths.temp, 'preview.png'),
    join(userDataDir(config), 'workflows', 'my workflow.json'),
    join(userDataDir(config), 'comfy.settings.json'),
    join(workspaceRoot, 'custom_nodes', 'my-pack', 'index.mjs'),
    join(workspaceRoot, 'models', 'tiny-sd', '.gategraph-derived', 'unet-gated.onnx'),
  ].map((path) => relative(workspaceRoot, path));
  const result = spawnSync('git', ['check-ignore', '--no-index', '--verbose', '--non-matching', ...written], { cwd: workspaceRoot, encoding: 'utf8' });
  assert.equal(result.error, undefined, 'git runs');
  const notIgnored = result.stdout.split('\n').filter((line) => line.startsWith('::')).map((line) => line.slice(2).trim());
  assert.deepEqual(notIgnored, [], 'these would show up in git status');
});
