/**
 * An API instance of a Redis deployment (`serve --redis redis://...`): the queue service over Redis, the workers'
 * messages relayed to this instance's websocket clients (each message goes to the sockets of its client id here;
 * the instance a client is not connected to drops it), the status broadcast when the queue changes anywhere, and
 * the file store that brings any worker's outputs to `/view` and uploads to the workers.
 */
import type { HostPaths, Logger } from '@gategraph/core';
import type { MessageSink } from '../prompt-execution.ts';
import { openRedis, waitReady } from './connection.ts';
import { DEFAULT_FILE_TTL_SECONDS, DEFAULT_MAX_FILE_BYTES, RedisFileStore } from './file-store.ts';
import { RedisKeys } from './keys.ts';
import { deliver, subscribe, type EventMessage } from './message-bus.ts';
import { RedisQueueService } from './redis-queue.ts';

export interface RedisDeploymentOptions {
  /** redis://[user:password@]host:port[/db] */
  url: string;
  /** Key prefix (keys.ts); default 'gategraph'. */
  prefix?: string;
  /** The workers' lock time, seconds (default 30). */
  lockSeconds?: number;
  /** Every process sees the same output and input folders: no file is copied through Redis. */
  sharedFiles?: boolean;
  /** Seconds copied files are kept (default 7 days). */
  fileTtlSeconds?: number;
  maxFileBytes?: number;
}

export const DEFAULT_REDIS_PREFIX = 'gategraph';
export const DEFAULT_LOCK_SECONDS = 30;

export interface RedisApi {
  service: RedisQueueService;
  files: RedisFileStore | undefined;
  close(): Promise<void>;
}

export async function startRedisApi(options: RedisDeploymentOptions, context: { paths: HostPaths; maxHistory: number; hub: MessageSink; logger: Logger }): Promise<RedisApi> {
  const { logger } = context;
  const keys = new RedisKeys(options.prefix ?? DEFAULT_REDIS_PREFIX);
  const redis = openRedis(options.url, 'gategraph-api', logger);
  const subscriber = openRedis(options.url, 'gategraph-api-events', logger);
  try {
    await Promise.all([waitReady(redis, options.url), waitReady(subscriber, options.url)]);
  } catch (error) {
    redis.disconnect();
    subscriber.disconnect();
    throw error;
  }
  const service = new RedisQueueService({ redis, keys, maxHistory: context.maxHistory, lockSeconds: options.lockSeconds ?? DEFAULT_LOCK_SECONDS, logger });
  const files = options.sharedFiles
    ? undefined
    : new RedisFileStore(redis, keys, context.paths, { ttlSeconds: options.fileTtlSeconds ?? DEFAULT_FILE_TTL_SECONDS, maxFileBytes: options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES }, logger);
  await subscribe(subscriber, {
    [keys.events]: (message) => deliver(message as EventMessage, context.hub),
    [keys.changed]: () => service.notifyChanged(),
    [keys.uploaded]: (message) => {
      const { subfolder, filename } = message as { subfolder?: unknown; filename?: unknown };
      if (files && typeof filename === 'string') {
        files.materialize('input', typeof subfolder === 'string' ? subfolder : '', filename).catch((error: Error) => logger.warn(`upload ${filename} not copied here: ${error.message}`));
      }
    },
  });
  await service.start();
  if (files) {
    const written = await files.materializeAllInputs();
    if (written) logger.info(`${written} upload(s) of the deployment are in this instance's input folder`);
  }
  return {
    service,
    files,
    async close() {
      await service.close();
      subscriber.disconnect();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
