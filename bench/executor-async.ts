/**
 * Concurrent nodes: three independent waits of N seconds (default 3) in one prompt, run once with the waits
 * declared `concurrent` (ComfyUI's async nodes: they overlap) and once as ordinary nodes (one at a time), side
 * by side in one process. Prints both wall times and their ratio; fails if the concurrent run did not overlap.
 *
 *   node --import tsx bench/executor-async.ts [seconds=3]
 */
import { performance } from 'node:perf_hooks';
import { defineNode, Executor, int, NodeRegistry, silentLogger, socket, type ApiPrompt } from '../packages/core/src/index.ts';

const SECONDS = Number(process.argv[2] ?? 3);
const registry = new NodeRegistry();
const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
for (const concurrent of [true, false]) {
  registry.register(
    defineNode({
      id: concurrent ? 'ConcurrentWait' : 'OrdinaryWait',
      concurrent,
      inputs: { tag: int(), seconds: int() },
      outputs: [{ type: 'INT' }],
      execute: async ({ tag, seconds }) => (await wait(seconds * 1000), [tag]),
    }),
  );
}
registry.register(defineNode({ id: 'Collect', inputs: { value: socket('INT') }, outputs: [], outputNode: true, execute: ({ value }) => ({ ui: { value: [value] } }) }));

async function wallSeconds(type: string): Promise<number> {
  const prompt: ApiPrompt = {};
  for (const tag of [1, 2, 3]) {
    prompt[`w${tag}`] = { class_type: type, inputs: { tag, seconds: SECONDS } };
    prompt[`o${tag}`] = { class_type: 'Collect', inputs: { value: [`w${tag}`, 0] } };
  }
  const executor = new Executor(registry, { paths: { output: '/tmp', input: '/tmp', temp: '/tmp', models: '/tmp' }, logger: silentLogger });
  const start = performance.now();
  const result = await executor.run(prompt, { promptId: type, outputs: ['o1', 'o2', 'o3'] });
  if (result.status !== 'success') throw new Error(`${type}: ${result.status} ${result.error?.message ?? ''}`);
  return (performance.now() - start) / 1000;
}

const concurrent = await wallSeconds('ConcurrentWait');
const ordinary = await wallSeconds('OrdinaryWait');
console.log(`three ${SECONDS} s waits in one prompt`);
console.log(`concurrent nodes   ${concurrent.toFixed(2).padStart(7)} s`);
console.log(`ordinary nodes     ${ordinary.toFixed(2).padStart(7)} s`);
console.log(`ordinary / concurrent ${(ordinary / concurrent).toFixed(2)}x`);
if (concurrent > SECONDS * 2) {
  console.error('FAIL: the concurrent waits did not overlap');
  process.exit(1);
}
