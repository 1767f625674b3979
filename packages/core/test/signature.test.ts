import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalJson, computeSignatures, defineNode, int, NodeRegistry, socket, string, type ApiPrompt } from '../src/index.ts';

let fingerprintCalls = 0;
const registry = new NodeRegistry();
registry.register(defineNode({ id: 'Num', inputs: { v: int(), label: string({ optional: true }) }, outputs: [{ type: 'INT' }], execute: ({ v }) => [v] }));
registry.register(defineNode({ id: 'Inc', inputs: { a: socket('INT') }, outputs: [{ type: 'INT' }], execute: ({ a }) => [a + 1] }));
registry.register(
  defineNode({
    id: 'Clock',
    inputs: {},
    outputs: [{ type: 'INT' }],
    fingerprint: () => {
      fingerprintCalls++;
      return NaN;
    },
    execute: () => [Date.now()],
  }),
);
registry.register(
  defineNode({
    id: 'Broken',
    inputs: {},
    outputs: [{ type: 'INT' }],
    fingerprint: () => {
      throw new Error('cannot stat the file');
    },
    execute: () => [0],
  }),
);
registry.register(
  defineNode({ id: 'Tagged', inputs: { v: int() }, hidden: { id: 'UNIQUE_ID' }, outputs: [{ type: 'INT' }], execute: ({ v }) => [v] }),
);

test('canonicalJson ignores key order and keeps distinct values distinct', () => {
  assert.equal(canonicalJson({ a: 1, b: { d: [1, 2], c: 'x' } }), canonicalJson({ b: { c: 'x', d: [1, 2] }, a: 1 }));
  assert.notEqual(canonicalJson(NaN), canonicalJson('NaN'));
  assert.notEqual(canonicalJson(new Float32Array([1])), canonicalJson(new Float32Array([2])));
  assert.notEqual(canonicalJson(new Map([['a', 1]])), canonicalJson({}));
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.equal(canonicalJson(cyclic), '{"self":{"$cycle":true}}');
});

test('signatures follow content, not node ids', async () => {
  const a: ApiPrompt = { '1': { class_type: 'Num', inputs: { v: 3 } }, '2': { class_type: 'Inc', inputs: { a: ['1', 0] } } };
  const b: ApiPrompt = { x: { class_type: 'Num', inputs: { v: 3 } }, y: { class_type: 'Inc', inputs: { a: ['x', 0] } } };
  const c: ApiPrompt = { '1': { class_type: 'Num', inputs: { v: 4 } }, '2': { class_type: 'Inc', inputs: { a: ['1', 0] } } };
  const sa = await computeSignatures(a, registry, ['2']);
  const sb = await computeSignatures(b, registry, ['y']);
  const sc = await computeSignatures(c, registry, ['2']);
  assert.equal(sa.get('2'), sb.get('y'));
  assert.notEqual(sa.get('2'), sc.get('2'), 'an upstream constant changes downstream signatures');
  assert.match(sa.get('2')!, /^[0-9a-f]{32}$/);
  // An input the definition does not declare neither changes the signature nor is followed.
  const stray: ApiPrompt = { ...a, '1': { class_type: 'Num', inputs: { v: 3, junk: ['nowhere', 0] } } };
  assert.equal((await computeSignatures(stray, registry, ['2'])).get('2'), sa.get('2'));
});

test('UNIQUE_ID puts the node id in the signature; a NaN fingerprint makes it unique per run and node', async () => {
  const tagged = await computeSignatures(
    { p: { class_type: 'Tagged', inputs: { v: 1 } }, q: { class_type: 'Tagged', inputs: { v: 1 } } },
    registry,
    ['p', 'q'],
  );
  assert.notEqual(tagged.get('p'), tagged.get('q'));

  const clocks: ApiPrompt = {
    c1: { class_type: 'Clock', inputs: {} },
    c2: { class_type: 'Clock', inputs: {} },
    i: { class_type: 'Inc', inputs: { a: ['c1', 0] } },
  };
  fingerprintCalls = 0;
  const first = await computeSignatures(clocks, registry, ['i', 'c2', 'c1'], { runNonce: 'run-1' });
  assert.equal(fingerprintCalls, 2, 'each fingerprint runs once per computation');
  const same = await computeSignatures(clocks, registry, ['i', 'c2'], { runNonce: 'run-1' });
  const next = await computeSignatures(clocks, registry, ['i', 'c2'], { runNonce: 'run-2' });
  assert.notEqual(first.get('c1'), first.get('c2'));
  assert.equal(first.get('i'), same.get('i'));
  assert.notEqual(first.get('i'), next.get('i'));
});

test('a fingerprint that throws is logged and makes the node run, as a NaN one', async () => {
  const warnings: string[] = [];
  const logger = { debug() {}, info() {}, error() {}, warn: (m: string) => warnings.push(m), child: () => logger };
  const prompt: ApiPrompt = { b: { class_type: 'Broken', inputs: {} } };
  const one = await computeSignatures(prompt, registry, ['b'], { runNonce: '1', logger });
  const two = await computeSignatures(prompt, registry, ['b'], { runNonce: '2', logger });
  assert.notEqual(one.get('b'), two.get('b'));
  assert.match(warnings[0]!, /fingerprint\(\) of node b \(Broken\) failed, so the node will run: cannot stat the file/);
});
