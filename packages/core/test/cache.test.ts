import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BYTE_SIZE, estimateByteSize, OutputCache, type CacheEntry } from '../src/index.ts';

const entry = (value: unknown): CacheEntry => ({ outputs: [[value]] });

test('estimateByteSize counts buffers, strings, containers and self-reported handles', () => {
  assert.equal(estimateByteSize(new Float32Array(256)), 1024);
  assert.equal(estimateByteSize(new ArrayBuffer(100)), 100);
  assert.equal(estimateByteSize('abcd'), 8);
  const handle = new (class ModelHandle {
    [BYTE_SIZE]() {
      return 5_000_000;
    }
  })();
  assert.equal(estimateByteSize(handle), 5_000_000);
  assert.equal(BYTE_SIZE, Symbol.for('gategraph.byteSize'), 'packs can implement it without importing core');
  const latent = { samples: new Float32Array(1000), shape: [1, 4, 10, 25] };
  const size = estimateByteSize([latent, latent]); // the same object twice counts once
  assert.ok(size >= 4000 && size < 4300, String(size));
  const cyclic: Record<string, unknown> = { a: new Uint8Array(10) };
  cyclic.self = cyclic;
  assert.ok(estimateByteSize(cyclic) < 200);
  let deep: unknown = new Uint8Array(10);
  for (let i = 0; i < 10_000; i++) deep = [deep];
  assert.ok(Number.isFinite(estimateByteSize(deep)), 'deep nesting does not overflow the stack');
});

test('lru keeps the most recently used entries within maxEntries', () => {
  const cache = new OutputCache({ mode: 'lru', maxEntries: 2 });
  cache.set('a', entry(1));
  cache.set('b', entry(2));
  assert.ok(cache.get('a')); // a is now more recent than b
  cache.set('c', entry(3));
  assert.equal(cache.has('b'), false);
  assert.ok(cache.has('a') && cache.has('c'));
  assert.deepEqual(
    { entries: cache.stats().entries, hits: cache.stats().hits, evictions: cache.stats().evictions },
    { entries: 2, hits: 1, evictions: 1 },
  );
});

test('maxBytes evicts the oldest entries until the estimate fits', () => {
  const cache = new OutputCache({ mode: 'lru', maxBytes: 10_000 });
  cache.set('a', entry(new Float32Array(1000)));
  cache.set('b', entry(new Float32Array(1000)));
  assert.equal(cache.stats().entries, 2);
  cache.set('c', entry(new Float32Array(1000)));
  assert.deepEqual([cache.has('a'), cache.has('b'), cache.has('c')], [false, true, true]);
  assert.ok(cache.stats().bytes <= 10_000);
});

test('entries pinned by the running prompt survive the bounds until the run ends', () => {
  const cache = new OutputCache({ mode: 'lru', maxEntries: 1 });
  cache.set('old', entry(0));
  cache.beginRun(['a', 'b']);
  cache.set('a', entry(1));
  cache.set('b', entry(2));
  assert.deepEqual([cache.has('old'), cache.has('a'), cache.has('b')], [false, true, true]);
  cache.endRun();
  assert.deepEqual([cache.has('a'), cache.has('b')], [false, true]);
});

test('classic mode drops what the new prompt does not use when it starts', () => {
  const cache = new OutputCache({ mode: 'classic' });
  cache.set('a', entry(1));
  cache.set('b', entry(2));
  cache.beginRun(['b', 'c']);
  assert.deepEqual([cache.has('a'), cache.has('b')], [false, true]);
  cache.endRun();
  assert.equal(cache.has('b'), true);
});

test('none mode stores nothing; clear() empties the cache and keeps the counters', () => {
  const none = new OutputCache({ mode: 'none' });
  none.set('a', entry(1));
  assert.equal(none.get('a'), undefined);
  assert.deepEqual([none.stats().entries, none.stats().misses], [0, 1]);

  const cache = new OutputCache();
  cache.set('a', entry('x'));
  cache.get('a');
  cache.clear();
  assert.deepEqual([cache.stats().entries, cache.stats().bytes, cache.stats().hits], [0, 0, 1]);
});

test('bad options are refused with a message naming them', () => {
  assert.throws(() => new OutputCache({ mode: 'fifo' as never }), /Unknown cache mode "fifo"/);
  assert.throws(() => new OutputCache({ maxBytes: -1 }), /maxBytes must be a number >= 0/);
});
