/**
 * Messages between the server's event loop and its execution thread (executor-thread.ts on the server side,
 * executor-thread-entry.ts in the thread). Everything here crosses by structured clone, so it is plain data:
 * functions (node definitions, pack objects) never cross; the thread loads the packs itself from their paths.
 */
import type { ExecutionEvent, HostPaths, OutputCacheOptions, RunResult } from '@gategraph/core';
import type { RunRequest } from './prompt-runner.ts';

/** What the thread is started with (`workerData`). */
export interface ThreadInit {
  root: string;
  paths: HostPaths;
  customNodesDir?: string | false;
  extraPacks?: string[];
  cache?: OutputCacheOptions;
  /** One executor per server worker (`--workers`), each with its own output cache, as in-process. */
  executors: number;
  /**
   * One Int32 per executor: the run sequence number to interrupt. Set with Atomics by the server and read by
   * the executor wherever a node checks for interruption, so a node in a synchronous loop sees it at once.
   */
  interruptFlags: SharedArrayBuffer;
}

export type ToThread =
  | ({ type: 'run'; slot: number; seq: number } & RunRequest)
  /** Aborts the run's AbortSignal (for nodes awaiting something with `ctx.signal`); the flag is already set. */
  | { type: 'interrupt'; slot: number; seq: number }
  | { type: 'clear_cache'; id: number; slot: number }
  | { type: 'unload_models'; id: number };

export interface PackFailure {
  name: string;
  error: string;
}

export type FromThread =
  | { type: 'ready'; packs: string[]; failed: PackFailure[] }
  | { type: 'event'; slot: number; seq: number; event: ExecutionEvent }
  | { type: 'result'; slot: number; seq: number; result: RunResult }
  /** executor.run rejected (misuse, not a node error: those are in the result). */
  | { type: 'run_failed'; slot: number; seq: number; name: string; message: string }
  | { type: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; scopes: string[]; message: string; details: unknown[] }
  | { type: 'reply'; id: number; hooks?: number; failures?: string[] };
