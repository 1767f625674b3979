/**
 * What running nodes off the server's event loop costs, and why a worker thread rather than a child process.
 *
 *   node --import tsx bench/execution-thread.ts [--prompts 100] [--rounds 3]
 *
 * 1. Through the server (real HTTP + websocket client on loopback, one server per mode, alternating rounds):
 *    per-prompt latency (POST /prompt until `executing {node: null}`) with nodes in-process vs in the execution
 *    thread, for a prompt of 3 trivial nodes (the hop's whole cost, nothing to hide it), a node sending 100
 *    progress events with a 64 KiB preview each (events crossing), and workflows/default.json on the embedded
 *    model (a real generation) when models/tiny-sd is there.
 * 2. The hop itself, worker thread vs forked child process (IPC with the `advanced` serialization, which keeps
 *    typed arrays): time to start and load the workspace packs, a message round trip, 1000 progress events, and
 *    100 events carrying a 64 KiB preview.
 *
 * Exits 1 when a prompt does not succeed. Figures and the reasoning are in bench/README.md.
 */
import { fork } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { fileURLToPath, pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { consoleLogger, findWorkspaceRoot, silentLogger, type ApiPrompt } from '../packages/core/src/index.ts';
import { startServer, type GategraphServer } from '../packages/server/src/index.ts';

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const PROMPTS = option('prompts', 100);
const ROUNDS = option('rounds', 3);
const root = findWorkspaceRoot(fileURLToPath(new URL('.', import.meta.url)));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

const PACK = `import { defineNode, definePack, int, socket } from '@gategraph/core';
export default definePack({
  name: 'bench-hop',
  nodes: [
    defineNode({ id: 'HopConst', inputs: { seed: int({ default: 0 }) }, outputs: [{ type: 'INT' }], execute: (i) => [i.seed] }),
    defineNode({ id: 'HopAdd', inputs: { a: socket('INT') }, outputs: [{ type: 'INT' }], execute: (i) => [i.a + 1] }),
    defineNode({ id: 'HopOut', outputNode: true, inputs: { a: socket('INT') }, outputs: [], execute: (i) => ({ ui: { value: [i.a] }, result: [] }) }),
    defineNode({
      id: 'HopProgress',
      outputNode: true,
      inputs: { steps: int({ default: 100 }), bytes: int({ default: 65536 }), seed: int({ default: 0 }) },
      outputs: [],
      execute(i, ctx) {
        for (let s = 1; s <= i.steps; s++) ctx.progress(s, i.steps, { format: 'JPEG', data: new Uint8Array(i.bytes).fill(s & 255) });
        return { ui: {}, result: [] };
      },
    }),
  ],
});
`;

const work = mkdtempSync(join(tmpdir(), 'gg-bench-thread-'));
const packFile = join(work, 'bench-hop.mjs');
writeFileSync(packFile, PACK);

type Mode = 'in-process' | 'thread';
async function serverFor(mode: Mode, run: number): Promise<GategraphServer> {
  const dir = join(work, `${mode}-${run}`);
  mkdirSync(dir, { recursive: true });
  return startServer({
    root,
    host: '127.0.0.1',
    port: 0,
    env: {},
    logger: process.env.BENCH_LOG ? consoleLogger('info', 'bench') : silentLogger,
    customNodesDir: false,
    extraPacks: [packFile],
    execution: mode,
    fsync: false,
    paths: { output: join(dir, 'output'), input: join(dir, 'input'), temp: join(dir, 'temp'), models: join(root, 'models') },
    dataDir: join(dir, 'data'),
    editorDir: join(dir, 'no-editor'),
  });
}

/** A websocket client that resolves a prompt's promise on its `executing {node: null}`. */
async function connect(url: string) {
  const clientId = randomUUID();
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws?clientId=${clientId}`);
  const done = new Map<string, (ok: boolean) => void>();
  const failed = new Set<string>();
  ws.on('message', (data, binary) => {
    if (binary) return;
    const m = JSON.parse(String(data)) as { type: string; data: Record<string, any> };
    if (m.type === 'execution_error' || m.type === 'execution_interrupted') failed.add(m.data.prompt_id);
    if (m.type === 'executing' && m.data.node === null) done.get(m.data.prompt_id)?.(!failed.has(m.data.prompt_id));
  });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  return {
    async run(prompt: ApiPrompt): Promise<number> {
      const promptId = randomUUID();
      const t = performance.now();
      const finished = new Promise<boolean>((resolve) => done.set(promptId, resolve));
      const response = await fetch(`${url}/prompt`, { method: 'POST', body: JSON.stringify({ prompt, client_id: clientId, prompt_id: promptId }) });
      if (response.status !== 200) throw new Error(`POST /prompt: ${response.status} ${await response.text()}`);
      if (!(await finished)) throw new Error(`prompt ${promptId} did not succeed`);
      return performance.now() - t;
    },
    close: () => ws.close(),
  };
}

const trivial = (seed: number): ApiPrompt => ({
  '1': { class_type: 'HopConst', inputs: { seed } },
  '2': { class_type: 'HopAdd', inputs: { a: ['1', 0] } },
  '3': { class_type: 'HopOut', inputs: { a: ['2', 0] } },
});
const progress = (seed: number): ApiPrompt => ({ '1': { class_type: 'HopProgress', inputs: { steps: 100, bytes: 65536, seed } } });
const defaultWorkflowPath = join(root, 'workflows', 'default.json');
const hasModel = existsSync(join(root, 'models', 'tiny-sd', 'model_index.json'));
const generation = (seed: number): ApiPrompt => {
  const prompt = JSON.parse(readFileSync(defaultWorkflowPath, 'utf8')) as ApiPrompt;
  for (const node of Object.values(prompt)) if (node.class_type === 'KSampler') node.inputs.seed = seed;
  return prompt;
};

const workloads: Array<{ name: string; prompt: (seed: number) => ApiPrompt; count: number }> = [
  { name: '3 trivial nodes', prompt: trivial, count: PROMPTS },
  { name: '100 progress events + 64 KiB previews', prompt: progress, count: Math.max(5, Math.round(PROMPTS / 10)) },
  ...(hasModel ? [{ name: 'default workflow, tiny-sd, 25 steps', prompt: generation, count: Math.max(3, Math.round(PROMPTS / 20)) }] : []),
];

// Part 1: through the server.
const latencies = new Map<string, number[]>();
let seed = 1;
for (let round = 0; round < ROUNDS; round++) {
  for (const mode of (round % 2 ? ['thread', 'in-process'] : ['in-process', 'thread']) as Mode[]) {
    const server = await serverFor(mode, round);
    const client = await connect(server.url);
    for (const w of workloads) {
      await client.run(w.prompt(seed++)); // warm-up: models load, code is compiled
      const key = `${w.name}|${mode}`;
      const list = latencies.get(key) ?? [];
      for (let i = 0; i < w.count; i++) list.push(await client.run(w.prompt(seed++)));
      latencies.set(key, list);
    }
    client.close();
    await server.close();
  }
}
console.log(`\nPer-prompt latency through the server (POST /prompt -> executing null), ${ROUNDS} alternating rounds:\n`);
console.log('| prompt | in-process median (p90) | thread median (p90) | thread - in-process | prompts/s in-process / thread |');
console.log('|---|---|---|---|---|');
for (const w of workloads) {
  const a = latencies.get(`${w.name}|in-process`)!;
  const b = latencies.get(`${w.name}|thread`)!;
  const rate = (xs: number[]) => (1000 / (xs.reduce((s, x) => s + x, 0) / xs.length)).toFixed(1);
  console.log(
    `| ${w.name} | ${median(a).toFixed(2)} ms (${pct(a, 0.9).toFixed(2)}) | ${median(b).toFixed(2)} ms (${pct(b, 0.9).toFixed(2)}) | ` +
      `${(median(b) - median(a)).toFixed(2)} ms | ${rate(a)} / ${rate(b)} |`,
  );
}

// Part 2: the hop, thread vs process.
const peer = fileURLToPath(new URL('./fixtures/execution-hop-peer.ts', import.meta.url));
interface Peer {
  send(m: unknown): void;
  on(l: (m: any) => void): void;
  off(l: (m: any) => void): void;
  stop(): Promise<void>;
}
async function startPeer(kind: 'thread' | 'process'): Promise<{ peer: Peer; readyMs: number }> {
  const t = performance.now();
  let p: Peer;
  if (kind === 'thread') {
    // A worker's entry gets no loader hooks from --import (Node 20): register tsx in it first, as the server's
    // executor-thread-boot.mjs does.
    const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(pathToFileURL(peer).href)}); })`;
    const w = new Worker(boot, { eval: true });
    p = { send: (m) => w.postMessage(m), on: (l) => w.on('message', l), off: (l) => w.off('message', l), stop: async () => void (await w.terminate()) };
  } else {
    const c = fork(peer, [], { serialization: 'advanced', stdio: 'inherit' });
    p = {
      send: (m) => c.send(m as any),
      on: (l) => c.on('message', l),
      off: (l) => c.off('message', l),
      stop: () => new Promise((resolve) => c.once('exit', () => resolve()).send({ type: 'exit' })),
    };
  }
  await new Promise<void>((resolve) => {
    const l = (m: { type: string }) => {
      if (m.type === 'ready') {
        p.off(l);
        resolve();
      }
    };
    p.on(l);
  });
  return { peer: p, readyMs: performance.now() - t };
}
const exchange = (p: Peer, message: unknown, until: string) =>
  new Promise<number>((resolve) => {
    const t = performance.now();
    const l = (m: { type: string }) => {
      if (m.type === until) {
        p.off(l);
        resolve(performance.now() - t);
      }
    };
    p.on(l);
    p.send(message);
  });

const hop: Record<string, Record<string, number[]>> = { thread: {}, process: {} };
const record = (kind: string, what: string, value: number) => (hop[kind]![what] ??= []).push(value);
for (let round = 0; round < ROUNDS; round++) {
  for (const kind of (round % 2 ? ['process', 'thread'] : ['thread', 'process']) as Array<'thread' | 'process'>) {
    const { peer: p, readyMs } = await startPeer(kind);
    record(kind, 'start + load packs (ms)', readyMs);
    for (let i = 0; i < 100; i++) await exchange(p, { type: 'ping' }, 'pong'); // warm-up
    let total = 0;
    for (let i = 0; i < 1000; i++) total += await exchange(p, { type: 'ping' }, 'pong');
    record(kind, 'round trip (µs)', (total / 1000) * 1000);
    record(kind, '1000 progress events (ms)', await exchange(p, { type: 'burst', n: 1000, bytes: 0 }, 'burst_done'));
    record(kind, '100 events with a 64 KiB preview (ms)', await exchange(p, { type: 'burst', n: 100, bytes: 65536 }, 'burst_done'));
    await p.stop();
  }
}
console.log(`\nThe hop itself, worker thread vs child process (IPC, advanced serialization), median of ${ROUNDS}:\n`);
console.log('| measure | worker thread | child process | process / thread |');
console.log('|---|---|---|---|');
for (const what of Object.keys(hop.thread!)) {
  const a = median(hop.thread![what]!);
  const b = median(hop.process![what]!);
  console.log(`| ${what} | ${a.toFixed(what.includes('µs') ? 0 : 1)} | ${b.toFixed(what.includes('µs') ? 0 : 1)} | ${(b / a).toFixed(1)}x |`);
}
rmSync(work, { recursive: true, force: true });
process.exit(0);
