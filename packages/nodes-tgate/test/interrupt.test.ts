import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultPrompt, noModel, validateAndRun } from './helpers.ts';

test('interrupting during sampling stops KSampler within one step', { skip: noModel }, async () => {
  const abort = new AbortController();
  const steps: number[] = [];
  const { result, events } = await validateAndRun(defaultPrompt(), {
    signal: abort.signal,
    onEvent(event) {
      if (event.type !== 'progress') return;
      steps.push(event.data.value);
      if (event.data.value === 5) abort.abort();
    },
  });
  assert.equal(result.status, 'interrupted');
  assert.ok(steps.length <= 6, `at most one step after the interrupt; progress went ${steps.join(', ')}`);
  assert.ok(!result.executed.includes('8') && !result.executed.includes('9'), 'nothing after the sampler ran');
  const stop = events.find((e) => e.type === 'execution_interrupted');
  assert.equal((stop?.data as { node_id: string }).node_id, '3', 'the interruption is reported at the KSampler');
});
