/**
 * Events the executor emits while running a prompt. Shapes and names follow ComfyUI's websocket messages
 * (`type` + `data`), so the server forwards them as they are.
 */
import type { PreviewImage, UiOutput } from './node-definition.ts';

export type ExecutionEvent =
  | { type: 'execution_start'; data: { prompt_id: string; timestamp: number } }
  /** Nodes whose outputs came from the cache (sent once, before anything executes). */
  | { type: 'execution_cached'; data: { nodes: string[]; prompt_id: string; timestamp: number } }
  | { type: 'executing'; data: { node: string | null; display_node: string | null; prompt_id: string } }
  | { type: 'progress'; data: { value: number; max: number; prompt_id: string; node: string } }
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
    };

export type ExecutionEventType = ExecutionEvent['type'];
export type EventListener = (event: ExecutionEvent) => void;
