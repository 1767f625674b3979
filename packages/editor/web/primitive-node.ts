/**
 * ComfyUI's Primitive node: an output-only node whose one value widget feeds widget inputs of other nodes. Its output
 * starts untyped ("connect to widget input"); the first link, into a widget input (a widget converted to an
 * input, or one a link was dropped on: widget-link-drop.ts), gives it that widget's type, and it copies that
 * widget (kind, options, value), with a "control after generate" for numbers and combos (widgets.ts moves the
 * value on at each queued prompt). More links of the same type are accepted; the value is written into every
 * widget it feeds, as ComfyUI does. Unlinked, it goes back to untyped. It is never sent to the server: core's
 * converter puts its value (widgets_values[0]) into the inputs it feeds. Saved as ComfyUI saves it (the
 * output keeps `widget: {name}`, so loading a file rebuilds the widget before its value is put back).
 */
import { LGraphNode, LiteGraph, type LGraphNodeType } from './litegraph.ts';
import { emptyRunState, isEditorNode, type EditorNode, type EditorWidget } from './node-state.ts';
import { addControlWidget, CONTROL_WIDGET_NAME } from './widgets.ts';

const UNTYPED = 'connect to widget input';

interface Output {
  name: string;
  type: string;
  links: number[] | null;
  widget?: { name: string };
}
interface LinkInfo {
  target_id: number;
  target_slot: number;
}

export function registerPrimitiveNode(): void {
  class PrimitiveNode extends LGraphNode {
    static override title = 'Primitive';
    comfyClass = 'PrimitiveNode';
    gg = emptyRunState();
    declare widgets: EditorWidget[];

    constructor(title?: string) {
      super(title ?? 'Primitive');
      this.addOutput(UNTYPED, '*');
      this.serialize_widgets = true;
      this.properties = { 'Run widget replace on values': false };
      this.size = [220, 60];
    }

    get #output(): Output {
      return this.outputs[0] as unknown as Output;
    }

    /** Only widget inputs, and once typed only inputs of that type. */
    override onConnectOutput(_slot: number, _type: unknown, slot: { type: string | -1 }): boolean {
      const input = slot as { type: string | -1; widget?: { name: string } };
      if (!input.widget?.name) return false;
      const type = this.#output.type;
      return type === '*' || type === input.type;
    }

    override onConnectionsChange(kind: number, _slot: number, connected: boolean, link: LinkInfo | null): void {
      if (kind !== LiteGraph.OUTPUT) return;
      if (connected && link && !this.widgets?.length) this.#adopt(link);
      else if (!connected && !this.#output.links?.length) this.#reset();
      this.#propagate();
    }

    /** Takes the type and a copy of the widget a link goes into. */
    #adopt(link: LinkInfo): void {
      const target = this.graph?.getNodeById(link.target_id) as unknown as EditorNode | undefined;
      if (!target) return;
      const input = target.inputs?.[link.target_slot] as { type?: string; widget?: { name: string } } | undefined;
      const name = this.#output.widget?.name ?? input?.widget?.name;
      const source = target.widgets?.find((w) => w.name === name);
      if (!name || !source) return;
      this.#output.type = String(input?.type ?? this.#output.type);
      this.#output.name = name;
      this.#output.widget = { name };
      // A multiline text (a DOM textarea) becomes a one-line text here, as ComfyUI's primitive shows it.
      const type = (source.type as string | undefined) === 'customtext' || source.type === undefined ? 'text' : source.type;
      const widget = this.addWidget(type as never, name, source.value as never, () => {
        this.#propagate();
        this.graph?.change();
      }, { ...(source.options as object) } as never) as unknown as EditorWidget;
      widget.value = source.value;
      // ComfyUI gives a number or combo primitive its own "control after generate": randomize when the widget
      // it copies has one (a seed), else fixed. It is saved after the value in widgets_values, as ComfyUI does.
      if (type === 'number' || type === 'combo') {
        const seeded = target.widgets?.some((w) => w.name === CONTROL_WIDGET_NAME && w.linkedWidget === source);
        addControlWidget(this as unknown as EditorNode, widget, seeded ? 'randomize' : 'fixed', () => this.graph?.change());
      }
      this.setSize([Math.max(this.size[0], 220), this.computeSize()[1]]);
    }

    #reset(): void {
      this.widgets = [] as never;
      this.#output.type = '*';
      this.#output.name = UNTYPED;
      delete this.#output.widget;
      this.setSize([this.size[0], this.computeSize()[1]]);
    }

    /** Writes the value into every widget the primitive feeds (they show it, dimmed, as the linked value). */
    #propagate(): void {
      const widget = this.widgets?.[0];
      if (!widget || !this.graph) return;
      for (const id of this.#output.links ?? []) {
        const link = (this.graph as unknown as { links: Record<number, LinkInfo> }).links[id];
        const target = link ? (this.graph.getNodeById(link.target_id) as unknown as LGraphNodeType | null) : null;
        if (!isEditorNode(target)) continue;
        const name = (target.inputs?.[link!.target_slot] as { widget?: { name: string } } | undefined)?.widget?.name ?? this.#output.name;
        const fed = target.widgets?.find((w) => w.name === name);
        if (fed) fed.value = widget.value;
      }
      this.setDirtyCanvas(true, true);
    }

    override onDrawForeground(ctx: CanvasRenderingContext2D): void {
      if (this.widgets?.length) return;
      ctx.fillStyle = '#999';
      ctx.font = '12px Arial';
      ctx.fillText('drag the output onto widgets', 10, this.size[1] - 10);
    }
  }
  LiteGraph.registerNodeType('PrimitiveNode', PrimitiveNode as never);
  (PrimitiveNode as unknown as { category: string }).category = 'utils';
}
