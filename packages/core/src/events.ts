/**
 * Events the executor emits while running a prompt. Shapes and names follow ComfyUI's websocket messages
 * (`type` + `data`), so the server forwards them as they are.
 */
import type { PreviewImage, UiOutput } from './node-definition.ts';

/** Which node an event is about: its id, the node shown for it, and for an expanded node its parent. */
export type NodeRef = {
  prompt_id: string;
  /** The node's id (an expanded node's id is namespaced under its parent's: `5.0.0.12`). */
  node: string;
  /** The node the editor shows it on (ComfyUI's `display_node`): itself, or the node that expanded into it. */
  display_node: string;
  /** The node whose expansion made it; null for a node of the submitted prompt. */
  parent_node: string | null;
  /** The node of the submitted prompt it belongs to (ComfyUI's `real_node_id`). */
  real_node: string;
};

export type ExecutionEvent =
  | { type: 'execution_start'; data: { prompt_id: string; timestamp: number } }
  /** Nodes whose outputs came from the cache (sent once, before anything executes). */
  | { type: 'execution_cached'; data: { nodes: string[]; prompt_id: string; timestamp: number } }
  | { type: 'executing'; data: { node: string | null; display_node: string | null; prompt_id: string } }
  /**
   * `node` is the node shown (ComfyUI sends the display node, so a progress bar lands on a node of the
   * canvas); `node_id` is the node reporting, which differs for a node made by an expansion.
   */
  | { type: 'progress'; data: { value: number; max: number; prompt_id: string; node: string; node_id: string } }
  /** Not JSON: the server sends it as a binary frame. */
  | { type: 'preview'; data: { prompt_id: string; node: string; image: PreviewImage } }
  | { type: 'executed'; data: { node: string; display_node: string; output: UiOutput; prompt_id: string } }
  | { type: 'execution_success'; data: { prompt_id: string; timestamp: number } }
  | {
      type: 'execution_error';
      data: {
        prompt_id: string;
        node_id: string;
        node_type: string;
        /** Ids of the nodes that finished before the error. */
        executed: string[];
        exception_message: string;
        exception_type: string;
        traceback: string[];
        current_inputs: Record<string, unknown>;
        current_outputs: Record<string, unknown>;
        timestamp: number;
      };
    }
  | {
      type: 'execution_interrupted';
      data: { prompt_id: string; node_id: string | null; node_type: string | null; executed: string[]; timestamp: number };
    }
  | NodeLifecycleEvent;

/**
 * Events for hosts, not ComfyUI messages (the server turns them into `progress_state`, and does not forward
 * them): a node started running, and a node is done (ran, came from the cache, was blocked by an
 * ExecutionBlocker, or its expansion finished). Nodes may run concurrently, so a start does not end another.
 */
export type NodeLifecycleEvent =
  | { type: 'node_started'; data: NodeRef }
  | { type: 'node_finished'; data: NodeRef & { outcome: 'executed' | 'cached' | 'blocked' } };

export type ExecutionEventType = ExecutionEvent['type'];
export type EventListener = (event: ExecutionEvent) => void;
