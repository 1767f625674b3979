import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BYTE_SIZE, cacheOptionsFromFlags, estimateByteSize, OutputCache, type CacheEntry } from '../src/index.ts';

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

test('ram keeps everything while memory is free, and evicts the largest unpinned entries when it runs short', () => {
  let available = 10_000_000;
  const cache = new OutputCache({ mode: 'ram', ramHeadroomBytes: 5_000_000, availableMemory: () => available });
  cache.set('small', entry(new Uint8Array(1_000)));
  cache.set('big', entry(new Uint8Array(3_000_000)));
  cache.set('pinned', entry(new Uint8Array(4_000_000)));
  cache.set('medium', entry(new Uint8Array(2_000_000)));
  assert.equal(cache.stats().entries, 4, 'nothing goes while memory is free');
  cache.beginRun(['pinned']);
  available = 3_500_000; // 1.5 MB short of the headroom
  cache.set('tiny', entry(new Uint8Array(10)));
  assert.deepEqual(['small', 'big', 'pinned', 'medium', 'tiny'].filter((k) => cache.has(k)), ['small', 'pinned', 'medium', 'tiny'], 'the largest unpinned entry covers the shortfall');
  available = 0; // 5 MB short: the two largest (4 + 2 MB) cover it once the run's pin is gone
  cache.endRun();
  assert.deepEqual(['small', 'pinned', 'medium', 'tiny'].filter((k) => cache.has(k)), ['small', 'tiny']);
});

test('ComfyUI\'s cache flags map to cache options; one at a time', () => {
  assert.equal(cacheOptionsFromFlags({}), undefined);
  assert.deepEqual(cacheOptionsFromFlags({ classic: true }), { mode: 'classic' });
  assert.deepEqual(cacheOptionsFromFlags({ none: true }), { mode: 'none' });
  assert.deepEqual(cacheOptionsFromFlags({ lru: '8' }), { mode: 'lru', maxEntries: 8 });
  assert.deepEqual(cacheOptionsFromFlags({ lru: 0 }), { mode: 'lru' }, '0: no limit, as ComfyUI');
  assert.deepEqual(cacheOptionsFromFlags({ ram: true }), { mode: 'ram', ramHeadroomBytes: 4 * 1024 ** 3 });
  assert.deepEqual(cacheOptionsFromFlags({ ram: '1.5' }), { mode: 'ram', ramHeadroomBytes: 1.5 * 1024 ** 3 });
  assert.throws(() => cacheOptionsFromFlags({ lru: 'x' }), /--cache-lru takes a whole number/);
  assert.throws(() => cacheOptionsFromFlags({ ram: '-1' }), /--cache-ram takes the memory to keep free in GB/);
  assert.throws(() => cacheOptionsFromFlags({ classic: true, ram: true }), /use one cache flag at a time \(got --cache-classic, --cache-ram\)/);
});
