// The example pack's flow nodes, each showing one part of ComfyUI's execution model ported to gategraph:
// a while loop by recursive expansion (rawLink + DYNPROMPT), an output gate (ExecutionBlocker), a variadic
// average (undeclared inputs), concurrent waits, and a node validating its own input (VALIDATE_INPUTS).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Executor,
  NodeRegistry,
  loadPacks,
  parseJsonKeepingNumberKinds,
  silentLogger,
  validatePrompt,
  type ApiPrompt,
  type ExecutionEvent,
} from '@gategraph/core';

const repoRoot = dirname(dirname(dirname(dirname(fileURLToPath(import.meta.url)))));
const registry = new NodeRegistry();
const paths = { output: '/tmp/gg-flow/out', input: '/tmp/gg-flow/in', temp: '/tmp/gg-flow/temp', models: '/tmp/gg-flow/models' };
let executor: Executor;

before(async () => {
  const report = await loadPacks({ packages: ['@gategraph/example-pack'], resolveFrom: repoRoot, registry });
  assert.deepEqual(report.failed, []);
  executor = new Executor(registry, { paths, logger: silentLogger });
});

async function run(prompt: ApiPrompt) {
  const validation = await validatePrompt(prompt, registry);
  assert.deepEqual(validation.nodeErrors, {}, 'the prompt should be valid');
  const events: ExecutionEvent[] = [];
  const result = await executor.run(validation.prompt, { promptId: 'flow', outputs: validation.outputs, onEvent: (e) => events.push(e) });
  return { result, events };
}

const n = (class_type: string, inputs: Record<string, unknown> = {}) => ({ class_type, inputs });

/** counter and sum start at 0; each round counter += 1, sum += counter; loop while counter < limit. */
const sumLoop = (limit: number): ApiPrompt => ({
  open: n('WhileLoopOpen', { value0: 0, value1: 0 }),
  counter: n('IntMath', { a: ['open', 1], b: 1, operation: 'add' }),
  sum: n('IntMath', { a: ['open', 2], b: ['counter', 0], operation: 'add' }),
  more: n('IntCompare', { a: ['counter', 0], b: limit, comparison: 'a < b' }),
  close: n('WhileLoopClose', { flow: ['open', 0], condition: ['more', 0], value0: ['counter', 0], value1: ['sum', 0] }),
  show: n('ShowText', { value: ['close', 1] }),
});

test('a while loop made by recursive expansion sums 1..5; its rounds are shown on the loop\'s own nodes; a re-run is cached', async () => {
  const { result, events } = await run(sumLoop(5));
  assert.equal(result.status, 'success', result.error?.message);
  assert.deepEqual(result.outputs.show, { text: ['15'] });
  const rounds = result.executed.filter((id) => id.endsWith('.counter'));
  assert.equal(rounds.length, 4, 'the body ran once as submitted and 4 more times as expansions');
  const displayed = new Set(
    events.filter((e): e is Extract<ExecutionEvent, { type: 'executing' }> => e.type === 'executing' && String(e.data.node).endsWith('.counter')).map((e) => e.data.display_node),
  );
  assert.deepEqual([...displayed], ['counter'], 'every round of the body is shown on the original node');

  const again = await run(sumLoop(5));
  assert.deepEqual(again.result.executed, []);
  assert.deepEqual(again.result.outputs.show, { text: ['15'] });
  assert.deepEqual((await run(sumLoop(3))).result.outputs.show, { text: ['6'] });
});

test('OutputGate: closed, the nodes after it do not run; with a message it is an error event and the prompt still succeeds', async () => {
  const prompt = (enabled: boolean, message: string): ApiPrompt => ({
    x: n('IntMath', { a: 2, b: 3, operation: 'multiply' }),
    gate: n('OutputGate', { value: ['x', 0], enabled, message }),
    shown: n('ShowText', { value: ['gate', 0] }),
    other: n('ShowText', { value: ['x', 0] }),
  });
  const open = await run(prompt(true, ''));
  assert.deepEqual(open.result.outputs.shown, { text: ['6'] });
  const closed = await run(prompt(false, ''));
  assert.equal(closed.result.status, 'success');
  assert.equal(closed.result.outputs.shown, undefined);
  assert.deepEqual(closed.result.outputs.other, { text: ['6'] }, 'the rest of the prompt runs');
  assert.equal(closed.events.filter((e) => e.type === 'execution_error').length, 0);
  const told = await run(prompt(false, 'preview switched off'));
  assert.equal(told.result.status, 'success');
  const error = told.events.find((e) => e.type === 'execution_error');
  assert.match(String((error?.data as { exception_message?: string })?.exception_message), /Execution Blocked: preview switched off/);
});

test('AverageNumbers takes inputs it does not declare, linked or constant', async () => {
  const { result } = await run({
    a: n('IntMath', { a: 1, b: 0, operation: 'add' }),
    b: n('IntMath', { a: 2, b: 0, operation: 'add' }),
    c: n('IntMath', { a: 6, b: 0, operation: 'add' }),
    avg: n('AverageNumbers', { first: ['a', 0], second: ['b', 0], third: ['c', 0] }),
    show: n('ShowText', { value: ['avg', 0] }),
  });
  assert.deepEqual(result.outputs.show, { text: ['3'] });
});

test('three WaitSeconds nodes wait at the same time', async () => {
  const prompt: ApiPrompt = { v: n('IntMath', { a: 1, b: 0, operation: 'add' }) };
  for (const id of ['w1', 'w2', 'w3']) {
    prompt[id] = n('WaitSeconds', { value: ['v', 0], seconds: 1 });
    prompt[`show_${id}`] = n('ShowText', { value: [id, 0] });
  }
  // Distinct inputs, so the three are not one cached node.
  prompt.w2!.inputs.value = ['v2', 0];
  prompt.v2 = n('IntMath', { a: 2, b: 0, operation: 'add' });
  prompt.w3!.inputs.value = ['v3', 0];
  prompt.v3 = n('IntMath', { a: 3, b: 0, operation: 'add' });
  const { result, events } = await run(prompt);
  assert.equal(result.status, 'success');
  const order = events.filter((e) => (e.type === 'node_started' || e.type === 'node_finished') && /^w\d$/.test(e.data.node)).map((e) => e.type);
  assert.deepEqual(order, ['node_started', 'node_started', 'node_started', 'node_finished', 'node_finished', 'node_finished']);
});

test('HalfOf validates its own input: INT or FLOAT links, constants written as integers', async () => {
  const prompt = (value: unknown): ApiPrompt => ({ half: n('HalfOf', { value }), show: n('ShowText', { value: ['half', 0] }) });
  assert.deepEqual((await run({ ...prompt(['x', 0]), x: n('IntMath', { a: 3, b: 4, operation: 'add' }) })).result.outputs.show, { text: ['3.5'] });
  assert.deepEqual((await run(prompt(8))).result.outputs.show, { text: ['4'] });
  const asFloat = await validatePrompt(parseJsonKeepingNumberKinds(JSON.stringify(prompt(8)).replace('"value":8', '"value":8.0')) as ApiPrompt, registry);
  assert.match(asFloat.nodeErrors.half!.errors[0]!.message, /integer \(1, not 1\.0\)/);
  const fromText = await validatePrompt({ ...prompt(['t', 0]), t: n('StringConcat', { a: 'a', b: 'b', separator: '' }) }, registry);
  assert.match(fromText.nodeErrors.half!.errors[0]!.message, /not STRING/);
});
