/**
 * What a PromptWorker runs a prompt with: an executor in this thread (InProcessRunner) or one in the execution
 * thread (executor-thread.ts). The worker only sees this interface, so queueing, history and websocket messages
 * are the same whichever runs the nodes.
 */
import type { ApiPrompt, ExecutionEvent, Executor, RunResult } from '@gategraph/core';

export interface RunRequest {
  promptId: string;
  prompt: ApiPrompt;
  outputs: string[];
  extraData: Record<string, unknown>;
}

export interface RunCallbacks {
  /** Aborted to interrupt the prompt (`POST /interrupt`, a job cancel, the server stopping). */
  signal: AbortSignal;
  /** Every execution event, in order, as it happens. */
  onEvent: (event: ExecutionEvent) => void;
}

export interface PromptRunner {
  /** Resolves with the run's result; rejects only when the executor is misused (a second concurrent run). */
  run(request: RunRequest, callbacks: RunCallbacks): Promise<RunResult>;
  /** Empties this runner's output cache (between prompts: memory-actions.ts). */
  clearCache(): void | Promise<void>;
}

/** Runs nodes on the caller's event loop: for registries of in-memory node objects (tests, embedders). */
export class InProcessRunner implements PromptRunner {
  constructor(readonly executor: Executor) {}

  run(request: RunRequest, callbacks: RunCallbacks): Promise<RunResult> {
    return this.executor.run(request.prompt, {
      promptId: request.promptId,
      outputs: request.outputs,
      extraData: request.extraData,
      signal: callbacks.signal,
      onEvent: callbacks.onEvent,
    });
  }

  clearCache(): void {
    this.executor.cache.clear();
  }
}
