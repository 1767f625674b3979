import { defineNode, float, int, NodeInputError, socket, string } from '@gategraph/core';
import { isSdxlTextModel } from '@gategraph/diffusion';
import { encodeConditioning, MAX_PROMPT_CHARACTERS } from './clip-text-encode.ts';

/** ComfyUI's MAX_RESOLUTION. */
const MAX_RESOLUTION = 16384;

const size = (name: string, fallback: number, tooltip: string) => int({ default: fallback, min: 0, max: MAX_RESOLUTION, tooltip: `${name}: ${tooltip}` });

export const CLIPTextEncodeSDXL = defineNode({
  id: 'CLIPTextEncodeSDXL',
  displayName: 'CLIP Text Encode (SDXL)',
  category: 'advanced/conditioning',
  description:
    'Encodes a prompt for SDXL with its size conditioning: text_l goes to the first text encoder (CLIP-L), text_g to the second (OpenCLIP bigG), ' +
    'and the sizes become the UNet\'s time_ids. Plain CLIPTextEncode on an SDXL CLIP uses the same text for both and the latent\'s size.',
  inputs: {
    clip: socket('CLIP', { tooltip: 'The CLIP of an SDXL checkpoint (two text encoders).' }),
    width: size('width', 1024, 'the original image width SDXL is told (its training images\' size).'),
    height: size('height', 1024, 'the original image height.'),
    crop_w: size('crop_w', 0, 'left edge of the crop SDXL is told (0 = not cropped: centred, whole subjects).'),
    crop_h: size('crop_h', 0, 'top edge of the crop (0 = not cropped).'),
    target_width: size('target_width', 1024, 'the size of the image being made.'),
    target_height: size('target_height', 1024, 'the size of the image being made.'),
    text_g: string({ multiline: true, tooltip: 'The prompt for the second text encoder (OpenCLIP bigG); ComfyUI\'s syntax.' }),
    text_l: string({ multiline: true, tooltip: 'The prompt for the first text encoder (CLIP-L); usually the same text or a shorter one.' }),
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  validate({ text_g, text_l }) {
    for (const [name, text] of [['text_g', text_g], ['text_l', text_l]] as const) {
      if (text !== undefined && text.length > MAX_PROMPT_CHARACTERS) return `${name} is ${text.length} characters long; prompts may have at most ${MAX_PROMPT_CHARACTERS}`;
    }
    return true;
  },
  async execute(inputs, ctx) {
    const name = inputs.clip.model.name;
    if (!isSdxlTextModel(inputs.clip.model)) {
      throw new NodeInputError(`clip: ${name} has one text encoder; CLIPTextEncodeSDXL needs an SDXL checkpoint's CLIP (use CLIPTextEncode)`, 'clip');
    }
    const sdxl = {
      width: inputs.width,
      height: inputs.height,
      cropW: inputs.crop_w,
      cropH: inputs.crop_h,
      targetWidth: inputs.target_width,
      targetHeight: inputs.target_height,
    };
    return [await encodeConditioning(inputs.clip, inputs.text_l, ctx, { textG: inputs.text_g, textInput: 'text_g', sdxl })];
  },
});

export const CLIPTextEncodeSDXLRefiner = defineNode({
  id: 'CLIPTextEncodeSDXLRefiner',
  displayName: 'CLIP Text Encode (SDXL Refiner)',
  category: 'advanced/conditioning',
  description:
    'Encodes a prompt for the SDXL refiner with its conditioning: the aesthetic score (higher = what its training rated more beautiful; ' +
    'ComfyUI uses 6 for prompts without one and 2.5 for negatives) and the image size.',
  inputs: {
    ascore: float({ default: 6.0, min: 0.0, max: 1000.0, step: 0.01, tooltip: 'Aesthetic score the refiner is told (6 is its usual positive, 2.5 its negative).' }),
    width: size('width', 1024, 'the original image width the refiner is told.'),
    height: size('height', 1024, 'the original image height.'),
    text: string({ multiline: true, tooltip: 'The prompt; ComfyUI\'s syntax.' }),
    clip: socket('CLIP', { tooltip: 'The CLIP of an SDXL refiner checkpoint.' }),
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  validate({ text }) {
    return text !== undefined && text.length > MAX_PROMPT_CHARACTERS ? `text is ${text.length} characters long; prompts may have at most ${MAX_PROMPT_CHARACTERS}` : true;
  },
  async execute(inputs, ctx) {
    if (!inputs.clip.model.io.text.sdxlRefiner) {
      throw new NodeInputError(`clip: ${inputs.clip.model.name} is not an SDXL refiner (use CLIPTextEncodeSDXL for the base model, CLIPTextEncode for others)`, 'clip');
    }
    const sdxl = { width: inputs.width, height: inputs.height, cropW: 0, cropH: 0, targetWidth: inputs.width, targetHeight: inputs.height };
    return [await encodeConditioning(inputs.clip, inputs.text, ctx, { sdxl, aestheticScore: inputs.ascore })];
  },
});
