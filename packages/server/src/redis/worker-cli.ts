/**
 * `gategraph worker --redis redis://host:port`: a worker process of a Redis deployment (worker-process.ts). It
 * loads the packs and finds the models as the server does (the same folder flags), takes prompts from the queue,
 * and stops gracefully on SIGINT/SIGTERM (the running prompt is interrupted and recorded; a second signal quits
 * at once, and the prompt is then recorded as lost when its lock lapses).
 */
import { parseArgs } from 'node:util';
import { delimiter } from 'node:path';
import { consoleLogger, findWorkspaceRoot } from '@gategraph/core';
import { resolveConfig, SHARED_FLAG_OPTIONS, sharedFlagSettings, withCacheRamDefault, type CliOptions } from '../config.ts';
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
  let options: CliOptions;
  let values: { models?: string | undefined; id?: string | undefined };
  try {
    const parsed = parseArgs({
      args: withCacheRamDefault(argv),
      strict: true,
      options: { ...SHARED_FLAG_OPTIONS, models: { type: 'string' }, id: { type: 'string' } },
    });
    values = parsed.values;
    if (parsed.values.help) {
      console.log(WORKER_USAGE);
      return 0;
    }
    options = sharedFlagSettings({ ...parsed.values, redis: parsed.values.redis ?? (process.env.GATEGRAPH_REDIS || undefined) });
    if (!options.redis) throw new Error('--redis <url> is required: the Redis the deployment\'s servers use');
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${WORKER_USAGE}`);
    return EXIT_USAGE;
  }
  const redisOptions = options.redis;
  const workers = options.workers ?? 1;

  const logger = consoleLogger('info', 'worker');
  const root = findWorkspaceRoot();
  const config = resolveConfig(root, {
    ...(options.paths ? { paths: options.paths } : {}),
    ...(options.maxHistory ? { maxHistory: options.maxHistory } : {}),
    ...(options.extraModelPathsConfig ? { extraModelPathsConfig: options.extraModelPathsConfig } : {}),
  });
  if (config.extraModelPathsConfig.length) process.env.GATEGRAPH_EXTRA_MODEL_PATHS = config.extraModelPathsConfig.join(delimiter);
  if (options.sessionMemoryBytes !== undefined) process.env.GATEGRAPH_SESSION_MEMORY = String(options.sessionMemoryBytes);

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
      ...(options.customNodesDir ? { customNodesDir: options.customNodesDir } : {}),
      ...(options.extraPacks ? { extraPacks: options.extraPacks } : {}),
      ...(options.cache ? { cache: options.cache } : {}),
      ...(options.execution ? { execution: options.execution } : {}),
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
