/**
 * Widgets that are HTML elements laid over the canvas (the multiline STRING textarea, like ComfyUI's): each
 * frame the canvas draws a node, the element is moved to the widget's place under the canvas transform; the
 * ones not drawn in a frame (node scrolled away, collapsed, removed) are hidden.
 */
import { LGraphCanvas, type LGraphCanvasType } from './litegraph.ts';
import type { EditorNode, EditorWidget } from './node-state.ts';

const MARGIN = 10;
const MIN_HEIGHT = 60;

let layer: HTMLElement | undefined;
let activeCanvas: LGraphCanvasType | undefined;
let frame = 0;
const elements = new Set<HTMLElement>();

/** Installs the overlay layer over the canvas and the per-frame hiding hook. Call once. */
export function installDomWidgets(canvas: LGraphCanvasType, container: HTMLElement): void {
  activeCanvas = canvas;
  layer = document.createElement('div');
  layer.className = 'gg-dom-widgets';
  container.append(layer);
  const proto = LGraphCanvas.prototype as unknown as { drawFrontCanvas: (...args: unknown[]) => void };
  const draw = proto.drawFrontCanvas;
  proto.drawFrontCanvas = function (this: LGraphCanvasType, ...args: unknown[]) {
    frame++;
    draw.apply(this, args);
    for (const el of elements) if (Number(el.dataset.frame) !== frame) el.style.display = 'none';
  };
}

export interface TextareaOptions {
  placeholder?: string;
  tooltip?: string;
}

/** Adds a multiline text widget backed by a <textarea>. Its value is the textarea's text. */
export function addTextareaWidget(node: EditorNode, name: string, value: string, options: TextareaOptions = {}): EditorWidget {
  const el = document.createElement('textarea');
  el.className = 'gg-textarea';
  el.spellcheck = false;
  el.value = value;
  el.placeholder = options.placeholder ?? name;
  el.dataset.widget = name;
  if (options.tooltip) el.title = options.tooltip;
  el.style.display = 'none';
  el.addEventListener('input', () => {
    node.graph?.change?.();
    (node as unknown as { onWidgetChanged?: (n: string, v: unknown) => void }).onWidgetChanged?.(name, el.value);
  });
  // Keys typed in the textarea are text, not canvas shortcuts (Delete, Ctrl+C...).
  el.addEventListener('keydown', (e) => {
    if (!((e.ctrlKey || e.metaKey) && e.key === 'Enter')) e.stopPropagation();
  });
  (layer ?? document.body).append(el);
  elements.add(el);

  const widget = {
    type: 'customtext',
    name,
    options: { multiline: true },
    element: el,
    get value() {
      return el.value;
    },
    set value(v: unknown) {
      el.value = v === undefined || v === null ? '' : String(v);
    },
    computeSize(width: number): [number, number] {
      return [width, MIN_HEIGHT];
    },
    draw(_ctx: CanvasRenderingContext2D, drawnNode: EditorNode, width: number, y: number) {
      const canvas = activeCanvas;
      if (!canvas || !el.isConnected) return;
      const ds = canvas.ds as unknown as { scale: number; offset: [number, number] };
      if (ds.scale < 0.45) return;
      const last = drawnNode.widgets[drawnNode.widgets.length - 1] === (widget as unknown as EditorWidget);
      const height = Math.max(MIN_HEIGHT, last ? drawnNode.size[1] - y - 6 : MIN_HEIGHT);
      const x = (drawnNode.pos[0] + MARGIN + ds.offset[0]) * ds.scale;
      const top = (drawnNode.pos[1] + y + ds.offset[1]) * ds.scale;
      el.style.display = '';
      // A widget whose input is linked is overridden by the link: shown dimmed and read-only.
      const disabled = (widget as { disabled?: boolean }).disabled === true;
      el.readOnly = disabled;
      el.classList.toggle('gg-overridden', disabled);
      el.dataset.frame = String(frame);
      el.dataset.nodeId = String(drawnNode.id);
      el.style.width = `${width - MARGIN * 2}px`;
      el.style.height = `${height}px`;
      el.style.transform = `translate(${x}px, ${top}px) scale(${ds.scale})`;
    },
    onRemove() {
      elements.delete(el);
      el.remove();
    },
  };
  node.addCustomWidget(widget as never);
  return widget as unknown as EditorWidget;
}

/** Removes the HTML elements of a node's widgets (the node left the graph). */
export function removeDomWidgets(node: EditorNode): void {
  for (const widget of node.widgets ?? []) widget.onRemove?.();
}
