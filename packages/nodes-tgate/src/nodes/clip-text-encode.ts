import { defineNode, NodeInputError, socket, string } from '@gategraph/core';
import { encodePrompt, truncationWarning } from '@gategraph/diffusion';
import type { Conditioning, ConditioningEntry } from '../types.ts';

/**
 * The longest prompt text taken, in characters: far more than any encoder reads (SD reads 75 tokens a chunk),
 * and checked before tokenizing, so a pasted book cannot hold the server's event loop for seconds.
 */
export const MAX_PROMPT_CHARACTERS = 20_000;

function tooLong(text: string): string | undefined {
  return text.length > MAX_PROMPT_CHARACTERS
    ? `text is ${text.length.toLocaleString('en-US')} characters long; prompts may have at most ${MAX_PROMPT_CHARACTERS.toLocaleString('en-US')}`
    : undefined;
}

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
  validate({ text }) {
    return (text !== undefined && tooLong(text)) || true;
  },
  async execute({ text, clip }, ctx) {
    // A text that came over a link was not seen by validate.
    const problem = tooLong(text);
    if (problem) throw new NodeInputError(problem, 'text');
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
