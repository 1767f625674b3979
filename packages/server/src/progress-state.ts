/**
 * ComfyUI's `progress_state` websocket message: after each change, the state of every node of the prompt that
 * has started (`running`, `finished`, `error`; pending ones are left out) with its progress, sent to the
 * prompt's own client only. Made from the executor's events: `execution_cached`, the host-only `node_started` / `node_finished`
 * (which say which node an expanded node is shown on and which node made it; nodes may run at the same time,
 * so one starting does not end another), `progress`, and `execution_error` for the failing node.
 */
import type { ExecutionEvent, NodeRef } from '@gategraph/core';

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
        // Submitted nodes found in the cache as the prompt starts: finished before anything runs.
        for (const id of event.data.nodes) changed = this.#set({ node: id, display_node: id, parent_node: null, real_node: id }, 'finished', 1, 1) || changed;
        break;
      case 'node_started':
        changed = this.#set(event.data, 'running', 0, 1);
        break;
      case 'node_finished': {
        const node = this.#nodes.get(event.data.node);
        const max = node?.max ?? 1;
        changed = this.#set(event.data, 'finished', max, max);
        break;
      }
      case 'progress': {
        const node = this.#nodes.get(event.data.node_id ?? event.data.node);
        if (node) changed = this.#set(refOf(node), 'running', event.data.value, event.data.max);
        break;
      }
      case 'execution_error': {
        const node = this.#nodes.get(event.data.node_id);
        // A blocker's message is an error event for a node that did not run: it stays as it was.
        if (node && event.data.exception_type !== 'ExecutionBlocked') changed = this.#set(refOf(node), 'error', node.value, node.max);
        break;
      }
      default:
        break;
    }
    return changed ? { prompt_id: this.promptId, nodes: Object.fromEntries(this.#nodes) } : undefined;
  }

  /** Sets a node's state; true when that changed anything. */
  #set(ref: Omit<NodeRef, 'prompt_id'>, state: NodeRunState, value: number, max: number): boolean {
    const current = this.#nodes.get(ref.node);
    if (current && current.state === state && current.value === value && current.max === max) return false;
    this.#nodes.set(ref.node, {
      value,
      max,
      state,
      node_id: ref.node,
      prompt_id: this.promptId,
      display_node_id: ref.display_node,
      parent_node_id: ref.parent_node,
      real_node_id: ref.real_node,
    });
    return true;
  }
}

function refOf(node: NodeProgress): Omit<NodeRef, 'prompt_id'> {
  return { node: node.node_id, display_node: node.display_node_id, parent_node: node.parent_node_id, real_node: node.real_node_id };
}
