import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { parseCliArgs, resolveConfig } from '../src/index.ts';

test('config: loopback and 8188 by default; HOST, PORT, GATEGRAPH_TOKEN from the environment; options win', () => {
  const defaults = resolveConfig('/srv/gg', {}, {});
  assert.equal(defaults.host, '127.0.0.1');
  assert.equal(defaults.port, 8188);
  assert.equal(defaults.token, undefined);
  assert.equal(defaults.paths.output, join('/srv/gg', 'output'));
  assert.equal(defaults.dataDir, join('/srv/gg', '.gategraph', 'server'));
  assert.equal(defaults.editorDir, join('/srv/gg', 'packages', 'editor', 'dist'));

  const fromEnv = resolveConfig('/srv/gg', {}, { HOST: '0.0.0.0', PORT: '9000', GATEGRAPH_TOKEN: 'abc' });
  assert.deepEqual([fromEnv.host, fromEnv.port, fromEnv.token], ['0.0.0.0', 9000, 'abc']);
  const explicit = resolveConfig('/srv/gg', { host: '::1', port: 0, token: 'xyz' }, { HOST: '0.0.0.0', PORT: '9000' });
  assert.deepEqual([explicit.host, explicit.port, explicit.token], ['::1', 0, 'xyz']);
  assert.throws(() => resolveConfig('/srv/gg', {}, { PORT: 'eighty' }), /PORT must be a port number/);
});

test('CLI flags map onto the options', () => {
  const options = parseCliArgs([
    '--listen', '0.0.0.0', '--port', '8190', '--token', 't', '--output-directory', '/o', '--data-directory', '/d',
    '--max-upload-size', '20MB', '--max-body-size', '512k', '--max-image-dimension', '4096', '--workers', '2',
    '--max-history', '500', '--max-history-size', '64MB',
  ]);
  assert.equal(options.host, '0.0.0.0');
  assert.equal(options.port, 8190);
  assert.equal(options.token, 't');
  assert.deepEqual(options.paths, { output: '/o' });
  assert.equal(options.dataDir, '/d');
  assert.equal(options.maxUploadBytes, 20 * 1024 * 1024);
  assert.equal(options.maxBodyBytes, 512 * 1024);
  assert.equal(options.maxImageDimension, 4096);
  assert.equal(options.workers, 2);
  assert.equal(options.maxHistory, 500);
  assert.equal(options.maxHistoryBytes, 64 * 1024 * 1024);
  assert.equal(resolveConfig('/r', {}, {}).maxHistoryBytes, 256 * 1024 * 1024, 'the history byte budget has a default');
  assert.throws(() => parseCliArgs(['--port', '99999']), /--port must be a port number/);
  assert.throws(() => parseCliArgs(['--max-upload-size', 'lots']), /--max-upload-size must be a size/);
  assert.throws(() => parseCliArgs(['--bogus']), /bogus/);
});

test('ComfyUI\'s cache flags: --cache-lru N, --cache-none, --cache-ram with or without a value, one at a time', () => {
  assert.equal(parseCliArgs([]).cache, undefined, 'the default cache (classic)');
  assert.deepEqual(parseCliArgs(['--cache-lru', '16']).cache, { mode: 'lru', maxEntries: 16 });
  assert.deepEqual(parseCliArgs(['--cache-none', '--port', '0']).cache, { mode: 'none' });
  assert.deepEqual(parseCliArgs(['--cache-ram']).cache, { mode: 'ram', ramHeadroomBytes: 4 * 1024 ** 3 });
  assert.deepEqual(parseCliArgs(['--cache-ram', '--port', '0']).cache, { mode: 'ram', ramHeadroomBytes: 4 * 1024 ** 3 });
  assert.deepEqual(parseCliArgs(['--cache-ram', '2']).cache, { mode: 'ram', ramHeadroomBytes: 2 * 1024 ** 3 });
  assert.throws(() => parseCliArgs(['--cache-none', '--cache-classic']), /use one cache flag at a time/);
});

test('--execution picks where nodes run: thread or in-process, nothing else', () => {
  assert.equal(parseCliArgs([]).execution, undefined, 'the default: the thread when the server loads the packs');
  assert.equal(parseCliArgs(['--execution', 'in-process']).execution, 'in-process');
  assert.equal(parseCliArgs(['--execution', 'thread']).execution, 'thread');
  assert.throws(() => parseCliArgs(['--execution', 'process']), /--execution must be thread or in-process/);
});
