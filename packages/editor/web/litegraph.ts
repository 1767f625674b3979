/**
 * litegraph.js 0.7 is loaded by a classic <script> (it defines globals, see vite.config.ts); this module hands
 * its globals to the rest of the editor with the package's own type declarations.
 */
import type * as Lite from 'litegraph.js';
import { typesCompatible } from './core.ts';

declare global {
  interface Window {
    LiteGraph: typeof Lite.LiteGraph;
    LGraph: typeof Lite.LGraph;
    LGraphCanvas: typeof Lite.LGraphCanvas;
    LGraphNode: typeof Lite.LGraphNode;
    LLink: typeof Lite.LLink;
  }
}

if (!window.LiteGraph) {
  throw new Error('litegraph.js did not load: vendor/litegraph.core.js must be included before the editor script');
}

export const LiteGraph = window.LiteGraph;
// litegraph's own check ignores case and keeps the spaces after commas; the server's does neither. The editor
// lets the user draw exactly the links validation accepts (one rule: core's socket-types.ts).
// (litegraph.js's type declarations leave isValidConnection out.)
(LiteGraph as unknown as { isValidConnection: (a: string | number, b: string | number) => boolean }).isValidConnection = (typeA, typeB) =>
  typesCompatible(typeA, typeB);
export const LGraph = window.LGraph;
export const LGraphCanvas = window.LGraphCanvas;
export const LGraphNode = window.LGraphNode;

export type LGraphType = Lite.LGraph;
export type LGraphCanvasType = Lite.LGraphCanvas;
export type LGraphNodeType = Lite.LGraphNode;
export type IWidget = Lite.IWidget;
export type INodeInputSlot = Lite.INodeInputSlot;
export type INodeOutputSlot = Lite.INodeOutputSlot;
export type LLinkType = Lite.LLink;
export type ContextMenuItem = Lite.ContextMenuItem;
