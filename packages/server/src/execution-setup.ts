/**
 * What runs the nodes of a process: the packs loaded (the registry validates prompts and answers object_info),
 * and one runner per executor slot, in the execution thread or in this thread (prompt-runner.ts). Shared by the
 * server (index.ts) and the Redis workers (redis/worker-process.ts). With `runNodes: false` (an API instance of a
 * Redis deployment) only the packs are loaded: its workers run the nodes.
 */
import { createHost, Executor, listWebExtensions, type HostPaths, type Logger, type NodeRegistry, type OutputCacheOptions, type WebExtension } from '@gategraph/core';
import { ExecutorThread } from './executor-thread.ts';
import { packHooksUnloader, type ModelUnloader } from './memory-actions.ts';
import { InProcessRunner, type PromptRunner } from './prompt-runner.ts';

/** Which nodes a process has and how it runs them (startServer's options of the same names). */
export interface NodeRunOptions {
  /** Use these node classes instead of loading packs (tests, embedding). */
  registry?: NodeRegistry;
  /** With `registry`: the editor extensions to serve. */
  webExtensions?: WebExtension[];
  /** When packs are loaded: folder of user packs (`false` disables them). */
  customNodesDir?: string | false;
  extraPacks?: string[];
  /** Output cache settings of the executor(s). */
  cache?: OutputCacheOptions;
  /**
   * Where nodes run: `thread` (the default when the packs are loaded) runs them in a worker thread, so a node
   * computing synchronously never stalls HTTP and websocket; `in-process` runs them on the process's event loop.
   * A `registry` of node objects runs in-process (functions cannot cross to a thread); asking for `thread` with
   * one is an error. See the server README's "Where nodes run".
   */
  execution?: 'thread' | 'in-process';
  /**
   * In the thread: how long after an interrupt a node may go on before its thread is terminated (and a fresh
   * one started); default DEFAULT_HARD_STOP_MS.
   */
  hardStopMs?: number;
}

/** The keys of NodeRunOptions, to pass them on from a larger options object. */
export const NODE_RUN_OPTION_KEYS = ['registry', 'webExtensions', 'customNodesDir', 'extraPacks', 'cache', 'execution', 'hardStopMs'] as const satisfies ReadonlyArray<keyof NodeRunOptions>;

/** The NodeRunOptions set in `options`. */
export function nodeRunOptionsOf(options: NodeRunOptions): NodeRunOptions {
  const out: Record<string, unknown> = {};
  for (const key of NODE_RUN_OPTION_KEYS) if (options[key] !== undefined) out[key] = options[key];
  return out as NodeRunOptions;
}

export interface ExecutionSetupOptions extends NodeRunOptions {
  root: string;
  paths: HostPaths;
  logger: Logger;
  /** Executors (prompts run at the same time). */
  executors: number;
  /** False: load the packs only (no thread, no runners). */
  runNodes?: boolean;
}

export interface ExecutionSetup {
  registry: NodeRegistry;
  extensions: WebExtension[];
  /** The runner of an executor slot (0 .. executors-1). */
  runner(slot: number): PromptRunner;
  unloadModels: ModelUnloader;
  thread: ExecutorThread | undefined;
}

export async function setUpExecution(options: ExecutionSetupOptions): Promise<ExecutionSetup> {
  const { root, paths, logger } = options;
  const runNodes = options.runNodes ?? true;
  const execution = options.execution ?? (options.registry ? 'in-process' : 'thread');
  if (execution === 'thread' && options.registry) {
    throw new Error("execution 'thread' loads the packs from their paths in the thread; a registry of node objects runs only 'in-process'");
  }
  let registry: NodeRegistry;
  let extensions = options.webExtensions ?? [];
  let unloadModels: ModelUnloader = packHooksUnloader([]);
  let thread: ExecutorThread | undefined;
  if (options.registry) {
    registry = options.registry;
  } else {
    const packOptions = {
      ...(options.customNodesDir !== undefined ? { customNodesDir: options.customNodesDir } : {}),
      ...(options.extraPacks ? { extraPacks: options.extraPacks } : {}),
    };
    // This thread's registry validates prompts and answers object_info; the thread loads the same packs to run
    // them. Both load at once.
    const hostLoading = createHost({ root, paths, ...packOptions, logger });
    const threadStarting =
      runNodes && execution === 'thread'
        ? ExecutorThread.start({
            init: { root, paths, ...packOptions, ...(options.cache ? { cache: options.cache } : {}), executors: options.executors },
            logger,
            ...(options.hardStopMs !== undefined ? { hardStopMs: options.hardStopMs } : {}),
            serverPacks: hostLoading.then((host) => host.packs.loaded.map((pack) => pack.name)),
          })
        : undefined;
    const [host, started] = await Promise.all([hostLoading, threadStarting]);
    registry = host.registry;
    extensions = listWebExtensions(host.packs);
    thread = started;
    unloadModels = thread
      ? () => thread!.unloadModels()
      : packHooksUnloader(host.packs.loaded.flatMap((pack) => (pack.onFree ? [pack.onFree] : [])));
  }
  const runner = (slot: number): PromptRunner => {
    if (!runNodes) throw new Error('this process does not run nodes');
    return thread ? thread.runner(slot) : new InProcessRunner(new Executor(registry, { paths, logger, ...(options.cache ? { cache: options.cache } : {}) }));
  };
  return { registry, extensions, runner, unloadModels, thread };
}
