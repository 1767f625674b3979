// The test run's own prerequisite check, as a person meets it: a browser that is not where the tests look stops
// the run before any test starts, with one sentence saying what to do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('a CHROMIUM_PATH that is not a program stops the browser tests with one sentence, before any test runs', () => {
  const result = spawnSync(process.execPath, ['scripts/run-tests.mjs', 'packages/editor'], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, NODE_TEST_CONTEXT: undefined, CHROMIUM_PATH: '/nonexistent/chromium' },
  });
  assert.equal(result.status, 1);
  assert.equal(
    result.stderr.trim(),
    'run-tests: CHROMIUM_PATH is /nonexistent/chromium, which is not an executable file: point it at a Chromium binary or unset it.',
  );
  assert.doesNotMatch(result.stdout, /✔|ℹ tests/, 'no test ran');
});

test('test files that need no browser do not ask for one', () => {
  const result = spawnSync(process.execPath, ['scripts/run-tests.mjs', 'packages/core/test/signature'], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, NODE_TEST_CONTEXT: undefined, CHROMIUM_PATH: '/nonexistent/chromium' },
  });
  assert.equal(result.status, 0, result.stderr);
  assert.doesNotMatch(result.stderr, /CHROMIUM_PATH/);
  assert.match(result.stdout, /ℹ pass [1-9]/);
});
