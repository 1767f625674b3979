// Routing in a Redis deployment: a prompt goes to an idle worker that already has its model open, or that says
// it can load it (`--models`), when there is one; otherwise any worker takes it. Workers run in this process
// (RedisWorker over in-process executors) against a real redis-server; prompts name their model as loaders do
// (`ckpt_name`), on a node that only records which worker ran it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineNode, Executor, int, NodeRegistry, silentLogger, string, type ApiPrompt } from '@gategraph/core';
import { InProcessRunner } from '../src/prompt-runner.ts';
import { RedisKeys } from '../src/redis/keys.ts';
import { openRedis, waitReady } from '../src/redis/connection.ts';
import { RedisQueueService } from '../src/redis/redis-queue.ts';
import { RedisWorker } from '../src/redis/worker-process.ts';
import { until } from './helpers.ts';
import { RedisProcess } from './fixtures/redis-deployment.ts';

const base = mkdtempSync(join(tmpdir(), 'gg-redis-routing-'));
let redis: RedisProcess;
let service: RedisQueueService;
const keys = new RedisKeys('routing');
const workers: RedisWorker[] = [];
const connections: Array<{ disconnect(): void }> = [];

/** Which worker (by its registry) ran which prompt. */
const ranBy = new Map<string, string>();

function registryOf(worker: string): NodeRegistry {
  const registry = new NodeRegistry();
  registry.register(
    defineNode({
      id: 'UsesModel',
      category: 'test',
      outputNode: true,
      inputs: { ckpt_name: string(), tag: string(), ms: int({ default: 0 }) },
      outputs: [],
      async execute({ tag, ms }) {
        await new Promise((r) => setTimeout(r, ms));
        ranBy.set(tag, worker);
        return { ui: { tag: [tag] } };
      },
    }),
  );
  return registry;
}

async function startWorker(id: string, canLoad?: string[]): Promise<RedisWorker> {
  const redisClient = openRedis(redis.url, id, silentLogger);
  const subscriber = openRedis(redis.url, `${id}-control`, silentLogger);
  connections.push(redisClient, subscriber);
  await Promise.all([waitReady(redisClient, redis.url), waitReady(subscriber, redis.url)]);
  const paths = { output: join(base, id), input: join(base, id), temp: join(base, id), models: join(base, id) };
  const worker = new RedisWorker({
    redis: redisClient,
    subscriber,
    keys,
    runners: [new InProcessRunner(new Executor(registryOf(id), { paths, logger: silentLogger, cache: { mode: 'none' } }))],
    unloadModels: async () => ({ hooks: 0, failures: [] }),
    logger: silentLogger,
    lockMs: 5000,
    maxHistory: 1000,
    files: undefined,
    id,
    ...(canLoad ? { canLoad } : {}),
  });
  await worker.start();
  workers.push(worker);
  return worker;
}

let counter = 0;
async function run(model: string, ms = 0): Promise<string> {
  const tag = `p${++counter}`;
  const prompt: ApiPrompt = { n: { class_type: 'UsesModel', inputs: { ckpt_name: model, tag, ms } } };
  await service.enqueue({ promptId: tag, prompt, extraData: {}, outputs: ['n'] });
  await until(() => ranBy.has(tag), 15_000);
  return ranBy.get(tag)!;
}

before(async () => {
  redis = await RedisProcess.start(join(base, 'redis'));
  const client = openRedis(redis.url, 'api', silentLogger);
  connections.push(client);
  await waitReady(client, redis.url);
  service = new RedisQueueService({ redis: client, keys, maxHistory: 1000, lockSeconds: 5, logger: silentLogger });
  await service.start();
});

after(async () => {
  await Promise.allSettled(workers.map((w) => w.stop()));
  await service?.close();
  for (const c of connections) c.disconnect();
  await redis?.kill();
  rmSync(base, { recursive: true, force: true });
});

test('a prompt goes to the idle worker that has its model open', async () => {
  await startWorker('warm');
  assert.equal(await run('model-x.safetensors'), 'warm', 'the only worker runs it and keeps model-x open');
  await startWorker('cold');
  await until(async () => (await service.workers()).length === 2);
  for (let i = 0; i < 4; i++) assert.equal(await run('model-x.safetensors'), 'warm', `prompt ${i}: left to the worker with model-x open`);
  // A model neither has open: whichever is first.
  const first = await run('model-z.safetensors');
  assert.ok(first === 'warm' || first === 'cold');
  // While the warm worker is busy, the cold one does not wait for it.
  const busy = run('model-x.safetensors', 1500);
  await until(async () => (await service.running()).length === 1);
  assert.equal(await run('model-x.safetensors'), 'cold', 'the warm worker was busy');
  await busy;
});

test('a worker that says which models it can load leaves the others to workers that can', async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  await startWorker('only-y', ['model-y*.safetensors']);
  await startWorker('any');
  await until(async () => (await service.workers()).filter((w) => ['only-y', 'any'].includes(w.id)).length === 2);
  for (let i = 0; i < 3; i++) assert.equal(await run('model-q.safetensors'), 'any', 'only-y cannot load model-q');
  const info = (await service.workers()).find((w) => w.id === 'only-y');
  assert.deepEqual(info?.canLoad, ['model-y*.safetensors']);
  // With no able worker free, it still runs (advertising is a preference, not a refusal).
  const busy = run('model-q.safetensors', 2500);
  await until(async () => (await service.running()).length === 1);
  assert.equal(await run('model-q.safetensors'), 'only-y', 'taken after the routing wait, not starved');
  await busy;
});
