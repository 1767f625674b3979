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

export interface ExecutionSetupOptions {
  root: string;
  paths: HostPaths;
  logger: Logger;
  /** Executors (prompts run at the same time). */
  executors: number;
  registry?: NodeRegistry;
  webExtensions?: WebExtension[];
  customNodesDir?: string | false;
  extraPacks?: string[];
  cache?: OutputCacheOptions;
  execution?: 'thread' | 'in-process';
  hardStopMs?: number;
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
