import { defineNode, socket, string } from '@gategraph/core';
import { encodePrompt, truncationWarning } from '@gategraph/diffusion';
import type { Conditioning, ConditioningEntry } from '../types.ts';

export const CLIPTextEncode = defineNode({
  id: 'CLIPTextEncode',
  displayName: 'CLIP Text Encode (Prompt)',
  category: 'conditioning',
  description: 'Encodes a prompt with a checkpoint\'s text encoder into the conditioning a sampler follows.',
  inputs: {
    text: string({ multiline: true, tooltip: 'The prompt. Text beyond the encoder\'s token limit (75 tokens for SD) is dropped, with a warning.' }),
    clip: socket('CLIP', { tooltip: 'The text encoder, from the same checkpoint as the MODEL it will guide.' }),
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING', tooltip: 'The encoded prompt.' }],
  async execute({ text, clip }, ctx) {
    const model = clip.model;
    const encoded = await encodePrompt(model, text);
    if (encoded.truncated !== undefined) ctx.log.warn(truncationWarning(model.tokenizer.maxLength, encoded.truncated));
    const entry: ConditioningEntry = {
      hiddenStates: encoded.hiddenStates,
      ...(encoded.pooled ? { pooled: encoded.pooled } : {}),
      text,
      modelDir: model.dir,
    };
    const conditioning: Conditioning = [entry];
    return [conditioning];
  },
});
