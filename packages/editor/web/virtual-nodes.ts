/**
 * The editor-only nodes ComfyUI workflows contain: Note / MarkdownNote (text on the canvas) and Reroute (a
 * dot that tidies links). They are never sent to the server: core's converter skips them and follows links
 * through reroutes. The Primitive node, also editor-only, is in primitive-node.ts.
 */
import { addTextareaWidget } from './dom-widgets.ts';
import { LGraphNode, LiteGraph } from './litegraph.ts';
import { removeDomWidgets } from './dom-widgets.ts';
import { emptyRunState, type EditorNode } from './node-state.ts';
import type { ObjectInfoEntry } from './object-info.ts';

/**
 * The editor-only nodes as /object_info-shaped entries, so the search box and the node library offer them
 * beside the server's classes (ComfyUI lists them too). No inputs or outputs are declared: they are never
 * offered for a dragged link's type.
 */
export const EDITOR_ONLY_ENTRIES: ObjectInfoEntry[] = (
  [
    ['Note', 'Note', 'Text on the canvas; not run, saved with the workflow'],
    ['MarkdownNote', 'Markdown Note', 'Markdown text on the canvas; not run'],
    ['Reroute', 'Reroute', 'A dot to route links through; passes its input on'],
    ['PrimitiveNode', 'Primitive', 'One value feeding several widget inputs: drag its output onto widgets'],
  ] as const
).map(([name, display_name, description]) => ({
  name,
  display_name,
  description,
  category: 'utils',
  python_module: 'editor',
  output_node: false,
  input: { required: {} },
  output: [],
  output_name: [],
  output_is_list: [],
}) as unknown as ObjectInfoEntry);

export function registerVirtualNodes(): void {
  for (const type of ['Note', 'MarkdownNote']) {
    class NoteNode extends LGraphNode {
      static override title = type === 'Note' ? 'Note' : 'Markdown Note';
      comfyClass = type;
      gg = emptyRunState();
      constructor(title?: string) {
        super(title ?? NoteNode.title);
        this.color = '#432';
        this.bgcolor = '#653';
        this.serialize_widgets = true;
        this.properties = { text: '' };
        addTextareaWidget(this as unknown as EditorNode, 'text', '', { placeholder: 'Notes are not run; they are saved with the workflow' });
        this.size = [400, 160];
      }
      override onRemoved(): void {
        removeDomWidgets(this as unknown as EditorNode);
      }
    }
    LiteGraph.registerNodeType(type, NoteNode as never);
    (NoteNode as unknown as { category: string }).category = 'utils';
  }

  class RerouteNode extends LGraphNode {
    static override title = 'Reroute';
    comfyClass = 'Reroute';
    gg = emptyRunState();
    constructor(title?: string) {
      super(title ?? 'Reroute');
      this.addInput('', '*');
      this.addOutput('', '*');
      this.size = [75, 26];
      (this as unknown as { collapsable: boolean }).collapsable = false;
      (this.constructor as unknown as { collapsable: boolean }).collapsable = false;
    }
  }
  (RerouteNode as unknown as { title_mode: number }).title_mode = LiteGraph.NO_TITLE;
  LiteGraph.registerNodeType('Reroute', RerouteNode as never);
  (RerouteNode as unknown as { category: string }).category = 'utils';
}
