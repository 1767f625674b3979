/** What the editor keeps on each node it created from /object_info, besides litegraph's own fields. */
import type { IWidget, LGraphNodeType } from './litegraph.ts';
import type { ObjectInfoEntry } from './object-info.ts';

export interface ErrorMark {
  /** The input (socket or widget) the error is about, when there is one. */
  input?: string;
  message: string;
}

export interface NodeRunState {
  /** The server is executing this node now. */
  running?: boolean;
  /** Sampler-style progress of the running node. */
  progress?: { value: number; max: number };
  /** Latent preview of the running node (binary websocket frames). */
  preview?: HTMLImageElement;
  /** Output images from `executed` (`output.images`), loaded from /view. */
  images: HTMLImageElement[];
  /** Validation or execution errors shown on the node. */
  errors: ErrorMark[];
}

export interface EditorWidget extends IWidget {
  name: string;
  /** A display-only widget: not saved in widgets_values, not an input. */
  serialize?: boolean;
  /** For the control-after-generate combo: the widget it changes after each queue. */
  linkedWidget?: EditorWidget;
  /** For the control combo of a combo widget: the filter text that follows it (ComfyUI's control_filter_list). */
  filterWidget?: EditorWidget;
  /** Shown instead of the name. */
  label?: string;
  /** The input spec's tooltip. */
  tooltip?: string;
  last_y?: number;
  onRemove?(): void;
}

export interface EditorNode extends LGraphNodeType {
  /** The node's class_type (the extension contract's name for it, as in ComfyUI). */
  comfyClass: string;
  widgets: EditorWidget[];
  gg: NodeRunState;
  /** Called with the `ui` object of the node's `executed` message (extension contract). */
  onExecuted?(output: Record<string, unknown>): void;
  widgets_values?: unknown[];
}

export interface EditorNodeClass {
  comfyClass: string;
  nodeData: ObjectInfoEntry;
}

export function isEditorNode(node: unknown): node is EditorNode {
  return typeof node === 'object' && node !== null && typeof (node as EditorNode).comfyClass === 'string' && 'gg' in node;
}

export function emptyRunState(): NodeRunState {
  return { images: [], errors: [] };
}

/** True for widgets whose value is saved in widgets_values (everything but display-only widgets). */
export function isSerialized(widget: EditorWidget): boolean {
  return widget.serialize !== false && (widget.options as { serialize?: boolean } | undefined)?.serialize !== false;
}
