/**
 * Tooltips on the canvas, as ComfyUI shows them: hovering an input socket or widget shows the input's
 * tooltip, an output its tooltip, the title the node's description. The setting Comfy.EnableTooltips turns
 * them off.
 */
import type { EditorApp } from './app.ts';
import { LiteGraph } from './litegraph.ts';
import { isEditorNode } from './node-state.ts';
import type { ObjectInfoEntry } from './object-info.ts';

const DELAY_MS = 500;

export function installTooltips(app: EditorApp): void {
  const tip = document.createElement('div');
  tip.className = 'gg-tooltip';
  tip.setAttribute('role', 'tooltip');
  document.body.append(tip);
  let timer: ReturnType<typeof setTimeout> | undefined;

  const hide = () => {
    clearTimeout(timer);
    tip.style.display = 'none';
  };
  app.canvasEl.addEventListener('mouseleave', hide);
  app.canvasEl.addEventListener('mousedown', hide);
  app.canvasEl.addEventListener('mousemove', (event) => {
    hide();
    // Comfy.EnableTooltips off: none (read here, so the setting acts at once).
    if (event.buttons || app.settings?.get('Comfy.EnableTooltips') === false) return;
    timer = setTimeout(() => {
      const text = tooltipAt(app, event);
      if (!text) return;
      tip.textContent = text;
      tip.style.display = 'block';
      tip.style.left = `${Math.min(event.clientX + 12, innerWidth - 320)}px`;
      tip.style.top = `${event.clientY + 16}px`;
    }, DELAY_MS);
  });
}

function tooltipAt(app: EditorApp, event: MouseEvent): string | undefined {
  const [x, y] = app.canvas.convertEventToCanvasOffset(event) as [number, number];
  const node = app.graph.getNodeOnPos(x, y, (app.canvas as unknown as { visible_nodes: never[] }).visible_nodes);
  if (!node || !isEditorNode(node)) return undefined;
  const info = (node.constructor as unknown as { nodeData?: ObjectInfoEntry }).nodeData;
  const localX = x - node.pos[0];
  const localY = y - node.pos[1];
  if (localY < 0) return info?.description || undefined;
  const slot = (node as unknown as { getSlotInPosition(x: number, y: number): { input?: { name: string; tooltip?: string }; output?: { tooltip?: string }; slot: number } | null }).getSlotInPosition(x, y);
  if (slot?.input) return slot.input.tooltip ?? inputTooltip(info, slot.input.name);
  if (slot?.output) return slot.output.tooltip ?? info?.output_tooltips?.[slot.slot] ?? undefined;
  for (const widget of node.widgets ?? []) {
    if (widget.last_y === undefined) continue;
    const h = widget.computeSize ? widget.computeSize(node.size[0])[1] : LiteGraph.NODE_WIDGET_HEIGHT;
    if (localY >= widget.last_y && localY <= widget.last_y + h && localX > 6 && localX < node.size[0] - 6) {
      const custom = (widget as { tooltipAt?: (x: number, y: number, n: typeof node) => string | undefined }).tooltipAt;
      return custom?.(localX, localY, node) ?? widget.tooltip ?? inputTooltip(info, widget.name);
    }
  }
  return undefined;
}

function inputTooltip(info: ObjectInfoEntry | undefined, name: string): string | undefined {
  const spec = info?.input.required[name] ?? info?.input.optional?.[name];
  const tooltip = spec?.[1]?.tooltip;
  return typeof tooltip === 'string' ? tooltip : undefined;
}
