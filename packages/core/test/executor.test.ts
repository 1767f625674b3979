import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  boolean,
  defineNode,
  Executor,
  int,
  InterruptedError,
  NodeInputError,
  NodeRegistry,
  silentLogger,
  socket,
  string,
  type ApiPrompt,
  type ExecutionEvent,
  type Logger,
  type OutputCacheOptions,
  type RunOptions,
} from '../src/index.ts';

const paths = { output: '/tmp/out', input: '/tmp/in', temp: '/tmp/temp', models: '/tmp/models' };

/** Small real nodes that record every `execute` call, by node id. */
function makeWorld() {
  const calls: string[] = [];
  const state = { version: 'v1' };
  const registry = new NodeRegistry();
  const nodes = [
    defineNode({
      id: 'Const',
      inputs: { value: int() },
      outputs: [{ type: 'INT' }],
      execute({ value }, ctx) {
        calls.push(ctx.nodeId);
        return [value];
      },
    }),
    defineNode({
      id: 'Add',
      inputs: { a: socket('INT'), b: socket('INT') },
      outputs: [{ type: 'INT' }],
      execute({ a, b }, ctx) {
        calls.push(ctx.nodeId);
        return [a + b];
      },
    }),
    defineNode({
      id: 'AddConst',
      inputs: { a: socket('INT'), k: int() },
      outputs: [{ type: 'INT' }],
      execute({ a, k }, ctx) {
        calls.push(ctx.nodeId);
        return [a + k];
      },
    }),
    defineNode({
      id: 'Show',
      inputs: { value: socket('INT') },
      outputs: [],
      outputNode: true,
      execute({ value }, ctx) {
        calls.push(ctx.nodeId);
        return { ui: { values: [value] } };
      },
    }),
    defineNode({
      id: 'Fail',
      inputs: { a: socket('INT'), fail: boolean(), userError: boolean({ optional: true }) },
      outputs: [{ type: 'INT' }],
      execute({ a, fail, userError }, ctx) {
        calls.push(ctx.nodeId);
        if (userError) throw new NodeInputError('The width must be a multiple of 8 (got 30)', 'width');
        if (fail) throw new RangeError(`cannot handle ${a}`);
        return [a];
      },
    }),
    defineNode({
      id: 'Tensor',
      inputs: { size: int() },
      outputs: [{ type: 'TENSOR' }],
      execute({ size }, ctx) {
        calls.push(ctx.nodeId);
        return [new Float32Array(size)];
      },
    }),
    defineNode({
      id: 'RejectTensor',
      inputs: { tensor: socket<Float32Array>('TENSOR'), note: string() },
      outputs: [{ type: 'INT' }],
      execute(_inputs, ctx) {
        calls.push(ctx.nodeId);
        throw new NodeInputError('This tensor is the wrong shape');
      },
    }),
    defineNode({
      id: 'Versioned',
      inputs: { name: string() },
      outputs: [{ type: 'INT' }],
      fingerprint: () => state.version,
      execute({ name }, ctx) {
        calls.push(ctx.nodeId);
        return [name.length];
      },
    }),
    defineNode({
      id: 'Random',
      inputs: {},
      outputs: [{ type: 'INT' }],
      fingerprint: () => NaN,
      execute(_inputs, ctx) {
        calls.push(ctx.nodeId);
        return [Math.floor(Math.random() * 1000)];
      },
    }),
    defineNode({
      id: 'Switch',
      inputs: { useA: boolean(), a: socket('INT', { lazy: true }), b: socket('INT', { lazy: true }) },
      outputs: [{ type: 'INT' }],
      async execute({ useA, a, b }, ctx) {
        calls.push(ctx.nodeId);
        if (!useA) return [await b()];
        const first = await a();
        const again = await a(); // memoised: upstream runs once
        return [first + again];
      },
    }),
    defineNode({
      id: 'Both',
      inputs: { a: socket('INT', { lazy: true }), b: socket('INT', { lazy: true }) },
      outputs: [{ type: 'INT' }],
      async execute({ a, b }, ctx) {
        calls.push(ctx.nodeId);
        const [x, y] = await Promise.all([a(), b()]);
        return [x + y];
      },
    }),
    defineNode({
      id: 'Forgiving',
      inputs: { a: socket('INT', { lazy: true }) },
      outputs: [{ type: 'INT' }],
      async execute({ a }, ctx) {
        calls.push(ctx.nodeId);
        try {
          return [await a()];
        } catch {
          return [0];
        }
      },
    }),
    defineNode({
      id: 'Range',
      inputs: { n: int() },
      outputs: [{ type: 'INT', isList: true }],
      execute({ n }, ctx) {
        calls.push(ctx.nodeId);
        return [Array.from({ length: n }, (_, i) => i)];
      },
    }),
    defineNode({
      id: 'Sum',
      inputs: { values: socket('INT'), offset: int() },
      inputIsList: true,
      outputs: [{ type: 'INT' }],
      execute({ values, offset }, ctx) {
        calls.push(ctx.nodeId);
        assert.ok(Array.isArray(values) && Array.isArray(offset));
        return [values.reduce((s, v) => s + v, 0) + offset[0]!];
      },
    }),
    defineNode({
      id: 'Slow',
      inputs: { a: socket('INT') },
      outputs: [{ type: 'INT' }],
      async execute({ a }, ctx) {
        calls.push(ctx.nodeId);
        slow.started();
        for (;;) {
          await new Promise((resolve) => setTimeout(resolve, 2));
          if (ctx.signal.aborted) ctx.throwIfAborted();
          if (slow.finish) return [a];
        }
      },
    }),
    defineNode({
      id: 'Sampler',
      inputs: { steps: int() },
      outputs: [{ type: 'INT' }],
      async execute({ steps }, ctx) {
        calls.push(ctx.nodeId);
        for (let step = 1; step <= steps; step++) {
          await new Promise((resolve) => setImmediate(resolve));
          ctx.progress(step, steps); // never checks the signal itself
        }
        return [steps];
      },
    }),
    defineNode({
      id: 'GiveUp',
      inputs: {},
      outputs: [{ type: 'INT' }],
      execute(_inputs, ctx) {
        calls.push(ctx.nodeId);
        throw new InterruptedError('Stopped by the node');
      },
    }),
    defineNode({
      id: 'Steps',
      inputs: { a: socket('INT') },
      outputs: [{ type: 'INT' }],
      execute({ a }, ctx) {
        calls.push(ctx.nodeId);
        ctx.progress(1, 3);
        ctx.progress(1, 3); // duplicate: dropped
        ctx.progress(2, 3, { format: 'JPEG', data: new Uint8Array([1, 2]) });
        ctx.progress(3, 3);
        ctx.progress(1, 3); // a second pass starts: kept
        ctx.log.info('done');
        return { outputs: [a], ui: { steps: [3] } };
      },
    }),
    defineNode({
      id: 'Who',
      inputs: { tag: string() },
      hidden: { prompt: 'PROMPT', png: 'EXTRA_PNGINFO', me: 'UNIQUE_ID' },
      outputs: [{ type: 'STRING' }],
      outputNode: true,
      execute({ tag, prompt, png, me }, ctx) {
        calls.push(ctx.nodeId);
        return { outputs: [tag], ui: { seen: [{ me, nodes: Object.keys(prompt).length, workflow: png?.workflow ?? null }] } };
      },
    }),
  ];
  for (const node of nodes) registry.register(node);
  const slow = { started: () => {}, finish: false };
  const executor = (cache?: OutputCacheOptions, logger: Logger = silentLogger) => new Executor(registry, { paths, logger, ...(cache ? { cache } : {}) });
  return { registry, calls, state, slow, executor };
}

/** Runs and records the events. */
/** Runs a prompt; `events` are the ComfyUI messages, `lifecycle` the host-only node_started / node_finished. */
async function run(executor: Executor, prompt: ApiPrompt, outputs: string[], extra: Partial<RunOptions> = {}) {
  const events: ExecutionEvent[] = [];
  const lifecycle: ExecutionEvent[] = [];
  const onEvent = (e: ExecutionEvent) => (e.type === 'node_started' || e.type === 'node_finished' ? lifecycle : events).push(e);
  const result = await executor.run(prompt, { promptId: 'p1', outputs, onEvent, ...extra });
  return { result, events, lifecycle };
}

const node = (class_type: string, inputs: Record<string, unknown> = {}) => ({ class_type, inputs });

/** 1 + 2 -> 3 -> Show 4; an unrelated branch 5 -> Show 6. */
function sumPrompt(b = 2): ApiPrompt {
  return {
    '1': node('Const', { value: 1 }),
    '2': node('Const', { value: b }),
    '3': node('Add', { a: ['1', 0], b: ['2', 0] }),
    '4': node('Show', { value: ['3', 0] }),
    '5': node('Const', { value: 9 }),
    '6': node('Show', { value: ['5', 0] }),
  };
}

test('runs only the ancestors of the requested outputs, dependencies first', async () => {
  const w = makeWorld();
  const { result } = await run(w.executor(), sumPrompt(), ['4']);
  assert.equal(result.status, 'success');
  assert.deepEqual(w.calls, ['1', '2', '3', '4']);
  assert.deepEqual(result.executed, ['1', '2', '3', '4']);
  assert.deepEqual(result.outputs, { '4': { values: [3] } });
  assert.deepEqual(result.cached, []);
});

test('an unchanged re-run executes nothing and re-sends the cached UI output of the output node', async () => {
  const w = makeWorld();
  const executor = w.executor();
  await run(executor, sumPrompt(), ['4']);
  w.calls.length = 0;
  const { result, events } = await run(executor, sumPrompt(), ['4']);
  assert.equal(result.status, 'success');
  assert.deepEqual(w.calls, []);
  assert.deepEqual(result.executed, []);
  assert.deepEqual(new Set(result.cached), new Set(['1', '2', '3', '4']));
  assert.deepEqual(result.outputs, { '4': { values: [3] } });
  assert.deepEqual(
    events.map((e) => e.type),
    ['execution_start', 'execution_cached', 'executed', 'execution_success'],
  );
  const cachedEvent = events[1] as Extract<ExecutionEvent, { type: 'execution_cached' }>;
  assert.deepEqual(new Set(cachedEvent.data.nodes), new Set(['1', '2', '3', '4']));
  assert.deepEqual(events[2]!.data, { node: '4', display_node: '4', output: { values: [3] }, prompt_id: 'p1' });
  const stats = executor.cache.stats();
  assert.equal(stats.hits, 4);
  assert.equal(stats.entries, 4);
});

test('the same sub-graph under other node ids hits the cache, across runs and within one run', async () => {
  const w = makeWorld();
  const executor = w.executor();
  await run(executor, sumPrompt(), ['4']);
  w.calls.length = 0;
  const renamed: ApiPrompt = {
    a: node('Const', { value: 1 }),
    b: node('Const', { value: 2 }),
    c: node('Add', { b: ['b', 0], a: ['a', 0] }), // other key order
    d: node('Show', { value: ['c', 0] }),
  };
  const { result } = await run(executor, renamed, ['d']);
  assert.deepEqual(w.calls, []);
  assert.deepEqual(result.outputs, { d: { values: [3] } });

  // Two copies of a new sub-graph in one prompt: the second copy reuses the first one's outputs.
  const twice: ApiPrompt = {
    x1: node('Const', { value: 40 }),
    x2: node('AddConst', { a: ['x1', 0], k: 2 }),
    y1: node('Const', { value: 40 }),
    y2: node('AddConst', { a: ['y1', 0], k: 2 }),
    z: node('Add', { a: ['x2', 0], b: ['y2', 0] }),
    out: node('Show', { value: ['z', 0] }),
  };
  w.calls.length = 0;
  const second = await run(executor, twice, ['out']);
  assert.deepEqual(second.result.outputs, { out: { values: [84] } });
  const ran: string[] = w.calls; // (assert.deepEqual above narrowed w.calls to never[])
  assert.equal(ran.filter((id) => id.startsWith('x') || id.startsWith('y')).length, 2);
});

test('changing one constant re-runs only that node and its descendants', async () => {
  const w = makeWorld();
  const executor = w.executor();
  await run(executor, sumPrompt(2), ['4']);
  w.calls.length = 0;
  const { result } = await run(executor, sumPrompt(5), ['4']);
  assert.deepEqual(w.calls, ['2', '3', '4']);
  assert.deepEqual(result.cached, ['1']);
  assert.deepEqual(result.outputs, { '4': { values: [6] } });
});

test('fingerprint: a changed value re-runs the node and its descendants; NaN runs it every time', async () => {
  const w = makeWorld();
  const executor = w.executor();
  const prompt: ApiPrompt = {
    v: node('Versioned', { name: 'abc' }),
    s: node('Show', { value: ['v', 0] }),
    r: node('Random'),
    rs: node('Show', { value: ['r', 0] }),
  };
  await run(executor, prompt, ['s', 'rs']);
  assert.deepEqual(new Set(w.calls), new Set(['v', 's', 'r', 'rs']));

  w.calls.length = 0;
  await run(executor, prompt, ['s', 'rs']);
  assert.deepEqual(new Set(w.calls), new Set(['r', 'rs']), 'same version: cached; NaN: runs again');

  w.state.version = 'v2';
  w.calls.length = 0;
  await run(executor, prompt, ['s', 'rs']);
  assert.deepEqual(new Set(w.calls), new Set(['v', 's', 'r', 'rs']));
});

test('lazy inputs: an input never asked for does not run its upstream; one asked for runs it once', async () => {
  const w = makeWorld();
  const executor = w.executor();
  const prompt = (useA: boolean): ApiPrompt => ({
    a1: node('Const', { value: 10 }),
    a2: node('AddConst', { a: ['a1', 0], k: 1 }),
    b1: node('Const', { value: 20 }),
    b2: node('AddConst', { a: ['b1', 0], k: 1 }),
    sw: node('Switch', { useA, a: ['a2', 0], b: ['b2', 0] }),
    out: node('Show', { value: ['sw', 0] }),
  });
  const { result, events } = await run(executor, prompt(true), ['out']);
  assert.equal(result.status, 'success');
  assert.deepEqual(w.calls, ['sw', 'a1', 'a2', 'out']);
  assert.deepEqual(result.outputs, { out: { values: [22] } });
  const executing = events.flatMap((e) => (e.type === 'executing' ? [e.data.node] : []));
  assert.deepEqual(executing, ['sw', 'a1', 'a2', 'sw', 'out'], 'the switch is announced again after its lazy upstream ran');

  // The lazily run nodes were cached like any other: switching branches runs only the other branch.
  w.calls.length = 0;
  await run(executor, prompt(false), ['out']);
  assert.deepEqual(w.calls, ['sw', 'b1', 'b2', 'out']);
  w.calls.length = 0;
  await run(executor, prompt(true), ['out']);
  // Classic mode dropped the first switch setting's entries, but kept the `a` branch: the second prompt
  // could have asked for it, so it was part of that run's plan.
  assert.deepEqual(w.calls, ['sw', 'out'], 'the a branch is still cached');
});

test('lazy inputs evaluated together run a shared upstream node once; an upstream failure cannot be swallowed', async () => {
  const w = makeWorld();
  const shared: ApiPrompt = {
    s: node('Const', { value: 1 }),
    a: node('AddConst', { a: ['s', 0], k: 10 }),
    b: node('AddConst', { a: ['s', 0], k: 20 }),
    both: node('Both', { a: ['a', 0], b: ['b', 0] }),
  };
  const { result } = await run(w.executor(), shared, ['both']);
  assert.equal(result.status, 'success');
  assert.equal(w.calls.filter((id) => id === 's').length, 1);
  assert.deepEqual(new Set(w.calls), new Set(['both', 's', 'a', 'b']));

  const failing: ApiPrompt = {
    c: node('Const', { value: 1 }),
    f: node('Fail', { a: ['c', 0], fail: true }),
    g: node('Forgiving', { a: ['f', 0] }),
  };
  const failed = await run(w.executor(), failing, ['g']);
  assert.equal(failed.result.status, 'error');
  assert.equal(failed.result.error?.node_id, 'f', 'the error is reported at the node that threw');
});

test('list outputs map a downstream node once per element; inputIsList receives whole arrays', async () => {
  const w = makeWorld();
  const prompt: ApiPrompt = {
    r: node('Range', { n: 3 }),
    plus: node('AddConst', { a: ['r', 0], k: 10 }),
    show: node('Show', { value: ['plus', 0] }),
    sum: node('Sum', { values: ['plus', 0], offset: 1000 }),
    total: node('Show', { value: ['sum', 0] }),
    r2: node('Range', { n: 2 }),
    pairs: node('Add', { a: ['r', 0], b: ['r2', 0] }),
    pairShow: node('Show', { value: ['pairs', 0] }),
  };
  const { result } = await run(w.executor(), prompt, ['show', 'total', 'pairShow']);
  assert.equal(result.status, 'success');
  assert.equal(w.calls.filter((id) => id === 'plus').length, 3);
  assert.equal(w.calls.filter((id) => id === 'show').length, 3);
  assert.equal(w.calls.filter((id) => id === 'sum').length, 1);
  assert.deepEqual(result.outputs.show, { values: [10, 11, 12] }, 'UI outputs of the mapped runs are concatenated');
  assert.deepEqual(result.outputs.total, { values: [1033] });
  // Lists of 3 and 2: the shorter one repeats its last element.
  assert.deepEqual(result.outputs.pairShow, { values: [0, 2, 3] });
});

test('a node that throws stops the run with a full execution_error; completed upstream outputs stay cached', async () => {
  const w = makeWorld();
  const executor = w.executor();
  const prompt = (fail: boolean): ApiPrompt => ({
    '1': node('Const', { value: 1 }),
    '2': node('AddConst', { a: ['1', 0], k: 2 }),
    '3': node('Fail', { a: ['2', 0], fail }),
    '4': node('Show', { value: ['3', 0] }),
  });
  const { result, events } = await run(executor, prompt(true), ['4']);
  assert.equal(result.status, 'error');
  assert.deepEqual(w.calls, ['1', '2', '3']);
  assert.equal(result.error?.node_id, '3');
  assert.equal(result.error?.node_type, 'Fail');
  assert.equal(result.error?.message, 'cannot handle 3');
  assert.equal(result.error?.exception_type, 'RangeError');
  assert.ok(result.error!.traceback.length > 0 && result.error!.traceback.every((l) => l.startsWith('at ')));
  const errorEvent = events.at(-1)!;
  assert.equal(errorEvent.type, 'execution_error');
  assert.ok(!events.some((e) => e.type === 'execution_success'));
  if (errorEvent.type === 'execution_error') {
    assert.equal(errorEvent.data.node_id, '3');
    assert.equal(errorEvent.data.node_type, 'Fail');
    assert.equal(errorEvent.data.exception_message, 'cannot handle 3');
    assert.equal(errorEvent.data.exception_type, 'RangeError');
    assert.deepEqual(errorEvent.data.executed, ['1', '2']);
    assert.deepEqual(errorEvent.data.current_inputs, { a: [3], fail: [true] });
    assert.deepEqual(errorEvent.data.current_outputs, { '2': [[3]] });
  }
  assert.equal(executor.cache.stats().entries, 2, 'nothing stored for the failing node');

  w.calls.length = 0;
  const fixed = await run(executor, prompt(false), ['4']);
  assert.equal(fixed.result.status, 'success');
  assert.deepEqual(w.calls, ['3', '4'], 'only the fixed node and what follows run again');
});

test('a NodeInputError is reported without a stack; heavy inputs are summarised', async () => {
  const w = makeWorld();
  const prompt: ApiPrompt = {
    t: node('Tensor', { size: 1024 }),
    bad: node('RejectTensor', { tensor: ['t', 0], note: 'x'.repeat(1000) }),
  };
  const { result, events } = await run(w.executor(), prompt, ['bad']);
  assert.equal(result.status, 'error');
  assert.equal(result.error?.exception_type, 'NodeInputError');
  assert.deepEqual(result.error?.traceback, ['This tensor is the wrong shape']);
  assert.equal(result.error?.current_inputs.tensor?.[0], 'Float32Array[1024]');
  const note = result.error?.current_inputs.note?.[0] as string;
  assert.ok(note.length < 300 && note.endsWith('(1000 chars)'));
  assert.ok(events.some((e) => e.type === 'execution_error'));
});

test('interrupting from outside while a node runs ends the run as interrupted; nothing later runs', async () => {
  const w = makeWorld();
  const executor = w.executor();
  const prompt: ApiPrompt = {
    '1': node('Const', { value: 1 }),
    '2': node('Slow', { a: ['1', 0] }),
    '3': node('Show', { value: ['2', 0] }),
  };
  const abort = new AbortController();
  w.slow.started = () => abort.abort();
  const { result, events } = await run(executor, prompt, ['3'], { signal: abort.signal });
  assert.equal(result.status, 'interrupted');
  assert.deepEqual(w.calls, ['1', '2']);
  assert.deepEqual(result.executed, ['1']);
  const last = events.at(-1)!;
  assert.equal(last.type, 'execution_interrupted');
  if (last.type === 'execution_interrupted') {
    assert.equal(last.data.node_id, '2');
    assert.equal(last.data.node_type, 'Slow');
    assert.deepEqual(last.data.executed, ['1']);
  }

  // The executor is free again, and an already aborted signal stops before the first node.
  assert.equal(executor.running, false);
  w.calls.length = 0;
  const again = await run(executor, sumPrompt(), ['4'], { signal: AbortSignal.abort() });
  assert.equal(again.result.status, 'interrupted');
  assert.deepEqual(w.calls, []);
});

test('ctx.progress stops a node at the next step after an interrupt', async () => {
  const w = makeWorld();
  const abort = new AbortController();
  const steps: number[] = [];
  const result = await w.executor().run(
    { k: node('Sampler', { steps: 1000 }), s: node('Show', { value: ['k', 0] }) },
    {
      promptId: 'p',
      outputs: ['s'],
      signal: abort.signal,
      onEvent: (e) => {
        if (e.type !== 'progress') return;
        steps.push(e.data.value);
        if (e.data.value === 3) abort.abort();
      },
    },
  );
  assert.equal(result.status, 'interrupted');
  assert.deepEqual(steps, [1, 2, 3]);
  assert.deepEqual(w.calls, ['k']);
});

test('an InterruptedError thrown by a node counts as an interruption', async () => {
  const w = makeWorld();
  const { result, events } = await run(w.executor(), { g: node('GiveUp'), s: node('Show', { value: ['g', 0] }) }, ['s']);
  assert.equal(result.status, 'interrupted');
  assert.equal(result.error, undefined);
  assert.equal(events.at(-1)?.type, 'execution_interrupted');
});

test('events of a simple run come in ComfyUI order, without the final executing null', async () => {
  const w = makeWorld();
  const prompt: ApiPrompt = { '1': node('Const', { value: 5 }), '2': node('Steps', { a: ['1', 0] }) };
  const { events } = await run(w.executor(), prompt, ['2']);
  const summary = events.map((e) => {
    if (e.type === 'executing') return `executing ${e.data.node}`;
    if (e.type === 'progress') return `progress ${e.data.value}/${e.data.max} ${e.data.node}`;
    if (e.type === 'preview') return `preview ${e.data.image.format}`;
    if (e.type === 'executed') return `executed ${e.data.node} ${JSON.stringify(e.data.output)}`;
    if (e.type === 'execution_cached') return `execution_cached [${e.data.nodes.join(',')}]`;
    return e.type;
  });
  assert.deepEqual(summary, [
    'execution_start',
    'execution_cached []',
    'executing 1',
    'executing 2',
    'progress 1/3 2',
    'progress 2/3 2',
    'preview JPEG',
    'progress 3/3 2',
    'progress 1/3 2',
    'executed 2 {"steps":[3]}',
    'execution_success',
  ]);
  for (const e of events) assert.equal((e.data as { prompt_id: string }).prompt_id, 'p1');
});

test('hidden inputs are injected; a node taking UNIQUE_ID is cached per node id', async () => {
  const w = makeWorld();
  const executor = w.executor();
  const prompt: ApiPrompt = { w1: node('Who', { tag: 't' }), w2: node('Who', { tag: 't' }) };
  const { result } = await run(executor, prompt, ['w1', 'w2'], { extraData: { extra_pnginfo: { workflow: { id: 'wf' } } } });
  assert.deepEqual(w.calls, ['w1', 'w2'], 'same inputs, but UNIQUE_ID makes them distinct');
  assert.deepEqual(result.outputs.w1, { seen: [{ me: 'w1', nodes: 2, workflow: { id: 'wf' } }] });
  assert.deepEqual(result.outputs.w2, { seen: [{ me: 'w2', nodes: 2, workflow: { id: 'wf' } }] });
  w.calls.length = 0;
  await run(executor, prompt, ['w1', 'w2']);
  assert.deepEqual(w.calls, [], 'still cached across runs under the same ids');
});

test('ctx.log is scoped to <class_type>#<id>', async () => {
  const w = makeWorld();
  const scopes: string[] = [];
  const lines: string[] = [];
  const recorder = (scope: string): Logger => ({
    debug() {},
    info: (m) => lines.push(`[${scope}] ${m}`),
    warn() {},
    error() {},
    child: (s) => {
      scopes.push(s);
      return recorder(s);
    },
  });
  await run(w.executor(undefined, recorder('')), { '1': node('Const', { value: 5 }), '2': node('Steps', { a: ['1', 0] }) }, ['2']);
  assert.ok(lines.includes('[Steps#2] done'));
});

test('a second run while one is in progress is refused with a clear error', async () => {
  const w = makeWorld();
  const executor = w.executor();
  const prompt: ApiPrompt = { '1': node('Const', { value: 1 }), '2': node('Slow', { a: ['1', 0] }) };
  let started!: () => void;
  const startedPromise = new Promise<void>((resolve) => (started = resolve));
  w.slow.started = started;
  const first = run(executor, prompt, ['2']);
  await startedPromise;
  assert.equal(executor.running, true);
  await assert.rejects(run(executor, prompt, ['2']), /one prompt at a time/);
  w.slow.finish = true;
  assert.equal((await first).result.status, 'success');
});

test('a malformed prompt fails with a clear error instead of crashing', async () => {
  const w = makeWorld();
  const executor = w.executor();
  const missing = await run(executor, { s: node('Show', { value: ['nope', 0] }) }, ['s']);
  assert.equal(missing.result.status, 'error');
  assert.equal(missing.result.error?.exception_type, 'MalformedPromptError');
  assert.match(missing.result.error!.message, /Input "value" of node s links to node nope, which is not in the prompt/);
  assert.equal(missing.events.at(-1)?.type, 'execution_error');

  const unknown = await run(executor, { x: node('NoSuchNode') }, ['x']);
  assert.match(unknown.result.error!.message, /"NoSuchNode", which no loaded node pack defines/);

  const badSlot = await run(executor, { c: node('Const', { value: 1 }), s: node('Show', { value: ['c', 3] }) }, ['s']);
  assert.match(badSlot.result.error!.message, /output slot 3 of node c \(Const\), which has 1 output/);

  const cycle = await run(executor, { a: node('AddConst', { a: ['b', 0], k: 1 }), b: node('AddConst', { a: ['a', 0], k: 1 }) }, ['a']);
  assert.match(cycle.result.error!.message, /cycle/);

  const notObject = await run(executor, null as unknown as ApiPrompt, ['1']);
  assert.equal(notObject.result.status, 'error');
  assert.deepEqual(w.calls, []);
});

test('a node returning the wrong shape is an error naming the node and what it should return', async () => {
  const registry = new NodeRegistry();
  registry.register(
    defineNode({
      id: 'Sloppy',
      inputs: {},
      outputs: [{ type: 'INT' }, { type: 'INT' }],
      execute: () => [1] as never,
    }),
  );
  const executor = new Executor(registry, { paths, logger: silentLogger });
  const result = await executor.run({ s: node('Sloppy') }, { promptId: 'p', outputs: ['s'] });
  assert.equal(result.status, 'error');
  assert.match(result.error!.message, /Node s \(Sloppy\): execute\(\) returned 1 output value\(s\) but the node declares 2/);
});

test('lru mode with an entry bound evicts the least recently used outputs', async () => {
  const w = makeWorld();
  const executor = w.executor({ mode: 'lru', maxEntries: 4 });
  await run(executor, sumPrompt(), ['4']); // entries 1 2 3 4
  await run(executor, sumPrompt(), ['6']); // + 5 6: the oldest, 1 and 2, go
  assert.equal(executor.cache.stats().entries, 4);
  assert.ok(executor.cache.stats().evictions >= 2);
  w.calls.length = 0;
  const prompt = { ...sumPrompt(), '7': node('Add', { a: ['1', 0], b: ['5', 0] }), '8': node('Show', { value: ['7', 0] }) };
  const { result } = await run(executor, prompt, ['8']);
  assert.deepEqual(w.calls, ['1', '7', '8'], 'node 1 was evicted and runs again; node 5 is still cached');
  assert.deepEqual(result.outputs, { '8': { values: [10] } });
});

test('a byte bound evicts large outputs once the run that needed them is over', async () => {
  const w = makeWorld();
  const executor = w.executor({ mode: 'lru', maxBytes: 10_000 });
  const prompt = (size: number): ApiPrompt => ({ t: node('Tensor', { size }) });
  await run(executor, prompt(1000), ['t']); // 4 KB: kept
  assert.equal(executor.cache.stats().entries, 1);
  await run(executor, prompt(2000), ['t']); // 8 KB more: the older one goes
  assert.equal(executor.cache.stats().entries, 1);
  assert.ok(executor.cache.stats().bytes >= 8000 && executor.cache.stats().bytes <= 10_000);
  await run(executor, prompt(10_000), ['t']); // 40 KB alone: held during its run, dropped after
  assert.equal(executor.cache.stats().entries, 0);
});

test('classic mode keeps only what the last prompt used; none mode keeps nothing', async () => {
  const w = makeWorld();
  const classic = w.executor();
  await run(classic, sumPrompt(), ['4']);
  await run(classic, sumPrompt(), ['6']);
  w.calls.length = 0;
  await run(classic, sumPrompt(), ['4']);
  assert.deepEqual(w.calls, ['1', '2', '3', '4']);

  const none = w.executor({ mode: 'none' });
  await run(none, sumPrompt(), ['4']);
  w.calls.length = 0;
  const { result } = await run(none, sumPrompt(), ['4']);
  assert.deepEqual(w.calls, ['1', '2', '3', '4']);
  assert.deepEqual(result.cached, []);
  assert.equal(none.cache.stats().entries, 0);
});

test('node ids that are Object.prototype keys run, cache and report like any other id', async () => {
  // As a prompt arrives over HTTP: JSON.parse makes "__proto__" an own key (an object literal would not).
  const ids = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf'];
  const text = JSON.stringify({
    [ids[0]!]: node('Const', { value: 1 }),
    [ids[1]!]: node('Const', { value: 2 }),
    [ids[2]!]: node('Add', { a: [ids[0], 0], b: [ids[1], 0] }),
    [ids[3]!]: node('Show', { value: [ids[2], 0] }),
    [ids[4]!]: node('Switch', { useA: true, a: [ids[2], 0], b: [ids[1], 0] }),
    [ids[5]!]: node('Show', { value: [ids[4], 0] }),
  });
  const prompt = JSON.parse(text) as ApiPrompt;
  assert.deepEqual(Object.keys(prompt), ids, 'the prompt has all six ids as its own keys');
  const w = makeWorld();
  const executor = w.executor();
  const first = await run(executor, prompt, [ids[3]!, ids[5]!]);
  assert.equal(first.result.status, 'success', JSON.stringify(first.result.error));
  assert.deepEqual(new Set(w.calls), new Set(ids));
  assert.ok(Object.hasOwn(first.result.outputs, 'hasOwnProperty') && Object.hasOwn(first.result.outputs, 'isPrototypeOf'));
  assert.deepEqual(first.result.outputs['hasOwnProperty'], { values: [3] });
  assert.deepEqual(first.result.outputs['isPrototypeOf'], { values: [6] });
  assert.equal(Object.getPrototypeOf(first.result.outputs), Object.prototype, 'no id replaced the outputs object\'s prototype');

  w.calls.length = 0;
  const again = await run(executor, JSON.parse(text) as ApiPrompt, [ids[3]!, ids[5]!]);
  assert.equal(again.result.status, 'success');
  assert.deepEqual(w.calls, [], 'the second run is served from the cache');
  assert.deepEqual(new Set(again.result.cached), new Set(ids));
  assert.deepEqual(again.result.outputs['isPrototypeOf'], { values: [6] });
});
