/**
 * The dark theme ComfyUI users know: node and widget colours, and a colour per socket type (links take the
 * colour of their type). Types no palette knows get a stable colour derived from their name.
 */
import { LGraphCanvas, LiteGraph, type LGraphCanvasType } from './litegraph.ts';

/** Socket colours by type, as in ComfyUI's dark palette, plus ours. */
export const TYPE_COLORS: Record<string, string> = {
  CLIP: '#FFD500',
  CLIP_VISION: '#A8DADC',
  CLIP_VISION_OUTPUT: '#ad7452',
  CONDITIONING: '#FFA931',
  CONTROL_NET: '#6EE7B7',
  IMAGE: '#64B5F6',
  LATENT: '#FF9CF9',
  MASK: '#81C784',
  MODEL: '#B39DDB',
  STYLE_MODEL: '#C2FFAE',
  VAE: '#FF6E6E',
  NOISE: '#B0B0B0',
  GUIDER: '#66FFFF',
  SAMPLER: '#ECB4B4',
  SIGMAS: '#CDFFCD',
  TAESD: '#DCC274',
  GATE_SCHEDULE: '#4DD0E1',
  INT: '#29B6F6',
  FLOAT: '#AED581',
  STRING: '#9CCC65',
  BOOLEAN: '#FFB74D',
};

/** The colour of a socket type; unknown types get a hue hashed from the name, so it is stable across reloads. */
export function typeColor(type: string): string {
  const known = TYPE_COLORS[type] ?? TYPE_COLORS[type.toUpperCase()];
  if (known) return known;
  let hash = 0;
  for (const char of type) hash = (hash * 31 + char.charCodeAt(0)) | 0;
  return `hsl(${Math.abs(hash) % 360}, 55%, 65%)`;
}

/** Applies the theme to litegraph's globals (before any canvas is created) and to a canvas. */
export function applyTheme(canvas?: LGraphCanvasType): void {
  Object.assign(LiteGraph, {
    NODE_TITLE_COLOR: '#999',
    NODE_SELECTED_TITLE_COLOR: '#FFF',
    NODE_TEXT_SIZE: 14,
    NODE_TEXT_COLOR: '#AAA',
    NODE_SUBTEXT_SIZE: 12,
    NODE_DEFAULT_COLOR: '#333',
    NODE_DEFAULT_BGCOLOR: '#353535',
    NODE_DEFAULT_BOXCOLOR: '#666',
    NODE_DEFAULT_SHAPE: 'box',
    NODE_BOX_OUTLINE_COLOR: '#FFF',
    DEFAULT_SHADOW_COLOR: 'rgba(0,0,0,0.5)',
    WIDGET_BGCOLOR: '#222',
    WIDGET_OUTLINE_COLOR: '#666',
    WIDGET_TEXT_COLOR: '#DDD',
    WIDGET_SECONDARY_TEXT_COLOR: '#999',
    LINK_COLOR: '#9A9',
    EVENT_LINK_COLOR: '#A86',
    CONNECTING_LINK_COLOR: '#AFA',
    // What releasing a link on empty canvas opens is link-release.ts's (it follows the user's setting).
    release_link_on_empty_shows_menu: false,
  });
  for (const [type, color] of Object.entries(TYPE_COLORS)) (LGraphCanvas as unknown as { link_type_colors: Record<string, string> }).link_type_colors[type] = color;
  if (!canvas) return;
  const c = canvas as unknown as Record<string, unknown>;
  c.clear_background_color = '#202020';
  c.background_image = gridImage();
  c.render_shadows = false;
  c.render_canvas_border = false;
  c.node_title_color = '#999';
  c.default_link_color = '#9A9';
  c.round_radius = 8;
  c.title_text_font = '600 14px Inter, "Segoe UI", Arial, sans-serif';
  c.inner_text_font = 'normal 12px Inter, "Segoe UI", Arial, sans-serif';
  c.default_connection_color_byType = { ...TYPE_COLORS };
  c.default_connection_color_byTypeOff = { ...TYPE_COLORS };
  c.links_render_mode = LiteGraph.SPLINE_LINK;
}

/** A subtle dotted grid as the canvas background (a data URL: no asset to ship). */
function gridImage(): string {
  const size = 20;
  const canvas = document.createElement('canvas');
  canvas.width = size;
  canvas.height = size;
  const ctx = canvas.getContext('2d')!;
  ctx.fillStyle = '#202020';
  ctx.fillRect(0, 0, size, size);
  ctx.fillStyle = '#2c2c2c';
  ctx.fillRect(0, 0, 2, 2);
  return canvas.toDataURL();
}
