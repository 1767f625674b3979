/**
 * `gategraph worker --redis redis://host:port`: a worker process of a Redis deployment (worker-process.ts). It
 * loads the packs and finds the models as the server does (the same folder flags), takes prompts from the queue,
 * and stops gracefully on SIGINT/SIGTERM (the running prompt is interrupted and recorded; a second signal quits
 * at once, and the prompt is then recorded as lost when its lock lapses).
 */
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { cacheOptionsFromFlags, consoleLogger, findWorkspaceRoot, type HostPaths } from '@gategraph/core';
import { redisOptionsFromFlags, resolveConfig } from '../config.ts';
import { setUpExecution } from '../execution-setup.ts';
import { DEFAULT_LOCK_SECONDS, DEFAULT_REDIS_PREFIX } from './api-instance.ts';
import { openRedis, redactUrl, waitReady } from './connection.ts';
import { DEFAULT_FILE_TTL_SECONDS, DEFAULT_MAX_FILE_BYTES, RedisFileStore } from './file-store.ts';
import { RedisKeys } from './keys.ts';
import { RedisWorker } from './worker-process.ts';

const EXIT_USAGE = 64;

export const WORKER_USAGE = `Usage: gategraph worker --redis <url> [options]

Runs prompts of a Redis deployment (docs/scaling.md): takes them from the queue that \`pnpm serve --redis <url>\`
servers fill, runs them with this machine's packs and models, and sends their progress and results back.

Options:
  --redis <url>             the deployment's Redis, e.g. redis://10.0.0.5:6379 (env GATEGRAPH_REDIS)
  --redis-prefix <name>     the deployment's key prefix (default ${DEFAULT_REDIS_PREFIX})
  --workers <n>             prompts run at the same time (default 1; each has its own executor and cache)
  --models <names>          comma-separated models this worker can load (* wildcards), e.g.
                            "sd_xl_*.safetensors,tiny-sd": prompts for others are left to other workers
                            when one is free (default: any)
  --id <name>               this worker's name in /queue and /system_stats (default <host>:<pid>)
  --lock-timeout <seconds>  how long this worker may go unheard before its prompt is recorded as lost
                            (default ${DEFAULT_LOCK_SECONDS}; give the servers the same value)
  --shared-files            the servers see this machine's output and input folders: copy nothing
  --file-ttl <seconds>      how long outputs copied to Redis are kept (default ${DEFAULT_FILE_TTL_SECONDS})
  --output-directory <dir>, --input-directory <dir>, --temp-directory <dir>, --models-directory <dir>
  --extra-model-paths-config <file>, --custom-nodes <dir>, --pack <path>
                            as for pnpm serve
  --session-memory <size>   model weights the open sessions may hold (default 60 % of the RAM), as for pnpm serve
  --execution <where>       thread (default) or in-process
  --cache-classic | --cache-lru <n> | --cache-none | --cache-ram [gb]
                            this worker's output cache, as for pnpm serve
  -h, --help                show this help
`;

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv.flatMap((arg, i) => (arg === '--cache-ram' && (i + 1 >= argv.length || argv[i + 1]!.startsWith('-')) ? [arg, 'default'] : [arg])),
      strict: true,
      options: {
        redis: { type: 'string' },
        'redis-prefix': { type: 'string' },
        'shared-files': { type: 'boolean' },
        'file-ttl': { type: 'string' },
        'lock-timeout': { type: 'string' },
        workers: { type: 'string' },
        models: { type: 'string' },
        id: { type: 'string' },
        'output-directory': { type: 'string' },
        'input-directory': { type: 'string' },
        'temp-directory': { type: 'string' },
        'models-directory': { type: 'string' },
        'extra-model-paths-config': { type: 'string', multiple: true },
        'custom-nodes': { type: 'string' },
        pack: { type: 'string', multiple: true },
        execution: { type: 'string' },
        'max-history': { type: 'string' },
        'session-memory': { type: 'string' },
        'cache-classic': { type: 'boolean' },
        'cache-lru': { type: 'string' },
        'cache-none': { type: 'boolean' },
        'cache-ram': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${WORKER_USAGE}`);
    return EXIT_USAGE;
  }
  if (values.help) {
    console.log(WORKER_USAGE);
    return 0;
  }
  let redisOptions;
  let workers = 1;
  let execution: 'thread' | 'in-process' | undefined;
  let cache;
  try {
    redisOptions = redisOptionsFromFlags({ ...values, redis: values.redis ?? (process.env.GATEGRAPH_REDIS || undefined) });
    if (!redisOptions) throw new Error('--redis <url> is required: the Redis the deployment\'s servers use');
    if (values.workers !== undefined) {
      workers = Number(values.workers);
      if (!Number.isInteger(workers) || workers < 1) throw new Error(`--workers must be a positive whole number (got ${JSON.stringify(values.workers)})`);
    }
    if (values.execution !== undefined && values.execution !== 'thread' && values.execution !== 'in-process') {
      throw new Error(`--execution must be thread or in-process (got ${JSON.stringify(values.execution)})`);
    }
    execution = values.execution as typeof execution;
    const ram = values['cache-ram'];
    cache = cacheOptionsFromFlags({
      ...(values['cache-classic'] ? { classic: true } : {}),
      ...(values['cache-lru'] !== undefined ? { lru: values['cache-lru'] } : {}),
      ...(values['cache-none'] ? { none: true } : {}),
      ...(ram !== undefined ? { ram: ram === 'default' ? true : ram } : {}),
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${WORKER_USAGE}`);
    return EXIT_USAGE;
  }

  const logger = consoleLogger('info', 'worker');
  const root = findWorkspaceRoot();
  const paths: Partial<HostPaths> = {};
  if (values['output-directory']) paths.output = values['output-directory'];
  if (values['input-directory']) paths.input = values['input-directory'];
  if (values['temp-directory']) paths.temp = values['temp-directory'];
  if (values['models-directory']) paths.models = values['models-directory'];
  const config = resolveConfig(root, {
    paths,
    ...(values['max-history'] ? { maxHistory: Number(values['max-history']) } : {}),
    ...(values['extra-model-paths-config']?.length ? { extraModelPathsConfig: values['extra-model-paths-config'].map((p) => resolve(p)) } : {}),
  });
  if (values['session-memory'] !== undefined) {
    const size = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?$/i.test(values['session-memory'].trim());
    if (!size) {
      console.error(`--session-memory must be a size like 12GB (got ${JSON.stringify(values['session-memory'])})\n\n${WORKER_USAGE}`);
      return EXIT_USAGE;
    }
    process.env.GATEGRAPH_SESSION_MEMORY = values['session-memory'];
  }
  if (config.extraModelPathsConfig.length) process.env.GATEGRAPH_EXTRA_MODEL_PATHS = config.extraModelPathsConfig.join(':');

  const keys = new RedisKeys(redisOptions.prefix ?? DEFAULT_REDIS_PREFIX);
  const redis = openRedis(redisOptions.url, 'gategraph-worker', logger);
  const subscriber = openRedis(redisOptions.url, 'gategraph-worker-control', logger);
  let worker: RedisWorker;
  try {
    await Promise.all([waitReady(redis, redisOptions.url), waitReady(subscriber, redisOptions.url)]);
    const execution_ = await setUpExecution({
      root,
      paths: config.paths,
      logger,
      executors: workers,
      ...(values['custom-nodes'] ? { customNodesDir: values['custom-nodes'] } : {}),
      ...(values.pack?.length ? { extraPacks: values.pack.map((p) => resolve(p)) } : {}),
      ...(cache ? { cache } : {}),
      ...(execution ? { execution } : {}),
    });
    worker = new RedisWorker({
      redis,
      subscriber,
      keys,
      runners: Array.from({ length: workers }, (_, slot) => execution_.runner(slot)),
      unloadModels: execution_.unloadModels,
      logger,
      lockMs: (redisOptions.lockSeconds ?? DEFAULT_LOCK_SECONDS) * 1000,
      maxHistory: config.maxHistory,
      files: redisOptions.sharedFiles
        ? undefined
        : new RedisFileStore(redis, keys, config.paths, { ttlSeconds: redisOptions.fileTtlSeconds ?? DEFAULT_FILE_TTL_SECONDS, maxFileBytes: DEFAULT_MAX_FILE_BYTES }, logger),
      ...(values.models ? { canLoad: values.models.split(',').map((m) => m.trim()).filter(Boolean) } : {}),
      ...(values.id ? { id: values.id } : {}),
    });
    await worker.start();
    const stopThread = () => execution_.thread?.close();
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn(`${signal} again: quitting now; the running prompt is recorded as lost once its lock lapses`);
        process.exit(130);
      }
      stopping = true;
      logger.info(`${signal}: stopping (the running prompt is interrupted and recorded; ${signal} again to quit at once)`);
      void worker
        .stop()
        .then(stopThread)
        .then(() => Promise.allSettled([redis.quit(), subscriber.quit()]))
        .then(() => process.exit(0));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  } catch (error) {
    console.error(`Could not start the worker: ${(error as Error).message}`);
    redis.disconnect();
    subscriber.disconnect();
    return 1;
  }
  console.log(`gategraph worker ${worker.id} connected to ${redactUrl(redisOptions.url)}`);
  return 0;
}
