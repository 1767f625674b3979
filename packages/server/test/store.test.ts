import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@gategraph/core';
import { PromptQueue } from '../src/index.ts';
import type { HistoryEntry } from '../src/store.ts';

const entry = (id: string): HistoryEntry => ({
  prompt: [0, id, {}, {}, []],
  outputs: { '9': { images: [{ filename: `${id}.png`, subfolder: '', type: 'output' }] } },
  status: { status_str: 'success', completed: true, messages: [] },
  meta: {},
});

test('the queue store survives reopening across many compactions, trims history, keeps order', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gg-store-'));
  try {
    const open = () => PromptQueue.open({ dataDir: dir, maxHistory: 25, logger: silentLogger, fsync: false }).queue;
    let queue = open();
    // Enough records to compact several times (every 2000 records), reopening in between.
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 400; i++) {
        const id = `r${round}-${i}`;
        queue.enqueue({ promptId: id, prompt: {}, extraData: {}, outputs: [] });
        const taken = await queue.take();
        assert.equal(taken?.promptId, id);
        queue.finish(id, entry(id));
      }
      const pending = round === 2 ? { front: true } : { number: 1e9 };
      queue.enqueue({ promptId: `pending-${round}`, prompt: {}, extraData: {}, outputs: [], ...pending });
      queue.close();
      queue = open();
    }
    const history = Object.keys(queue.history());
    assert.equal(history.length, 25, 'only the newest maxHistory entries are kept');
    assert.equal(history.at(-1), 'r2-399');
    assert.equal(history[0], 'r2-375');
    assert.deepEqual(queue.pending().map((i) => i.promptId), ['pending-2', 'pending-0', 'pending-1']);
    assert.ok(queue.has('pending-0') && queue.has('r2-399') && !queue.has('r0-0'));
    // One snapshot and one log remain; old logs are removed.
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.jsonl')).length, 2);
    // The counter continues across restarts: 3 x 401 prompts were queued before this one.
    const next = queue.enqueue({ promptId: 'last', prompt: {}, extraData: {}, outputs: [] });
    assert.equal(next.number, 3 * 401);
    queue.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('history is bounded in bytes as well as entries: the oldest go first, the newest stays, restarts keep the budget', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gg-store-bytes-'));
  // What ComfyUI's frontend sends with every prompt: the UI workflow, here 100 KB of it.
  const workflow = { nodes: Array.from({ length: 1000 }, (_, i) => ({ id: i, type: 'Note', widgets_values: ['x'.repeat(80)] })) };
  const heavy = (id: string): HistoryEntry => ({ ...entry(id), prompt: [0, id, {}, { extra_pnginfo: { workflow } }, []] });
  const entryBytes = JSON.stringify(heavy('p-000')).length;
  const budget = 20 * entryBytes;
  const open = (maxHistoryBytes: number) => PromptQueue.open({ dataDir: dir, maxHistory: 10_000, maxHistoryBytes, logger: silentLogger, fsync: false }).queue;
  try {
    let queue = open(budget);
    for (let i = 0; i < 60; i++) {
      const id = `p-${String(i).padStart(3, '0')}`;
      queue.enqueue({ promptId: id, prompt: {}, extraData: {}, outputs: [] });
      await queue.take();
      queue.finish(id, heavy(id));
      assert.ok(queue.historyBytes() <= budget, `after ${id}: ${queue.historyBytes()} bytes kept, budget ${budget}`);
    }
    const kept = Object.keys(queue.history());
    assert.equal(kept.length, 20, `20 entries of ${entryBytes} bytes fit the budget`);
    assert.equal(queue.historyBytes(), budget);
    assert.equal(kept.at(-1), 'p-059', 'the newest entry is kept');
    assert.deepEqual(queue.history()['p-059']?.prompt[3], { extra_pnginfo: { workflow } }, 'kept entries keep their workflow whole');
    queue.close();

    // A restart replays snapshot and log into the same entries and the same count of bytes.
    queue = open(budget);
    assert.deepEqual(Object.keys(queue.history()), kept);
    assert.equal(queue.historyBytes(), budget, 'an entry counts the same read from the snapshot');
    queue.close();

    // A smaller budget on the next start trims the oldest entries; one entry larger than the budget stays alone.
    queue = open(5 * entryBytes);
    assert.deepEqual(Object.keys(queue.history()), kept.slice(-5));
    queue.close();
    queue = open(10);
    assert.deepEqual(Object.keys(queue.history()), ['p-059'], 'the newest entry stays even when it alone is over the budget');
    queue.deleteHistory(['p-059']);
    assert.equal(queue.historyBytes(), 0, 'deleting entries gives their bytes back');
    queue.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
