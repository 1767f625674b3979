/**
 * ComfyUI's node id badge: "#3" drawn in each node's title bar, right after the title, so the id that error
 * messages, the queue panel ("KSampler #3: ...") and API prompts use can be found on the canvas. The setting
 * `Comfy.NodeBadge.NodeIdBadgeMode` ("Show all" / "None", ComfyUI's default is "Show all") turns it off; it is
 * read at each frame, so a change shows at once.
 *
 * The text each node's badge was last drawn with is kept on the node (`ggIdBadge`), for tests and scripts.
 */
import type { EditorApp } from './app.ts';
import { LGraphCanvas, LiteGraph, type LGraphNodeType } from './litegraph.ts';

export const NODE_ID_BADGE = 'Comfy.NodeBadge.NodeIdBadgeMode';

type BadgedNode = LGraphNodeType & { ggIdBadge?: string };

export function installNodeBadges(app: EditorApp): void {
  const proto = LGraphCanvas.prototype as unknown as { drawNode(node: LGraphNodeType, ctx: CanvasRenderingContext2D): void };
  const drawNode = proto.drawNode;
  proto.drawNode = function (this: { ds: { scale: number }; title_text_font: string }, node: BadgedNode, ctx: CanvasRenderingContext2D) {
    drawNode.call(this, node, ctx);
    const show = app.settings?.get(NODE_ID_BADGE) !== 'None';
    // Drawn where litegraph drew a title: not on collapsed nodes (a short box), title-less ones (Reroute), or
    // when zoomed out so far that litegraph leaves titles out.
    const titled = !(node.constructor as { title_mode?: number }).title_mode && !(node.flags as { collapsed?: boolean }).collapsed;
    if (!show || !titled || this.ds.scale < 0.6 || node.id === undefined || node.id === -1) {
      delete node.ggIdBadge;
      return;
    }
    const text = `#${node.id}`;
    const title = LiteGraph.NODE_TITLE_HEIGHT;
    ctx.save();
    ctx.font = this.title_text_font;
    const x = title + ctx.measureText(String(node.getTitle())).width + 8;
    ctx.font = '12px Arial';
    const width = ctx.measureText(text).width + 10;
    // Only where it fits in the title bar (a long title on a narrow node leaves no room), clear of the pin mark.
    if (x + width <= node.size[0] - 20) {
      ctx.fillStyle = 'rgba(0, 0, 0, 0.35)';
      ctx.beginPath();
      ctx.roundRect(x, -title + 6, width, title - 12, 4);
      ctx.fill();
      ctx.fillStyle = '#bbb';
      ctx.textAlign = 'left';
      ctx.textBaseline = 'middle';
      ctx.fillText(text, x + 5, -title / 2);
      node.ggIdBadge = text;
    } else delete node.ggIdBadge;
    ctx.restore();
  };
}
