/**
 * One litegraph node class per /object_info entry: sockets by type, widgets in the order core's converter
 * expects (`widgetLayout`), the category for the add-node menu, and saving/loading of `widgets_values` that
 * skips display-only widgets and tolerates files with or without the seed's control value.
 */
import { widgetLayout } from './core.ts';
import { removeDomWidgets } from './dom-widgets.ts';
import { LGraphNode, LiteGraph, type INodeInputSlot, type LGraphNodeType } from './litegraph.ts';
import { drawNodeOverlay } from './node-draw.ts';
import { emptyRunState, isSerialized, type EditorNode, type EditorWidget, type NodeRunState } from './node-state.ts';
import { definitionFromObjectInfo, describeInputs, type ObjectInfoEntry } from './object-info.ts';
import { addImageUpload } from './image-upload.ts';
import { addInputWidget, CONTROL_MODES, CONTROL_WIDGET_NAME } from './widgets.ts';

export interface NodeTypeHooks {
  /** Called for every node created from a registered class (the extension contract's nodeCreated). */
  nodeCreated(node: EditorNode): void;
  /** A widget's value changed through the UI. */
  widgetChanged(node: EditorNode, name: string): void;
  /** Lets extensions patch the class before it is registered (ComfyUI's beforeRegisterNodeDef). */
  beforeRegister?(nodeType: unknown, nodeData: ObjectInfoEntry): void;
}

/** ComfyUI's nodes with widgets are about this wide; narrower ones crowd the widget labels. */
const MIN_WIDTH = 270;
const SERIALIZED_CONTROL_VALUES = new Set<unknown>([...CONTROL_MODES, 'increment-wrap']);

/** Registers (or replaces) the classes of every entry. */
export function registerNodeTypes(info: Record<string, ObjectInfoEntry>, hooks: NodeTypeHooks): void {
  for (const entry of Object.values(info)) registerNodeType(entry, hooks);
}

function registerNodeType(entry: ObjectInfoEntry, hooks: NodeTypeHooks): void {
  const definition = definitionFromObjectInfo(entry);
  const layout = widgetLayout(definition);
  const inputs = describeInputs(entry);
  const title = entry.display_name || entry.name;

  class GategraphNode extends LGraphNode {
    static comfyClass = entry.name;
    static nodeData = entry;
    static override title = title;
    comfyClass = entry.name;
    gg: NodeRunState = emptyRunState();
    declare widgets: EditorWidget[];

    constructor(nodeTitle?: string) {
      super(nodeTitle ?? title);
      const self = this as unknown as EditorNode;
      this.serialize_widgets = true;
      this.properties = { ...(this.properties ?? {}), 'Node name for S&R': entry.name };
      for (const input of inputs) {
        const isWidget = input.spec.kind !== 'SOCKET' && !input.spec.forceInput;
        if (isWidget) continue;
        const type = input.spec.kind === 'SOCKET' ? input.spec.type : input.spec.kind;
        const extra: Partial<INodeInputSlot> & Record<string, unknown> = {};
        if (input.spec.tooltip) extra.tooltip = input.spec.tooltip;
        if (input.spec.kind !== 'SOCKET') extra.widget = { name: input.name };
        this.addInput(input.name, type, extra as never);
      }
      for (const slot of layout) {
        const widget = addInputWidget(self, slot, () => {
          this.gg.errors = this.gg.errors.filter((e) => e.input !== slot.name);
          this.graph?.change?.();
          hooks.widgetChanged(self, slot.name);
        });
        if (slot.spec.kind === 'COMBO' && slot.spec.imageUpload) addImageUpload(self, widget);
      }
      entry.output.forEach((type, i) => {
        const extra: Record<string, unknown> = {};
        const tooltip = entry.output_tooltips?.[i];
        if (tooltip) extra.tooltip = tooltip;
        // List outputs are drawn as a grid, as ComfyUI does.
        if (entry.output_is_list[i]) extra.shape = (LiteGraph as unknown as { GRID_SHAPE: number }).GRID_SHAPE;
        this.addOutput(entry.output_name[i] ?? type, type, extra as never);
      });
      const size = this.computeSize();
      this.size = [Math.max(size[0], MIN_WIDTH), size[1]];
    }

    onNodeCreated(): void {
      hooks.nodeCreated(this as unknown as EditorNode);
    }

    override onRemoved(): void {
      removeDomWidgets(this as unknown as EditorNode);
    }

    /** Widget inputs can be fed by a link: "Convert <name> to input" adds the socket, as ComfyUI's menu does. */
    getExtraMenuOptions(_canvas: unknown, options: ({ content: string; callback: () => void } | null)[]): void {
      const self = this as unknown as EditorNode;
      const entries: { content: string; callback: () => void }[] = [];
      for (const slot of layout) {
        const index = widgetInputIndex(self, slot.name);
        if (index === -1) entries.push({ content: `Convert ${slot.name} to input`, callback: () => convertWidgetToInput(self, slot.name, slot.spec.kind) });
        else if (self.inputs[index]?.link == null) entries.push({ content: `Convert ${slot.name} to widget`, callback: () => convertInputToWidget(self, slot.name) });
      }
      const mode = this.mode as number;
      entries.push(
        { content: mode === 4 ? 'Remove bypass' : 'Bypass (Ctrl+B)', callback: () => setMode(self, mode === 4 ? 0 : 4) },
        { content: mode === 2 ? 'Unmute' : 'Mute (Ctrl+M)', callback: () => setMode(self, mode === 2 ? 0 : 2) },
      );
      options.push(null, ...entries);
    }

    override onConnectionsChange(): void {
      syncLinkedWidgets(this as unknown as EditorNode);
    }

    override onDrawForeground(ctx: CanvasRenderingContext2D): void {
      drawNodeOverlay(this as unknown as EditorNode, ctx);
    }

    override serialize() {
      const data = super.serialize() as ReturnType<LGraphNodeType['serialize']> & { widgets_values?: unknown[] };
      if (this.widgets?.length) data.widgets_values = this.widgets.filter(isSerialized).map((w) => w.value as unknown);
      return data;
    }

    override configure(info: Parameters<LGraphNodeType['configure']>[0]): void {
      const { widgets_values: values, ...rest } = info as typeof info & { widgets_values?: unknown };
      assignWidgetValues(this as unknown as EditorNode, values);
      super.configure(rest as unknown as typeof info);
    }
  }
  hooks.beforeRegister?.(GategraphNode, entry);
  LiteGraph.registerNodeType(entry.name, GategraphNode as never);
  // registerNodeType derives the category from a "path/Type" name; ours are plain class types.
  (GategraphNode as unknown as { category: string }).category = entry.category;
}

function setMode(node: EditorNode, mode: number): void {
  (node as { mode: number }).mode = mode;
  node.graph?.change();
  node.setDirtyCanvas(true, true);
}

/** The input slot standing in for a widget (`widget: {name}`), or -1. */
export function widgetInputIndex(node: EditorNode, name: string): number {
  return (node.inputs ?? []).findIndex((input) => (input as { widget?: { name?: string } }).widget?.name === name);
}

/** Adds a socket for a widget, so a link can feed it (the widget then shows it is overridden). */
export function convertWidgetToInput(node: EditorNode, name: string, kind: string): void {
  if (widgetInputIndex(node, name) !== -1) return;
  node.addInput(name, kind, { widget: { name } } as never);
  node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
  node.setDirtyCanvas(true, true);
}

/**
 * The input kind of a widget (INT, FLOAT, STRING, COMBO...) from the node's /object_info entry, or undefined
 * for a name that is no widget-typed input of the node (display-only widgets, the seed's control combo).
 */
export function widgetKind(node: EditorNode, name: string): string | undefined {
  const entry = (node.constructor as unknown as { nodeData?: ObjectInfoEntry }).nodeData;
  const input = entry ? describeInputs(entry).find((i) => i.name === name) : undefined;
  return input && input.spec.kind !== 'SOCKET' ? input.spec.kind : undefined;
}

/** The input slot feeding a widget, converting the widget first when needed (-1: no such widget input). */
export function inputSlotForWidget(node: EditorNode, name: string): number {
  const kind = widgetKind(node, name);
  if (kind === undefined) return -1;
  convertWidgetToInput(node, name, kind);
  return widgetInputIndex(node, name);
}

export function convertInputToWidget(node: EditorNode, name: string): void {
  const index = widgetInputIndex(node, name);
  if (index === -1 || node.inputs[index]?.link != null) return;
  node.removeInput(index);
  syncLinkedWidgets(node);
}

/** A widget whose input socket is linked is not used (the link wins): drawn disabled until unlinked. */
export function syncLinkedWidgets(node: EditorNode): void {
  for (const widget of node.widgets ?? []) {
    const index = widgetInputIndex(node, widget.name);
    const linked = index !== -1 && node.inputs[index]?.link != null;
    (widget as { disabled?: boolean }).disabled = linked;
  }
  node.setDirtyCanvas?.(true, true);
}

/**
 * Puts saved `widgets_values` back into the widgets. Files differ in whether they store the control value
 * after a seed (ComfyUI does; API-minded tools do not), so, like core's converter, the surplus of entries over
 * value widgets decides. Object-shaped `widgets_values` (some extensions) are matched by name.
 */
export function assignWidgetValues(node: EditorNode, values: unknown): void {
  const widgets = (node.widgets ?? []).filter(isSerialized);
  if (values && typeof values === 'object' && !Array.isArray(values)) {
    const byName = values as Record<string, unknown>;
    for (const w of widgets) if (w.name in byName) w.value = byName[w.name];
    return;
  }
  if (!Array.isArray(values)) return;
  let surplus = values.length - widgets.filter((w) => !w.linkedWidget).length;
  let i = 0;
  for (const w of widgets) {
    if (w.linkedWidget) {
      // A combo control's filter text is read with its control, just below.
      if (w.name !== CONTROL_WIDGET_NAME) continue;
      const saved = values[i];
      if (surplus > 0 && (SERIALIZED_CONTROL_VALUES.has(saved) || typeof saved === 'boolean')) {
        w.value = saved === true ? 'randomize' : saved === false ? 'fixed' : saved === 'increment-wrap' ? 'increment' : saved;
        i++;
        surplus--;
        // A combo's control is followed by its filter text in ComfyUI files.
        if (w.linkedWidget.type === 'combo' && surplus > 0 && typeof values[i] === 'string') {
          if (w.filterWidget) w.filterWidget.value = values[i];
          i++;
          surplus--;
        }
      }
      continue;
    }
    if (i >= values.length) break;
    const value = values[i++];
    if (value !== undefined && value !== null) w.value = value;
  }
}
