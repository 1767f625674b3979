import { defineNode, NodeInputError, socket, string, type ExecutionContext } from '@gategraph/core';
import {
  ClipLayerError,
  EmbeddingFileError,
  encodePrompt,
  encodeSdxlPrompt,
  isSdxlTextModel,
  PromptWeightError,
  truncationWarning,
  type EncodedPrompt,
  type SdxlSizes,
} from '@gategraph/diffusion';
import { embeddingFolders } from '../folders.ts';
import type { ClipRef, Conditioning, ConditioningEntry } from '../types.ts';

/**
 * The longest prompt text taken, in characters: far more than any encoder reads (16 chunks of 75 tokens at most),
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
  description: 'Encodes a prompt with a checkpoint\'s text encoder into the conditioning a sampler follows, reading it as ComfyUI does.',
  inputs: {
    text: string({
      multiline: true,
      tooltip:
        'The prompt, in ComfyUI\'s syntax: (words) weighs 1.1, (words:1.3) 1.3, \\( and \\) are plain parentheses, embedding:NAME is a textual inversion ' +
        'from models/embeddings (.safetensors). Past 75 tokens the prompt is encoded in chunks of 75; a model whose UNet takes 77 tokens only (like the ' +
        'embedded tiny-sd) keeps the first chunk and warns about the rest.',
    }),
    clip: socket('CLIP', { tooltip: 'The text encoder, from the same checkpoint as the MODEL it will guide (through CLIPSetLastLayer for clip skip).' }),
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING', tooltip: 'The encoded prompt.' }],
  validate({ text }) {
    return (text !== undefined && tooLong(text)) || true;
  },
  async execute({ text, clip }, ctx) {
    // A text that came over a link was not seen by validate.
    const problem = tooLong(text);
    if (problem) throw new NodeInputError(problem, 'text');
    return [await encodeConditioning(clip, text, ctx)];
  },
});

/**
 * A prompt encoded as the CLIP's model does it (SDXL: both encoders, the second's pooled output; others: the
 * one encoder), with ComfyUI's syntax; problems in the text or the clip skip are the user's, on those inputs.
 * `textG` is SDXL's second encoder's own text (CLIPTextEncodeSDXL's text_g).
 */
export async function encodeConditioning(
  clip: ClipRef,
  text: string,
  ctx: ExecutionContext,
  options: { textG?: string; textInput?: string; sdxl?: SdxlSizes; aestheticScore?: number } = {},
): Promise<Conditioning> {
  const model = clip.model;
  const encodeOptions = {
    ...(clip.stopAtClipLayer !== undefined ? { stopAtClipLayer: clip.stopAtClipLayer } : {}),
    embeddingFolders: embeddingFolders(ctx.paths.models),
  };
  // SDXL's refiner: its one encoder conditions as the base model's second (raw penultimate layer, pooled output).
  const refiner = model.io.text.sdxlRefiner === true;
  let encoded: EncodedPrompt;
  try {
    encoded = isSdxlTextModel(model)
      ? await encodeSdxlPrompt(model, text, { ...encodeOptions, ...(options.textG !== undefined ? { textG: options.textG } : {}) })
      : await encodePrompt(model, text, { ...encodeOptions, ...(refiner ? { rawHiddenStates: true } : {}) });
  } catch (err) {
    if (err instanceof PromptWeightError || err instanceof EmbeddingFileError) throw new NodeInputError(err.message, options.textInput ?? 'text');
    if (err instanceof ClipLayerError) throw new NodeInputError(err.message, 'clip');
    throw err;
  }
  for (const warning of encoded.warnings) ctx.log.warn(warning);
  if (encoded.truncated !== undefined) ctx.log.warn(truncationWarning(encoded.hiddenStates.shape[1]!, encoded.truncated));
  const entry: ConditioningEntry = {
    hiddenStates: encoded.hiddenStates,
    ...(encoded.pooled ? { pooled: encoded.pooled } : {}),
    ...(options.sdxl ? { sdxl: options.sdxl } : {}),
    ...(options.aestheticScore !== undefined ? { aestheticScore: options.aestheticScore } : {}),
    text: options.textG !== undefined && options.textG !== text ? `${text} | ${options.textG}` : text,
    modelDir: model.dir,
  };
  return [entry];
}
