/**
 * The execution thread: loads the same packs as the server (from their paths: node objects cannot cross a
 * thread boundary), holds the executors, their output caches and whatever models the packs keep open, and runs
 * prompts the server sends. Its event loop may block in a node for as long as the node likes: the server's
 * stays free. Started by executor-thread.ts through executor-thread-boot.mjs.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { format } from 'node:util';
import { createHost, Executor, silentLogger, type Logger } from '@gategraph/core';
import type { FromThread, ThreadInit, ToThread } from './executor-thread-protocol.ts';

const port = parentPort;
if (!port) throw new Error('executor-thread-entry.ts runs only as a worker thread (see executor-thread.ts)');
const init = workerData as ThreadInit;
const flags = new Int32Array(init.interruptFlags);

function post(message: FromThread): void {
  try {
    port!.postMessage(message);
  } catch (error) {
    // Something in the message cannot be cloned (a node put a function or a class instance in its UI output,
    // say): send its JSON form rather than lose it.
    if ((error as Error).name !== 'DataCloneError') throw error;
    port!.postMessage(JSON.parse(JSON.stringify(message)) as FromThread);
  }
}

/** Log lines go to the server's logger, scopes and all. */
function threadLogger(scopes: string[]): Logger {
  const emit = (level: 'debug' | 'info' | 'warn' | 'error') => (message: string, ...details: unknown[]) => {
    try {
      port!.postMessage({ type: 'log', level, scopes, message, details } satisfies FromThread);
    } catch {
      port!.postMessage({ type: 'log', level, scopes, message: format(message, ...details), details: [] } satisfies FromThread);
    }
  };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error'), child: (scope) => threadLogger([...scopes, scope]) };
}

const logger = threadLogger([]);
// The server loaded (and reported) the same packs already: only what differs here is worth saying, in `ready`.
const host = await createHost({
  root: init.root,
  paths: init.paths,
  ...(init.customNodesDir !== undefined ? { customNodesDir: init.customNodesDir } : {}),
  ...(init.extraPacks ? { extraPacks: init.extraPacks } : {}),
  logger: silentLogger,
});
const executors = Array.from({ length: init.executors }, () => new Executor(host.registry, { paths: init.paths, logger, ...(init.cache ? { cache: init.cache } : {}) }));
const freeHooks = host.packs.loaded.flatMap((pack) => (pack.onFree ? [pack.onFree] : []));
const running = new Map<number, { seq: number; controller: AbortController }>();

port.on('message', (message: ToThread) => {
  switch (message.type) {
    case 'run':
      void run(message);
      break;
    case 'interrupt': {
      const current = running.get(message.slot);
      if (current?.seq === message.seq) current.controller.abort();
      break;
    }
    case 'clear_cache':
      executors[message.slot]?.cache.clear();
      post({ type: 'reply', id: message.id });
      break;
    case 'unload_models':
      void unloadModels(message.id);
      break;
  }
});

async function run(message: Extract<ToThread, { type: 'run' }>): Promise<void> {
  const { slot, seq } = message;
  const controller = new AbortController();
  running.set(slot, { seq, controller });
  try {
    const result = await executors[slot]!.run(message.prompt, {
      promptId: message.promptId,
      outputs: message.outputs,
      extraData: message.extraData,
      signal: controller.signal,
      interruptRequested: () => Atomics.load(flags, slot) === seq,
      onEvent: (event) => post({ type: 'event', slot, seq, event }),
    });
    post({ type: 'result', slot, seq, result });
  } catch (error) {
    post({ type: 'run_failed', slot, seq, name: (error as Error).name ?? 'Error', message: (error as Error).message ?? String(error) });
  } finally {
    if (running.get(slot)?.seq === seq) running.delete(slot);
  }
}

async function unloadModels(id: number): Promise<void> {
  // A pack hook that fails must not stop the others.
  const results = await Promise.allSettled(freeHooks.map(async (hook) => hook()));
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
  post({ type: 'reply', id, hooks: results.length, failures });
}

post({ type: 'ready', packs: host.packs.loaded.map((pack) => pack.name), failed: host.packs.failed.map(({ name, error }) => ({ name, error })) });
