import { defineNode, int, NodeInputError, socket } from '@gategraph/core';
import { chooseClipLayer, ClipLayerError, clipLayerCount, exportedLayerCount } from '@gategraph/diffusion';
import { checkClipLayer } from '../queue-checks.ts';

/** ComfyUI's CLIPSetLastLayer (nodes.py): same input, range and output; the layer is applied by CLIPTextEncode. */
export const CLIPSetLastLayer = defineNode({
  id: 'CLIPSetLastLayer',
  displayName: 'CLIP Set Last Layer',
  category: 'conditioning',
  description:
    'Clip skip: prompts encoded with the returned CLIP use the output of an earlier layer of the text encoder (-1 = the last layer, ' +
    '-2 = the one before it, ...), normalised by its final layer norm, as ComfyUI does. SD-2.x models encode with -2 by default; ' +
    'their exported text encoder has no layer -1.',
  inputs: {
    clip: socket('CLIP'),
    stop_at_clip_layer: int({ default: -1, min: -24, max: -1, step: 1 }),
  },
  outputs: [{ type: 'CLIP', name: 'CLIP' }],
  // A layer the export does not have is refused when the prompt is queued (see queue-checks.ts).
  validate({ stop_at_clip_layer }, context) {
    return checkClipLayer(stop_at_clip_layer, context);
  },
  execute({ clip, stop_at_clip_layer }, ctx) {
    const model = clip.model;
    const layers = clipLayerCount(model.io.text.hiddenSize, exportedLayerCount(model.textEncoder));
    try {
      chooseClipLayer(stop_at_clip_layer, layers); // refuses here what CLIPTextEncode could not encode
    } catch (err) {
      if (err instanceof ClipLayerError) throw new NodeInputError(err.message, 'stop_at_clip_layer');
      throw err;
    }
    if (-stop_at_clip_layer > layers.full) {
      ctx.log.warn(`stop_at_clip_layer ${stop_at_clip_layer} is beyond the ${layers.full} layers of ${model.name}'s text encoder: the last layer is used, as ComfyUI does`);
    }
    return [clip.withLastLayer(stop_at_clip_layer)];
  },
});
