/**
 * history-entry.ts on the history entries the server really writes: an interrupt when the server stops
 * (queue.ts's interruptedByStopEntry carries a reason and a message) is "interrupted" with that message, not
 * "error", though its status_str is "error".
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { interruptedByStopEntry } from '../../server/src/queue.ts';
import { formatDuration, summarizeRun, type HistoryEntry } from '../web/history-entry.ts';

test('a prompt interrupted by a server stop is interrupted, with the server\'s message', () => {
  const entry = interruptedByStopEntry({ number: 3, promptId: 'p', prompt: {}, extraData: {}, outputs: [] } as never) as unknown as HistoryEntry;
  assert.equal(entry.status?.status_str, 'error');
  const run = summarizeRun(entry);
  assert.equal(run.outcome, 'interrupted');
  const message = (entry.status!.messages![0]![1] as { message: string }).message;
  assert.ok(message.length > 0);
  assert.equal(run.reason, message);
});

test('run time: from execution_start to the last status message', () => {
  const run = summarizeRun({
    prompt: [1, 'p', {}, {}, []],
    outputs: {},
    status: { status_str: 'success', completed: true, messages: [['execution_start', { timestamp: 1000 }], ['execution_cached', { timestamp: 1001 }], ['execution_success', { timestamp: 3500 }]] },
  });
  assert.deepEqual(run, { outcome: 'success', durationMs: 2500 });
  assert.equal(formatDuration(2500), '2.5 s');
  assert.equal(formatDuration(125_000), '2 min 5 s');
});
