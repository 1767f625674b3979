/**
 * ComfyUI's clip skip (CLIPSetLastLayer's `stop_at_clip_layer`, SDClipModel.set_clip_options in comfy/sd1_clip.py)
 * on the text encoders diffusers exports, which are not always the whole model ComfyUI loads:
 *
 * - ComfyUI with `stop = -k` returns the output of layer `N - k` (0-based) of the N-layer text transformer,
 *   normalised by the final layer norm (`layer_norm_hidden_state`, true for SD-1.x's CLIP-L and SD-2.x's
 *   OpenCLIP-H). -1 is the last layer, the same as no clip skip. A `k` beyond N means "the last layer" (ComfyUI
 *   falls back to it silently). The pooled output always comes from the last layer.
 * - ComfyUI's default is -1 for SD-1.x and -2 for SD-2.x (SD2ClipHModel's "penultimate").
 * - SD-1.x exports hold all 12 CLIP-L layers: `stop` maps as it is.
 * - SD-2.x exports hold 23 of OpenCLIP ViT-H's 24 layers: diffusers' conversion dropped the last one, since SD-2
 *   conditions on the penultimate. Its last_hidden_state is ComfyUI's default (-2); `-k` is layer 24 - k, i.e.
 *   the export's own `-(k - 1)`; -1 (the 24th layer) is not in the file and is refused. Recognised by a width of
 *   1024 and 23 layers (`sd2-openclip`); any other export is taken as the whole model.
 */

/** How an exported text encoder relates to the model ComfyUI loads. */
export interface ClipLayerCount {
  /** Layers in the exported graph. */
  readonly exported: number;
  /** Layers of the model ComfyUI loads for it (more than `exported` when the export dropped the last ones). */
  readonly full: number;
}

/** diffusers' SD-2.x text encoder: OpenCLIP ViT-H/14's text tower without its last layer. */
const SD2_WIDTH = 1024;
const SD2_EXPORTED_LAYERS = 23;

export function clipLayerCount(width: number, exported: number): ClipLayerCount {
  return width === SD2_WIDTH && exported === SD2_EXPORTED_LAYERS ? { exported, full: exported + 1 } : { exported, full: exported };
}

/**
 * The text encoder's own last_hidden_state, the normalised output of layer `index` (0-based, of the export), or
 * its raw output (`hidden`: before the final layer norm, SDXL's encoders: ComfyUI's layer_norm_hidden_state off).
 */
export type ClipLayerChoice =
  | { readonly kind: 'export' }
  | { readonly kind: 'layer'; readonly index: number }
  | { readonly kind: 'hidden'; readonly index: number };

/**
 * SDXL's clip skip: both encoders return the raw output of layer N + stop (ComfyUI's SDXL default -2, the
 * penultimate; -1 the last layer's output without the final norm), a `stop` past the first layer meaning the
 * last layer, as ComfyUI.
 */
export function chooseRawLayer(stop: number, layers: number): ClipLayerChoice {
  if (!(Number.isInteger(stop) && stop < 0)) throw new ClipLayerError(`stop_at_clip_layer must be a negative whole number (-1 = the last layer); got ${stop}`);
  return { kind: 'hidden', index: -stop > layers ? layers - 1 : layers + stop };
}

/** A clip skip the export cannot produce, with the sentence that says why. */
export class ClipLayerError extends RangeError {
  override name = 'ClipLayerError';
}

/** What ComfyUI's `stop_at_clip_layer` (a negative integer) selects in this export. */
export function chooseClipLayer(stop: number, layers: ClipLayerCount): ClipLayerChoice {
  if (!(Number.isInteger(stop) && stop < 0)) throw new ClipLayerError(`stop_at_clip_layer must be a negative whole number (-1 = the last layer); got ${stop}`);
  const { exported, full } = layers;
  // ComfyUI: abs(layer) > num_layers means the last layer.
  const index = -stop > full ? full - 1 : full + stop;
  if (index === exported - 1) return { kind: 'export' };
  if (index >= exported) {
    throw new ClipLayerError(
      `stop_at_clip_layer ${stop} selects layer ${index + 1} of the ${full}-layer text encoder ComfyUI loads, which this export leaves out ` +
        `(diffusers' SD-2.x export keeps ${exported} layers and ends at the penultimate, ComfyUI's SD-2 default): use ${-(full - exported) - 1} or lower`,
    );
  }
  return { kind: 'layer', index };
}
