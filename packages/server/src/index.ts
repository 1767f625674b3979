/**
 * `startServer(options)`: the ComfyUI-compatible gategraph server: HTTP routes (app.ts), websocket clients
 * (ws-hub.ts), the durable queue (queue.ts, store.ts) and the workers that run prompts (worker.ts).
 */
import { createServer, type IncomingMessage } from 'node:http';
import { mkdirSync, statSync } from 'node:fs';
import { delimiter } from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  consoleLogger,
  findWorkspaceRoot,
  type Logger,
  type NodeRegistry,
  type WebExtension,
} from '@gategraph/core';
import { createApp } from './app.ts';
import { defaultEditorDir, resolveConfig, workspaceInstallCommand, type ConfigInput, type ServerConfig } from './config.ts';
import { PromptQueue } from './queue.ts';
import { normalizeRequestUrl, upgradeRefusal } from './security.ts';
import { MemoryActions } from './memory-actions.ts';
import { PromptWorker } from './worker.ts';
import { nodeRunOptionsOf, setUpExecution, type NodeRunOptions } from './execution-setup.ts';
import { LocalQueueService, type QueueService } from './queue-service.ts';
import { WsHub } from './ws-hub.ts';
import { DEFAULT_REDIS_PREFIX, startRedisApi } from './redis/api-instance.ts';
import { redactUrl } from './redis/connection.ts';
import type { RedisFileStore } from './redis/file-store.ts';

export { resolveConfig, parseCliArgs, CLI_USAGE, DEFAULT_HOST, DEFAULT_PORT, type ServerConfig, type ConfigInput } from './config.ts';
export { PromptQueue, DuplicatePromptIdError, SERVER_STOPPED_MESSAGE, type EnqueueRequest } from './queue.ts';
export { DurableStore, StoreDamagedError, HISTORY_EXTRA_DATA_LIMIT, type QueueItem, type HistoryEntry, type StatusMessage } from './store.ts';
export { DataDirLockedError, LOCK_FILE } from './data-lock.ts';
export { WsHub, BINARY_PREVIEW_IMAGE, PREVIEW_FORMAT } from './ws-hub.ts';
export { ALL_CACHED_NOTE } from './worker.ts';
export { DEFAULT_HARD_STOP_MS, HARD_STOP_REASON, THREAD_RESTARTED_REASON } from './executor-thread.ts';
export { originAllowed, isLoopbackHostname, canonicalHostname, isPublicRequest, normalizeRequestUrl } from './security.ts';

export interface StartServerOptions extends ConfigInput, NodeRunOptions {
  /** Workspace root (folders default under it); default: found from the current directory. */
  root?: string;
  logger?: Logger;
  /** Environment read for HOST, PORT and GATEGRAPH_TOKEN; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** fsync the store after each change (default true). */
  fsync?: boolean;
  /** Also stop on SIGINT/SIGTERM (the CLI sets it). */
  handleSignals?: boolean;
}

export interface GategraphServer {
  /** `http://host:port`, with the port actually bound. */
  url: string;
  host: string;
  port: number;
  config: ServerConfig;
  registry: NodeRegistry;
  /** The queue as the routes see it: this process's durable store and workers, or a Redis deployment's. */
  queue: QueueService;
  hub: WsHub;
  /** Prompts that were running when the previous process stopped, now in history as interrupted. */
  recovered: string[];
  /**
   * Graceful stop: refuses new connections, interrupts the running prompt and records it, flushes the store
   * and closes the sockets. Resolves when everything is closed.
   */
  close(): Promise<void>;
}

/** A `--extra-model-paths-config` file that is not there: the server does not start (the message is for people). */
export class ExtraModelPathsConfigError extends Error {
  override name = 'ExtraModelPathsConfigError';
}

/**
 * The variable through which hosts hand extra_model_paths.yaml files to the model pack (nodes-tgate's
 * extra-model-paths.ts reads it, as it reads GATEGRAPH_MODELS).
 */
export const EXTRA_MODEL_PATHS_ENV = 'GATEGRAPH_EXTRA_MODEL_PATHS';

/**
 * Adds `files` to GATEGRAPH_EXTRA_MODEL_PATHS (after what it holds) for as long as the server runs, since the
 * model folders are process-wide as in ComfyUI; returns what puts the variable back. Throws
 * ExtraModelPathsConfigError for a file that does not exist (a broken one is reported by the pack, with its line).
 */
function useExtraModelPaths(files: readonly string[]): () => void {
  if (!files.length) return () => {};
  for (const file of files) {
    let isFile = false;
    try {
      isFile = statSync(file).isFile();
    } catch {
      // reported below
    }
    if (!isFile) throw new ExtraModelPathsConfigError(`--extra-model-paths-config: ${file} does not exist (expected an extra_model_paths.yaml file)`);
  }
  const previous = process.env[EXTRA_MODEL_PATHS_ENV];
  const before = (previous ?? '').split(delimiter).filter(Boolean);
  process.env[EXTRA_MODEL_PATHS_ENV] = [...new Set([...before, ...files])].join(delimiter);
  return () => {
    if (previous === undefined) delete process.env[EXTRA_MODEL_PATHS_ENV];
    else process.env[EXTRA_MODEL_PATHS_ENV] = previous;
  };
}

/** How long `close` waits for a running prompt to honour the interrupt before closing anyway. */
const INTERRUPT_GRACE_MS = 10_000;
/** Signals within this time of the first one are the same Ctrl+C, passed on by npm / pnpm (see handleSignals). */
const REPEATED_SIGNAL_MS = 1000;
/** Websocket keep-alive: a client that does not answer a ping within this time is dropped. */
const PING_INTERVAL_MS = 30_000;

export async function startServer(options: StartServerOptions = {}): Promise<GategraphServer> {
  const root = options.root ?? findWorkspaceRoot();
  const logger = options.logger ?? consoleLogger('info', 'server');
  const config = resolveConfig(root, options, options.env ?? process.env);
  const restoreExtraModelPaths = useExtraModelPaths(config.extraModelPathsConfig);
  try {
    return await startWith(root, config, logger, options, restoreExtraModelPaths);
  } catch (error) {
    restoreExtraModelPaths();
    throw error;
  }
}

async function startWith(
  root: string,
  config: ServerConfig,
  logger: Logger,
  options: StartServerOptions,
  restoreExtraModelPaths: () => void,
): Promise<GategraphServer> {
  for (const dir of [config.paths.output, config.paths.input, config.paths.temp]) mkdirSync(dir, { recursive: true });
  // Read by the session pool where the nodes run (this thread or the execution thread, which copies the environment).
  if (config.sessionMemoryBytes !== undefined) process.env.GATEGRAPH_SESSION_MEMORY = String(config.sessionMemoryBytes);

  const hub = new WsHub({ logger });
  const backend = config.redis ? await redisBackend(root, config, options, logger, hub) : await localBackend(root, config, options, logger, hub);
  const { registry, extensions, service } = backend;
  announceQueueChanges(service, hub, logger);

  const editorBuildCommand = config.editorDir === defaultEditorDir(root) ? workspaceInstallCommand(root) : undefined;
  const app = createApp({
    config,
    registry,
    queue: service,
    extensions,
    logger,
    ...(backend.files ? { files: backend.files } : {}),
    ...(editorBuildCommand ? { editorBuildCommand } : {}),
  });
  const server = createServer(app);
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // The same normalized path as the HTTP routes see (security.ts), so `/WS`, `/api//ws/` and the like are
    // not a second way in.
    const normalized = normalizeRequestUrl(req.url ?? '/');
    const url = new URL(normalized ?? '/invalid', 'http://localhost');
    if (url.pathname !== '/ws' && url.pathname !== '/api/ws') {
      refuseUpgrade(socket, 404, 'no websocket here; connect to /ws?clientId=...');
      return;
    }
    const refusal = upgradeRefusal(req, config.token);
    if (refusal) {
      refuseUpgrade(socket, refusal.status, refusal.message);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const sid = hub.add(ws, url.searchParams.get('clientId') ?? undefined);
      aliveSockets.add(ws);
      ws.on('pong', () => aliveSockets.add(ws));
      void greet(ws, sid, service).catch((error: unknown) => logger.warn(`websocket of client ${sid}: ${(error as Error).message}`));
    });
  });

  const aliveSockets = new WeakSet<WebSocket>();
  const pinger = setInterval(() => {
    for (const ws of wss.clients) {
      if (!aliveSockets.has(ws)) {
        ws.terminate();
        continue;
      }
      aliveSockets.delete(ws);
      ws.ping();
    }
  }, PING_INTERVAL_MS);
  pinger.unref();

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    // The port is taken (say): leave the data folder as it was found, its lock released.
    clearInterval(pinger);
    await backend.close();
    throw error;
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const urlHost = config.host.includes(':') ? `[${config.host}]` : config.host;
  backend.start();

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      clearInterval(pinger);
      const httpClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      await backend.stop();
      await backend.close();
      hub.closeAll();
      server.closeIdleConnections();
      setTimeout(() => {
        hub.terminateAll();
        server.closeAllConnections();
      }, 500).unref();
      await httpClosed;
      restoreExtraModelPaths();
      if (signalHandler) {
        process.off('SIGINT', signalHandler);
        process.off('SIGTERM', signalHandler);
      }
    })());

  let signalHandler: ((signal: NodeJS.Signals) => void) | undefined;
  if (options.handleSignals) {
    let stoppingSince: number | undefined;
    signalHandler = (signal) => {
      if (stoppingSince !== undefined) {
        // One Ctrl+C can arrive more than once: the terminal signals the whole process group, and npm and pnpm
        // also pass the signal they got on to the server. Only a later one is a person pressing it again.
        if (performance.now() - stoppingSince < REPEATED_SIGNAL_MS) return;
        // A second Ctrl+C: the person does not want to wait for the running prompt; it is recorded as
        // interrupted on the next start.
        logger.warn(`${signal} again: quitting now without waiting for the running prompt`);
        process.exit(130);
      }
      stoppingSince = performance.now();
      logger.info(`${signal}: stopping (interrupting the running prompt, saving the queue; ${signal === 'SIGINT' ? 'Ctrl+C' : signal} again to quit at once)`);
      close().then(
        () => {
          logger.info('gategraph server stopped');
          process.exit(0);
        },
        (error: unknown) => {
          logger.error(`the server did not stop cleanly: ${(error as Error)?.message ?? String(error)}`);
          process.exit(1);
        },
      );
    };
    process.on('SIGINT', signalHandler);
    process.on('SIGTERM', signalHandler);
  }

  const { recovered } = backend;
  if (recovered.length) logger.warn(`${recovered.length} prompt(s) were interrupted by the last stop: ${recovered.join(', ')}`);
  const pending = (await service.pending()).length;
  if (pending) logger.info(`${pending} pending prompt(s) ${config.redis ? 'in the Redis queue' : `restored from ${config.dataDir}`}`);

  return { url: `http://${urlHost}:${port}`, host: config.host, port, config, registry, queue: service, hub, recovered, close };
}

/** What holds the queue and runs the prompts: this process (local) or a Redis deployment. */
interface Backend {
  registry: NodeRegistry;
  extensions: WebExtension[];
  service: QueueService;
  /** Prompts found running from the previous stop, recorded as interrupted (local store only). */
  recovered: string[];
  files?: RedisFileStore;
  /** Starts running prompts. */
  start(): void;
  /** Stops taking prompts and interrupts the running ones, waiting a while for them to be recorded. */
  stop(): Promise<void>;
  close(): Promise<void>;
}

async function localBackend(root: string, config: ServerConfig, options: StartServerOptions, logger: Logger, hub: WsHub): Promise<Backend> {
  const { registry, extensions, runner, unloadModels, thread } = await setUpExecution({ ...executionOptions(root, config, options, logger), executors: config.workers });
  let opened: ReturnType<typeof PromptQueue.open>;
  try {
    opened = PromptQueue.open({
      dataDir: config.dataDir,
      maxHistory: config.maxHistory,
      maxHistoryBytes: config.maxHistoryBytes,
      logger,
      ...(options.fsync !== undefined ? { fsync: options.fsync } : {}),
    });
  } catch (error) {
    // Another server holds the folder, say: a started thread would keep this process alive.
    await thread?.close();
    throw error;
  }
  const { queue, recovered } = opened;
  let workers: PromptWorker[] = [];
  const memory = new MemoryActions(() => workers, unloadModels, logger);
  workers = Array.from({ length: config.workers }, (_, slot) => new PromptWorker({ queue, hub, logger, memory, runner: runner(slot) }));
  let loops: Promise<void>[] = [];
  return {
    registry,
    extensions,
    service: new LocalQueueService(queue, () => workers, memory),
    recovered,
    start() {
      loops = workers.map((worker) => worker.start());
    },
    async stop() {
      queue.stopTaking();
      for (const worker of workers) worker.interrupt(undefined, true);
      const settled = await Promise.race([
        Promise.all(loops).then(() => true),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), INTERRUPT_GRACE_MS).unref()),
      ]);
      if (!settled) logger.warn('A running prompt did not stop in time; it will be reported as interrupted on the next start');
    },
    async close() {
      await thread?.close();
      queue.close();
    },
  };
}

/** An API instance of a Redis deployment: the packs for validation and object_info; workers run the nodes. */
async function redisBackend(root: string, config: ServerConfig, options: StartServerOptions, logger: Logger, hub: WsHub): Promise<Backend> {
  const { registry, extensions } = await setUpExecution({ ...executionOptions(root, config, options, logger), executors: 0, runNodes: false });
  const api = await startRedisApi(config.redis!, { paths: config.paths, maxHistory: config.maxHistory, hub, logger });
  logger.info(`queue, history and events in Redis at ${redactUrl(config.redis!.url)} (prefix ${config.redis!.prefix ?? DEFAULT_REDIS_PREFIX}); prompts run on gategraph worker processes`);
  return {
    registry,
    extensions,
    service: api.service,
    recovered: [],
    ...(api.files ? { files: api.files } : {}),
    start() {},
    // Prompts run on the workers: an API instance stopping leaves them running.
    async stop() {},
    close: () => api.close(),
  };
}

function executionOptions(root: string, config: ServerConfig, options: StartServerOptions, logger: Logger) {
  return { root, paths: config.paths, logger, ...nodeRunOptionsOf(options) };
}

/** A new socket's first messages: the status with its id, then where its running prompt is (a reconnect). */
async function greet(ws: WebSocket, sid: string, service: QueueService): Promise<void> {
  const [remaining, running] = await Promise.all([service.remaining(), service.running()]);
  ws.send(JSON.stringify({ type: 'status', data: { status: { exec_info: { queue_remaining: remaining } }, sid } }));
  for (const item of running) {
    if (item.extraData.client_id === sid && item.node !== null) {
      ws.send(JSON.stringify({ type: 'executing', data: { node: item.node, display_node: item.displayNode ?? item.node, prompt_id: item.promptId } }));
    }
  }
}

/** Queue changes are announced to every websocket client once per tick, however many happened in it. */
export function announceQueueChanges(service: QueueService, hub: WsHub, logger: Logger): void {
  let scheduled = false;
  service.on('change', () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      service.remaining().then(
        (remaining) => hub.broadcast('status', { status: { exec_info: { queue_remaining: remaining } } }),
        (error: unknown) => logger.warn(`could not read the queue's length for the status message: ${(error as Error).message}`),
      );
    });
  });
}

function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  const reason = status === 401 ? 'Unauthorized' : status === 403 ? 'Forbidden' : 'Not Found';
  const body = JSON.stringify({ error: { message } });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
