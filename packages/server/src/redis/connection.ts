/**
 * Redis connections as BullMQ needs them (commands wait through a reconnect instead of failing:
 * maxRetriesPerRequest null), retrying forever with a capped delay: a process that loses Redis keeps trying and
 * resumes when it is back. Each failure is logged once per outage, not once per retry.
 */
import { Redis } from 'ioredis';
import type { Logger } from '@gategraph/core';

export function openRedis(url: string, name: string, logger: Logger): Redis {
  let down = false;
  const client = new Redis(url, {
    maxRetriesPerRequest: null,
    connectionName: name,
    retryStrategy: (times) => Math.min(100 * times, 2000),
    lazyConnect: false,
  });
  client.on('error', (error: Error) => {
    if (down) return;
    down = true;
    logger.warn(`Redis (${name}) at ${redactUrl(url)}: ${error.message}; retrying until it is back`);
  });
  client.on('ready', () => {
    if (down) logger.info(`Redis (${name}) at ${redactUrl(url)} is back`);
    down = false;
  });
  return client;
}

/** The URL without its password, for logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}

/** Waits until the client is connected, or says why not (a wrong URL must stop the start, not hang it). */
export async function waitReady(client: Redis, url: string, timeoutMs = 10_000): Promise<void> {
  if (client.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis at ${redactUrl(url)} did not answer within ${timeoutMs / 1000} s: is redis-server running there?`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      client.off('ready', onReady);
    };
    client.on('ready', onReady);
  });
}
