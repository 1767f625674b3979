/**
 * Prompt -> CLIP hidden states (what CLIPTextEncode's CONDITIONING carries).
 */
import * as ort from 'onnxruntime-node';
import { fromOrtTensor } from './sessions.ts';
import type { Tensor } from './tensor.ts';
import type { DiffusionModel } from './model-folder.ts';
import type { ClipTokenizer } from './tokenizer.ts';
import type { ModelComponent, TextEncoderIo } from './model-folder.ts';

export interface EncodedPrompt {
  /** last_hidden_state: [1, L, D] (L = 77 for SD). */
  hiddenStates: Tensor;
  /** pooler_output / text_embeds: [1, D'], when the model has it (SDXL's second encoder needs it). */
  pooled?: Tensor;
  /** The text that did not fit in L tokens, when the prompt was cut. */
  truncated?: string;
  /** The ids fed to the model (length L). */
  ids: number[];
}

/** What encodePrompt needs from a model (a DiffusionModel has it all). */
export type TextEncoderModel = Pick<DiffusionModel, 'tokenizer' | 'textEncoder'> & { io: { text: TextEncoderIo } };

/** Token ids as the tensor dtype the ONNX model declares (int32 or int64). */
export function inputIdsTensor(ids: readonly number[], type: 'int32' | 'int64'): ort.Tensor {
  return type === 'int64'
    ? new ort.Tensor('int64', BigInt64Array.from(ids, (v) => BigInt(v)), [1, ids.length])
    : new ort.Tensor('int32', Int32Array.from(ids), [1, ids.length]);
}

export async function encodePrompt(model: TextEncoderModel, text: string): Promise<EncodedPrompt> {
  return encodeWith(model.tokenizer, model.textEncoder, model.io.text, text);
}

export async function encodeWith(tokenizer: ClipTokenizer, encoder: ModelComponent, io: TextEncoderIo, text: string): Promise<EncodedPrompt> {
  const tok = tokenizer.encode(text);
  if (tok.ids.length !== io.sequenceLength) {
    throw new RangeError(`The tokenizer gave ${tok.ids.length} ids but the text encoder takes ${io.sequenceLength}`);
  }
  const fetches = io.pooled ? [io.lastHiddenState, io.pooled] : [io.lastHiddenState];
  const out = await encoder.run({ [io.inputIds]: inputIdsTensor(tok.ids, io.inputIdsType) }, fetches);
  const result: EncodedPrompt = { hiddenStates: fromOrtTensor(io.lastHiddenState, out[io.lastHiddenState]!), ids: tok.ids };
  const pooled = io.pooled ? out[io.pooled] : undefined;
  if (io.pooled && pooled) result.pooled = fromOrtTensor(io.pooled, pooled);
  if (tok.truncated !== undefined) result.truncated = tok.truncated;
  return result;
}
