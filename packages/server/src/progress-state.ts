/**
 * ComfyUI's `progress_state` websocket message: after each change, the state of every node of the prompt that
 * has started (`running`, `finished`, `error`; pending ones are left out) with its progress, sent to the
 * prompt's own client only. Made from the executor's events: `execution_cached` (finished), `executing`
 * (running; the executor runs one node at a time, so the node that ran before it has finished), `progress`,
 * `executed`, and `execution_success` / `execution_error` at the end.
 */
import type { ExecutionEvent } from '@gategraph/core';

export type NodeRunState = 'running' | 'finished' | 'error';

export interface NodeProgress {
  value: number;
  max: number;
  state: NodeRunState;
  node_id: string;
  prompt_id: string;
  display_node_id: string;
  parent_node_id: string | null;
  real_node_id: string;
}

export class PromptProgressState {
  readonly #nodes = new Map<string, NodeProgress>();

  constructor(readonly promptId: string) {}

  /** Applies an executor event; the message to send when the state changed, else undefined. */
  apply(event: ExecutionEvent): { prompt_id: string; nodes: Record<string, NodeProgress> } | undefined {
    let changed = false;
    switch (event.type) {
      case 'execution_cached':
        for (const id of event.data.nodes) changed = this.#set(id, 'finished', 1, 1) || changed;
        break;
      case 'executing':
        changed = this.#finishRunning(event.data.node ?? undefined);
        if (event.data.node !== null) changed = this.#set(event.data.node, 'running', 0, 1) || changed;
        break;
      case 'progress':
        changed = this.#set(event.data.node, 'running', event.data.value, event.data.max);
        break;
      case 'executed': {
        // Also sent for a cached output node, to replay its UI: then it is finished already.
        const node = this.#nodes.get(event.data.node);
        changed = this.#set(event.data.node, 'finished', node?.max ?? 1, node?.max ?? 1);
        break;
      }
      case 'execution_success':
        changed = this.#finishRunning(undefined);
        break;
      case 'execution_error': {
        const id = event.data.node_id;
        if (id === null) break;
        const node = this.#nodes.get(id);
        changed = this.#set(id, 'error', node?.value ?? 0, node?.max ?? 1);
        break;
      }
      default:
        break;
    }
    return changed ? { prompt_id: this.promptId, nodes: Object.fromEntries(this.#nodes) } : undefined;
  }

  /** Running nodes other than `except` are finished; true when any was. */
  #finishRunning(except: string | undefined): boolean {
    let changed = false;
    for (const node of this.#nodes.values()) {
      if (node.state !== 'running' || node.node_id === except) continue;
      node.state = 'finished';
      node.value = node.max;
      changed = true;
    }
    return changed;
  }

  /** Sets a node's state; true when that changed anything. */
  #set(id: string, state: NodeRunState, value: number, max: number): boolean {
    const current = this.#nodes.get(id);
    if (current && current.state === state && current.value === value && current.max === max) return false;
    this.#nodes.set(id, {
      value,
      max,
      state,
      node_id: id,
      prompt_id: this.promptId,
      // No node expansion yet: every node is its own display node and has no parent.
      display_node_id: id,
      parent_node_id: null,
      real_node_id: id,
    });
    return true;
  }
}
