/**
 * Executor overhead: a 1,000-node graph of cheap adders, run once from scratch and once fully cached.
 * Prints total ms and µs per node (median of several repetitions, each with a fresh executor) and fails
 * (exit code 1) if the cached re-run called any node's execute or the first run skipped one.
 *
 *   node --import tsx bench/executor.ts [nodes] [repetitions]
 */
import { performance } from 'node:perf_hooks';
import { defineNode, Executor, int, NodeRegistry, silentLogger, socket, type ApiPrompt } from '../packages/core/src/index.ts';

const NODES = Number(process.argv[2] ?? 1000);
const REPETITIONS = Number(process.argv[3] ?? 7);
const CONSTANTS = 10;
const OUTPUTS = 4;
const MODULUS = 1_000_003;

let executeCalls = 0;
const registry = new NodeRegistry();
registry.register(
  defineNode({
    id: 'BenchConst',
    inputs: { value: int() },
    outputs: [{ type: 'INT' }],
    execute: ({ value }) => {
      executeCalls++;
      return [value];
    },
  }),
);
registry.register(
  defineNode({
    id: 'BenchAdd',
    inputs: { a: socket('INT'), b: socket('INT', { optional: true }), k: int() },
    outputs: [{ type: 'INT' }],
    execute: ({ a, b, k }) => {
      executeCalls++;
      return [(a + (b ?? 0) + k) % MODULUS];
    },
  }),
);
registry.register(
  defineNode({
    id: 'BenchOut',
    inputs: { value: socket('INT') },
    outputs: [],
    outputNode: true,
    execute: ({ value }) => {
      executeCalls++;
      return { ui: { value: [value] } };
    },
  }),
);

/**
 * A DAG where every node is needed: each adder links to the previous node (so the last one depends on all)
 * and, every other node, to a second earlier node picked by a fixed-seed generator; the first adders take
 * the constants as their second input, so all of them are used.
 */
function buildPrompt(size: number): { prompt: ApiPrompt; outputs: string[] } {
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const prompt: ApiPrompt = {};
  const adders = size - CONSTANTS - OUTPUTS;
  for (let i = 0; i < CONSTANTS; i++) prompt[String(i)] = { class_type: 'BenchConst', inputs: { value: i + 1 } };
  for (let i = CONSTANTS; i < CONSTANTS + adders; i++) {
    const inputs: Record<string, unknown> = { a: [String(i - 1), 0], k: i };
    if (i < 2 * CONSTANTS) inputs.b = [String(i - CONSTANTS), 0]; // every constant is used
    else if (i % 2 === 0) inputs.b = [String(Math.floor(random() * (i - 1))), 0];
    prompt[String(i)] = { class_type: 'BenchAdd', inputs };
  }
  const outputs: string[] = [];
  for (let j = 0; j < OUTPUTS; j++) {
    const id = String(CONSTANTS + adders + j);
    prompt[id] = { class_type: 'BenchOut', inputs: { value: [String(CONSTANTS + adders - 1 - j), 0] } };
    outputs.push(id);
  }
  return { prompt, outputs };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<void> {
  const { prompt, outputs } = buildPrompt(NODES);
  const paths = { output: '/tmp', input: '/tmp', temp: '/tmp', models: '/tmp' };
  const first: number[] = [];
  const cached: number[] = [];
  const failures: string[] = [];

  // One untimed round warms up the JIT so the first repetition is not an outlier.
  for (let rep = -1; rep < REPETITIONS; rep++) {
    const executor = new Executor(registry, { paths, logger: silentLogger });
    executeCalls = 0;
    let start = performance.now();
    const run1 = await executor.run(prompt, { promptId: `first-${rep}`, outputs });
    const firstMs = performance.now() - start;
    if (run1.status !== 'success') failures.push(`first run ${rep}: ${run1.status} ${run1.error?.message ?? ''}`);
    if (executeCalls !== NODES) failures.push(`first run ${rep}: ${executeCalls} of ${NODES} nodes executed`);

    executeCalls = 0;
    start = performance.now();
    const run2 = await executor.run(prompt, { promptId: `cached-${rep}`, outputs });
    const cachedMs = performance.now() - start;
    if (run2.status !== 'success') failures.push(`cached run ${rep}: ${run2.status}`);
    if (executeCalls !== 0) failures.push(`cached run ${rep}: ${executeCalls} node(s) executed, expected none`);
    if (Object.keys(run2.outputs).length !== OUTPUTS) failures.push(`cached run ${rep}: UI outputs of cached output nodes missing`);

    if (rep >= 0) {
      first.push(firstMs);
      cached.push(cachedMs);
    }
  }

  const row = (label: string, samples: number[]) => {
    const ms = median(samples);
    return `${label.padEnd(16)} ${ms.toFixed(2).padStart(9)} ms ${((ms * 1000) / NODES).toFixed(1).padStart(9)} µs/node`;
  };
  console.log(`executor: ${NODES} nodes (${CONSTANTS} constants, ${NODES - CONSTANTS - OUTPUTS} adders, ${OUTPUTS} outputs), median of ${REPETITIONS}`);
  console.log(row('first run', first));
  console.log(row('cached re-run', cached));
  console.log(`cached / first   ${(median(cached) / median(first)).toFixed(3)}`);
  if (failures.length) {
    console.error(`FAIL:\n  ${failures.join('\n  ')}`);
    process.exit(1);
  }
}

await main();
