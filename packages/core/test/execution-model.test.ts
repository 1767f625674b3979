// ComfyUI's execution model on our executor: expansion (incl. a loop built by recursion), ExecutionBlocker,
// undeclared (variadic) inputs, check_lazy_status, concurrent async nodes, rawLink, DYNPROMPT, NOT_IDEMPOTENT,
// and validation and the executor agreeing on which links a node has.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  defineNode,
  ExecutionBlocker,
  Executor,
  float,
  int,
  NodeRegistry,
  silentLogger,
  socket,
  string,
  validatePrompt,
  type ApiPrompt,
  type ExecutionEvent,
  type PromptLink,
} from '../src/index.ts';

const paths = { output: '/tmp/out', input: '/tmp/in', temp: '/tmp/temp', models: '/tmp/models' };
const node = (class_type: string, inputs: Record<string, unknown> = {}) => ({ class_type, inputs });

function world() {
  const calls: string[] = [];
  const spans: Array<{ id: string; start: number; end: number }> = [];
  const registry = new NodeRegistry();
  const nodes = [
    defineNode({ id: 'Int', inputs: { value: int({ min: -1e9, max: 1e9 }) }, outputs: [{ type: 'INT' }], execute: ({ value }, ctx) => (calls.push(ctx.nodeId), [value]) }),
    defineNode({
      id: 'Add',
      inputs: { a: socket('INT'), b: socket('INT') },
      outputs: [{ type: 'INT' }],
      execute: ({ a, b }, ctx) => (calls.push(ctx.nodeId), [a + b]),
    }),
    defineNode({
      id: 'Show',
      inputs: { value: socket('*') },
      outputs: [],
      outputNode: true,
      execute: ({ value }, ctx) => (calls.push(ctx.nodeId), { ui: { values: [value] } }),
    }),
    // sum(n) = n + sum(n - 1): each call expands into an Add and a smaller SumTo, so the loop is recursion.
    defineNode({
      id: 'SumTo',
      inputs: { n: socket('INT'), total: socket('INT', { optional: true }) },
      outputs: [{ type: 'INT' }],
      execute({ n, total }, ctx) {
        calls.push(ctx.nodeId);
        const sum = total ?? 0;
        if (n <= 0) return [sum];
        const graph = ctx.graph();
        const n1 = graph.node('Int', { value: n - 1 });
        const add = graph.node('Add', { a: sum, b: n });
        const next = graph.node('SumTo', { n: n1.out(0), total: add.out(0) });
        return { outputs: [next.out(0)], expand: graph.finalize() };
      },
    }),
    defineNode({
      id: 'ExpandBadly',
      inputs: { how: string() },
      outputs: [{ type: 'INT' }],
      execute({ how }, ctx) {
        const graph = ctx.graph();
        if (how === 'unknown') return { outputs: [graph.node('NoSuchNode').out(0)], expand: graph.finalize() };
        if (how === 'self') return { outputs: [graph.node('Add', { a: [ctx.nodeId, 0], b: 1 }).out(0)], expand: graph.finalize() };
        const a = graph.node('Add', { b: 1 });
        const b = graph.node('Add', { a: a.out(0), b: 1 });
        a.set('a', b.out(0));
        return { outputs: [b.out(0)], expand: graph.finalize() };
      },
    }),
    defineNode({
      id: 'Gate',
      inputs: { value: socket('INT'), open: socket<boolean>('BOOLEAN', { acceptsConstant: true }), message: string({ optional: true }) },
      outputs: [{ type: 'INT' }],
      execute: ({ value, open, message }, ctx) => (calls.push(ctx.nodeId), [open ? value : new ExecutionBlocker(message || null)]),
    }),
    defineNode({
      id: 'Range',
      inputs: { n: int() },
      outputs: [{ type: 'INT', isList: true }],
      execute: ({ n }, ctx) => (calls.push(ctx.nodeId), [Array.from({ length: n }, (_, i) => i)]),
    }),
    defineNode({
      id: 'Average',
      inputs: { first: socket('INT') },
      acceptsUndeclaredInputs: true,
      outputs: [{ type: 'FLOAT' }],
      execute(inputs, ctx) {
        calls.push(ctx.nodeId);
        const values = Object.values(inputs as Record<string, number>);
        return [values.reduce((a, b) => a + b, 0) / values.length];
      },
    }),
    // The same wait, declared concurrent (Sleep) or not (Work), recording when it ran.
    ...[true, false].map((concurrent) =>
      defineNode({
        id: concurrent ? 'Sleep' : 'Work',
        inputs: { value: socket('INT'), ms: int() },
        outputs: [{ type: 'INT' }],
        concurrent,
        async execute({ value, ms }, ctx) {
          const start = performance.now();
          await new Promise((resolve) => setTimeout(resolve, ms));
          spans.push({ id: ctx.nodeId, start, end: performance.now() });
          return [value];
        },
      }),
    ),
    // ComfyUI's lazy mix: with ratio 0 only `a` is needed, with 1 only `b`, else both.
    defineNode({
      id: 'Mix',
      inputs: { a: socket('INT', { lazy: true }), b: socket('INT', { lazy: true }), ratio: float() },
      outputs: [{ type: 'FLOAT' }],
      checkLazyStatus({ a, b, ratio }) {
        seenByStatus.push({ a, b });
        const needed: string[] = [];
        if (ratio !== 1 && a === undefined) needed.push('a');
        if (ratio !== 0 && b === undefined) needed.push('b');
        return needed;
      },
      async execute({ a, b, ratio }, ctx) {
        calls.push(ctx.nodeId);
        const x = ratio === 1 ? 0 : await a();
        const y = ratio === 0 ? 0 : await b();
        return [x * (1 - ratio) + y * ratio];
      },
    }),
    defineNode({
      id: 'LinkOf',
      inputs: { from: socket('*', { rawLink: true }) },
      hidden: { prompt: 'DYNPROMPT' },
      outputs: [{ type: 'STRING' }],
      execute: ({ from, prompt }) => [`${JSON.stringify(from)} ${prompt.get((from as unknown as PromptLink)[0])?.class_type}`],
    }),
    defineNode({
      id: 'Counter',
      inputs: { value: socket('INT') },
      notIdempotent: true,
      outputs: [{ type: 'INT' }],
      execute: ({ value }, ctx) => (calls.push(ctx.nodeId), [value]),
    }),
    defineNode({
      id: 'Loopy',
      inputs: { value: socket('INT', { lazy: true }), other: socket('INT', { lazy: true, optional: true }) },
      outputs: [{ type: 'INT' }],
      execute: async ({ other }) => [(await other!()) ?? 0],
    }),
  ];
  const seenByStatus: Array<{ a: unknown; b: unknown }> = [];
  for (const n of nodes) registry.register(n);
  const executor = new Executor(registry, { paths, logger: silentLogger });
  const run = async (prompt: ApiPrompt, outputs: string[]) => {
    const events: ExecutionEvent[] = [];
    const result = await executor.run(prompt, { promptId: 'p', outputs, onEvent: (e) => events.push(e) });
    return { result, events };
  };
  return { registry, executor, run, calls, spans, seenByStatus };
}

test('expansion: a loop built by recursion runs, its nodes are namespaced under the parent, and a re-run is all cached', async () => {
  const w = world();
  const prompt: ApiPrompt = { n: node('Int', { value: 4 }), s: node('SumTo', { n: ['n', 0] }), out: node('Show', { value: ['s', 0] }) };
  const { result, events } = await w.run(prompt, ['out']);
  assert.equal(result.status, 'success', result.error?.message);
  assert.deepEqual(result.outputs.out, { values: [10] });
  const expanded = result.executed.filter((id) => id.includes('.'));
  assert.ok(expanded.includes('s.0.0.3'), 'the first expansion is namespaced <parent>.<call>.<builder>.<id>');
  assert.ok(expanded.some((id) => id.startsWith('s.0.0.3.0.0.')), 'a nested expansion is namespaced under its own parent');
  const executing = events.filter((e) => e.type === 'executing').map((e) => e.data as { node: string; display_node: string });
  for (const e of executing.filter((e) => e.node.includes('.'))) assert.equal(e.display_node, 's', 'expanded nodes are shown on the node that expanded');
  const started = events.filter((e): e is Extract<ExecutionEvent, { type: 'node_started' }> => e.type === 'node_started');
  assert.equal(started.find((e) => e.data.node === 's.0.0.3')!.data.parent_node, 's');
  assert.equal(started.find((e) => e.data.node === 's.0.0.3')!.data.real_node, 's');

  w.calls.length = 0;
  const again = await w.run(prompt, ['out']);
  assert.deepEqual(again.result.executed, [], 'the expanding node is cached with its resolved outputs');
  assert.deepEqual(again.result.outputs.out, { values: [10] });
  const other = await w.run({ ...prompt, n: node('Int', { value: 5 }) }, ['out']);
  assert.deepEqual(other.result.outputs.out, { values: [15] });
});

test('expansion errors are reported on the node that expanded: unknown classes, links to itself, cycles', async () => {
  const w = world();
  for (const [how, pattern] of [
    ['unknown', /class "NoSuchNode"/],
    ['self', /needs node x's output: a cycle/],
    ['cycle', /sub-graph with a cycle/],
  ] as const) {
    const { result } = await w.run({ x: node('ExpandBadly', { how }), out: node('Show', { value: ['x', 0] }) }, ['out']);
    assert.equal(result.status, 'error', how);
    assert.equal(result.error?.node_id, 'x', how);
    assert.match(result.error!.message, pattern);
  }
});

test('ExecutionBlocker: blocks its consumers per list element; a message is an error event and the prompt goes on', async () => {
  const w = world();
  const blocked = await w.run(
    { one: node('Int', { value: 1 }), g: node('Gate', { value: ['one', 0], open: false }), add: node('Add', { a: ['g', 0], b: ['one', 0] }), out: node('Show', { value: ['add', 0] }) },
    ['out'],
  );
  assert.equal(blocked.result.status, 'success');
  assert.ok(!w.calls.includes('add') && !w.calls.includes('out'), 'nothing downstream of a blocker runs');
  assert.deepEqual(blocked.result.outputs, {});
  const finished = blocked.events.filter((e): e is Extract<ExecutionEvent, { type: 'node_finished' }> => e.type === 'node_finished');
  assert.equal(finished.find((e) => e.data.node === 'out')!.data.outcome, 'blocked');

  // Per element: Range gives 0, 1, 2; the gate is closed for... every element here, but a list of gates mixes.
  w.calls.length = 0;
  const perElement = await w.run(
    {
      r: node('Range', { n: 3 }),
      g: node('Gate', { value: ['r', 0], open: true }),
      g2: node('Gate', { value: ['g', 0], open: false, message: 'switched off' }),
      out: node('Show', { value: ['g', 0] }),
      out2: node('Show', { value: ['g2', 0] }),
    },
    ['out', 'out2'],
  );
  assert.equal(perElement.result.status, 'success');
  assert.deepEqual(perElement.result.outputs.out, { values: [0, 1, 2] });
  assert.equal(perElement.result.outputs.out2, undefined);
  const errors = perElement.events.filter((e) => e.type === 'execution_error');
  assert.equal(errors.length, 3, 'one error event per blocked call of the first node the message reached');
  assert.match(String((errors[0]!.data as { exception_message: string }).exception_message), /Execution Blocked: switched off/);
});

test('undeclared inputs: a variadic node gets every key; validation checks its links; a non-variadic node ignores them in both', async () => {
  const w = world();
  const prompt: ApiPrompt = {
    a: node('Int', { value: 2 }),
    b: node('Int', { value: 4 }),
    avg: node('Average', { first: ['a', 0], second: ['b', 0], third: 9 }),
    out: node('Show', { value: ['avg', 0] }),
  };
  const validated = await validatePrompt(prompt, w.registry);
  assert.ok(validated.ok, JSON.stringify(validated.nodeErrors));
  const { result } = await w.run(validated.prompt, validated.outputs);
  assert.deepEqual(result.outputs.out, { values: [5] });

  const broken = { ...prompt, avg: node('Average', { first: ['a', 0], second: ['missing', 0] }) };
  const refused = await validatePrompt(broken, w.registry);
  assert.equal(refused.ok, false);
  assert.equal(refused.nodeErrors.avg!.errors[0]!.type, 'bad_linked_input');

  // Add declares a and b only: a stray key linking to a broken node is ignored by validation AND the executor.
  w.calls.length = 0;
  const stray: ApiPrompt = {
    a: node('Int', { value: 2 }),
    bad: node('Int', { value: 'not a number' }),
    add: node('Add', { a: ['a', 0], b: ['a', 0], extra: ['bad', 0] }),
    out: node('Show', { value: ['add', 0] }),
  };
  const strayValidated = await validatePrompt(stray, w.registry);
  assert.ok(strayValidated.ok, 'the stray link is not a link of Add');
  const ran = await w.run(strayValidated.prompt, strayValidated.outputs);
  assert.equal(ran.result.status, 'success');
  assert.ok(!w.calls.includes('bad'), 'the executor does not run it either');

  // A cycle through a stray key is no cycle; through a variadic key it is, for both.
  const strayCycle: ApiPrompt = { a: node('Int', { value: 1 }), add: node('Add', { a: ['a', 0], b: ['a', 0], loop: ['add', 0] }), out: node('Show', { value: ['add', 0] }) };
  assert.ok((await validatePrompt(strayCycle, w.registry)).ok);
  const variadicCycle: ApiPrompt = { a: node('Int', { value: 1 }), avg: node('Average', { first: ['a', 0], loop: ['avg', 0] }), out: node('Show', { value: ['avg', 0] }) };
  const cycle = await validatePrompt(variadicCycle, w.registry);
  assert.equal(cycle.nodeErrors.avg?.errors[0]?.type, 'dependency_cycle');
  const forced = await w.run(variadicCycle, ['out']);
  assert.equal(forced.result.status, 'error');
  assert.match(forced.result.error!.message, /cycle/);
});

test('check_lazy_status: only the inputs asked for run; a value already available is passed to the hook', async () => {
  const w = world();
  const prompt = (ratio: number): ApiPrompt => ({
    a: node('Int', { value: 10 }),
    b: node('Int', { value: 20 }),
    mix: node('Mix', { a: ['a', 0], b: ['b', 0], ratio }),
    out: node('Show', { value: ['mix', 0] }),
  });
  const onlyA = await w.run(prompt(0), ['out']);
  assert.deepEqual(onlyA.result.outputs.out, { values: [10] });
  assert.ok(w.calls.includes('a') && !w.calls.includes('b'), 'b is never evaluated');
  w.seenByStatus.length = 0;
  const both = await w.run(prompt(0.5), ['out']);
  assert.deepEqual(both.result.outputs.out, { values: [15] });
  assert.deepEqual(w.seenByStatus[0], { a: 10, b: undefined }, 'a (cached from the last run) is passed as its value; b is not evaluated yet');
});

test('concurrent nodes overlap; other nodes run one at a time', async () => {
  const w = world();
  const prompt: ApiPrompt = { v: node('Int', { value: 1 }) };
  for (const id of ['s1', 's2', 's3']) {
    prompt[id] = node('Sleep', { value: ['v', 0], ms: 150 });
    prompt[`o${id}`] = node('Show', { value: [id, 0] });
  }
  for (const [id, ms] of [['w1', 60], ['w2', 61]] as const) {
    prompt[id] = node('Work', { value: ['v', 0], ms });
    prompt[`o${id}`] = node('Show', { value: [id, 0] });
  }
  const { result } = await w.run(prompt, ['os1', 'os2', 'os3', 'ow1', 'ow2']);
  assert.equal(result.status, 'success');
  const span = (id: string) => w.spans.find((s) => s.id === id)!;
  const sleeps = ['s1', 's2', 's3'].map(span);
  assert.ok(Math.max(...sleeps.map((s) => s.start)) < Math.min(...sleeps.map((s) => s.end)), 'all three sleeps were running at once');
  const [w1, w2] = [span('w1'), span('w2')];
  assert.ok(w1.end <= w2.start || w2.end <= w1.start, 'the two ordinary nodes did not overlap');
});

test('rawLink gets the link, DYNPROMPT the live prompt; notIdempotent nodes are not shared', async () => {
  const w = world();
  const linkOf = await w.run({ v: node('Int', { value: 1 }), l: node('LinkOf', { from: ['v', 0] }), out: node('Show', { value: ['l', 0] }) }, ['out']);
  assert.deepEqual(linkOf.result.outputs.out, { values: ['["v",0] Int'] });
  const twins = await w.run(
    { v: node('Int', { value: 1 }), c1: node('Counter', { value: ['v', 0] }), c2: node('Counter', { value: ['v', 0] }), o1: node('Show', { value: ['c1', 0] }), o2: node('Show', { value: ['c2', 0] }) },
    ['o1', 'o2'],
  );
  assert.ok(twins.result.executed.includes('c1') && twins.result.executed.includes('c2'));
});

test('a lazy input that needs the node asking for it is reported as a cycle, not a hang', async () => {
  const w = world();
  const prompt: ApiPrompt = {
    v: node('Int', { value: 1 }),
    l: node('Loopy', { value: ['v', 0], other: ['a', 0] }),
    a: node('Add', { a: ['l', 0], b: ['v', 0] }),
    out: node('Show', { value: ['l', 0] }),
  };
  const { result } = await w.run(prompt, ['out']);
  assert.equal(result.status, 'error');
  assert.match(result.error!.message, /cycle/);
});

test('output nodes run as soon as they are ready (ComfyUI\'s output-first pick)', async () => {
  const w = world();
  const prompt: ApiPrompt = {
    a: node('Int', { value: 1 }),
    b: node('Int', { value: 2 }),
    oa: node('Show', { value: ['a', 0] }),
    sum: node('Add', { a: ['a', 0], b: ['b', 0] }),
    os: node('Show', { value: ['sum', 0] }),
  };
  await w.run(prompt, ['os', 'oa']);
  assert.ok(w.calls.indexOf('oa') < w.calls.indexOf('b'), `the preview of a runs before b is computed: ${w.calls.join(' ')}`);
});
