/**
 * The editor-only nodes ComfyUI workflows contain: Note / MarkdownNote (text on the canvas) and Reroute (a
 * dot that tidies links). They are never sent to the server: core's converter skips them and follows links
 * through reroutes. PrimitiveNode is not drawn here (it is kept as a placeholder that saves unchanged), but
 * the converter still turns its value into the constants of the inputs it feeds.
 */
import { addTextareaWidget } from './dom-widgets.ts';
import { LGraphNode, LiteGraph } from './litegraph.ts';
import { removeDomWidgets } from './dom-widgets.ts';
import { emptyRunState, type EditorNode } from './node-state.ts';

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
