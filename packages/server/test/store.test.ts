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
