/**
 * Validation time against prompt size: the server validates every POST /prompt on its event loop, so a big
 * prompt must cost time in proportion to its size. Three shapes, each at 1k, 10k and 100k nodes:
 *   chain   a valid chain of nodes ending in one output (a long graph);
 *   broken  a chain whose first node has a bad value, feeding as many output nodes as the chain is long
 *           (every output breaks: the worst case of ComfyUI's dependent_outputs report);
 *   cycle   one cycle through every node (each node gets a dependency_cycle error).
 * Prints the median ms of a few runs, µs per node, and the per-node cost at the largest size relative to
 * the smallest (about 1 = linear), plus the 24k-node "broken" prompt that took 41 s before. Exit 1 if a
 * result is not what validation must say (a chain rejected, a broken or cyclic prompt accepted).
 *
 *   node --import tsx bench/validation.ts [repetitions=3]
 */
import { performance } from 'node:perf_hooks';
import { defineNode, int, NodeRegistry, socket, validatePrompt, type ApiPrompt } from '../packages/core/src/index.ts';

const REPETITIONS = Number(process.argv[2] ?? 3);
const notRun = (): never => {
  throw new Error('validation only');
};
const registry = new NodeRegistry();
registry.register(defineNode({ id: 'Source', inputs: { value: int({ default: 1, min: 0, max: 9 }) }, outputs: [{ type: 'INT' }], execute: notRun }));
registry.register(defineNode({ id: 'Step', inputs: { a: socket('INT'), k: int({ default: 1, min: 0, max: 100 }) }, outputs: [{ type: 'INT' }], execute: notRun }));
registry.register(defineNode({ id: 'Sink', outputNode: true, inputs: { a: socket('INT') }, outputs: [], execute: notRun }));

type Shape = 'chain' | 'broken' | 'cycle';

function build(shape: Shape, nodes: number): ApiPrompt {
  const prompt: ApiPrompt = {};
  if (shape === 'cycle') {
    for (let i = 0; i < nodes - 1; i++) prompt[String(i)] = { class_type: 'Step', inputs: { a: [String((i + 1) % (nodes - 1)), 0], k: 1 } };
    prompt.out = { class_type: 'Sink', inputs: { a: ['0', 0] } };
    return prompt;
  }
  const chain = shape === 'chain' ? nodes - 1 : nodes / 2;
  prompt['0'] = { class_type: 'Source', inputs: { value: shape === 'broken' ? 99 : 1 } };
  for (let i = 1; i < chain; i++) prompt[String(i)] = { class_type: 'Step', inputs: { a: [String(i - 1), 0], k: i % 100 } };
  const sinks = shape === 'chain' ? 1 : nodes - chain;
  for (let i = 0; i < sinks; i++) prompt[`s${i}`] = { class_type: 'Sink', inputs: { a: [String(chain - 1), 0] } };
  return prompt;
}

async function measure(shape: Shape, nodes: number): Promise<number> {
  const prompt = build(shape, nodes);
  const times: number[] = [];
  for (let r = 0; r < REPETITIONS; r++) {
    const started = performance.now();
    const result = await validatePrompt(prompt, registry);
    times.push(performance.now() - started);
    if (result.ok !== (shape === 'chain')) {
      console.error(`${shape} ${nodes}: validation said ok=${result.ok}`);
      process.exit(1);
    }
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

const sizes = [1_000, 10_000, 100_000];
console.log(`validation time by prompt size (median of ${REPETITIONS})`);
console.log(['shape', ...sizes.map((n) => `${n / 1000}k nodes`), 'µs/node 1k', 'µs/node 100k', 'per-node ratio'].join('\t'));
for (const shape of ['chain', 'broken', 'cycle'] as const) {
  const ms: number[] = [];
  for (const n of sizes) ms.push(await measure(shape, n));
  const perNode = ms.map((t, i) => (t * 1000) / sizes[i]!);
  console.log([shape, ...ms.map((t) => `${t.toFixed(0)} ms`), perNode[0]!.toFixed(1), perNode[2]!.toFixed(1), (perNode[2]! / perNode[0]!).toFixed(2)].join('\t'));
}
const attack = await measure('broken', 24_000);
console.log(`24k-node broken prompt (the attack run's size): ${attack.toFixed(0)} ms`);
