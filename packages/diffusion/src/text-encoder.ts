/**
 * Prompt -> CLIP hidden states (what CLIPTextEncode's CONDITIONING carries), as ComfyUI's CLIPTextEncode makes them
 * (SDTokenizer.tokenize_with_weights, then ClipTokenWeightEncoder.encode_token_weights, comfy/sd1_clip.py):
 *
 * - the prompt is parsed for weights (prompt-weights.ts) and laid out in chunks of 77 positions (prompt-chunks.ts);
 * - each chunk is encoded on its own and the chunks are concatenated along the sequence: a prompt of 1-75 tokens
 *   gives [1, 77, D], a longer one [1, 154, D], [1, 231, D] ...; the pooled output is the first chunk's;
 * - when any position weighs other than 1.0, an empty prompt ([start, end, pad...]) is encoded the same way and
 *   each position j whose weight w differs from 1.0 becomes z_empty[j] + (z[j] - z_empty[j]) * w (ComfyUI's
 *   default "comfy" weighting; positions weighing 1.0, start/end/pad included, are left as encoded);
 * - `stopAtClipLayer` is CLIPSetLastLayer's clip skip (clip-skip.ts), `embedding:NAME` a textual inversion
 *   (embeddings.ts), both through derived encoder graphs (text-encoder-variants.ts).
 *
 * A UNet whose encoder_hidden_states has a fixed length (77, like the embedded tiny-sd) takes one chunk: the rest
 * is cut and reported in `truncated`.
 */
import * as ort from 'onnxruntime-node';
import { chooseClipLayer, chooseRawLayer, clipLayerCount, type ClipLayerChoice } from './clip-skip.ts';
import { findEmbeddingFile, readEmbeddingFile } from './embeddings.ts';
import type { DiffusionModel, TextEncoderIo, UnetIo } from './model-folder.ts';
import { chunkPrompt, type ChunkEntry, type EmbeddingVectors } from './prompt-chunks.ts';
import { parseFiniteWeights } from './prompt-weights.ts';
import { fromOrtTensor, type FeedValue } from './sessions.ts';
import type { Tensor } from './tensor.ts';
import { exportedLayerCount, readTableRows, textEncoderVariant } from './text-encoder-variants.ts';
import type { ClipTokenizer } from './tokenizer.ts';

/**
 * The most 77-token chunks a prompt is encoded in (1,200 prompt tokens) on a UNet that takes any length; more is
 * cut with a warning. Each chunk widens every cross-attention of every UNet step, and against a one-chunk negative
 * prompt a 16-chunk positive no longer shares the CFG call (see sampling.ts): far past what CLIP-conditioned
 * models follow, a prompt would cost steps and memory without changing the image in a way anyone asked for.
 */
export const MAX_PROMPT_CHUNKS = 16;

export interface EncodeOptions {
  /** ComfyUI's CLIPSetLastLayer `stop_at_clip_layer` (-1 = last layer); absent: the model's default. */
  stopAtClipLayer?: number;
  /** Folders searched for `embedding:NAME`; absent: `embedding:` is plain text, as in ComfyUI without such folders. */
  embeddingFolders?: readonly string[];
  /** Chunks to keep; default promptChunkLimit(model). */
  maxChunks?: number;
  /**
   * Return the chosen layer's raw output (before the final layer norm), as SDXL's encoders do (ComfyUI's
   * layer_norm_hidden_state false); the default layer is then the penultimate (-2). Read from the export's
   * `hidden_states.N` outputs.
   */
  rawHiddenStates?: boolean;
  /**
   * Which tensor of an embedding file holding one per text encoder this encoder reads (`clip_l`, `clip_g`,
   * `clip_h`); default by width (1024: `clip_h`, else `clip_l`). SDXL's encoders pass theirs.
   */
  embeddingKey?: string;
}

export interface EncodedPrompt {
  /** [1, 77 * chunks, D]: the chunks' last_hidden_state (or clip-skip layer), weighted, concatenated. */
  hiddenStates: Tensor;
  /** pooler_output of the first chunk, [1, D'], when the model has it (SDXL's second encoder needs it). */
  pooled?: Tensor;
  /** The prompt text of the chunks that were cut, when there were more than the model takes. */
  truncated?: string;
  /** The ids fed to the encoder, all chunks in a row (an embedding's positions hold a placeholder id). */
  ids: number[];
  chunks: number;
  /** Things the user should know (unknown embeddings, embeddings for another text encoder). */
  warnings: string[];
}

/** What encodePrompt needs from a model (a DiffusionModel has it all; the UNet's io sets the chunk limit). */
export type TextEncoderModel = Pick<DiffusionModel, 'tokenizer' | 'textEncoder'> & {
  io: { text: TextEncoderIo; unet?: Pick<UnetIo, 'sequenceLength'> };
};

/** Chunks the model's UNet takes: as many as fit a fixed encoder_hidden_states length, else MAX_PROMPT_CHUNKS. */
export function promptChunkLimit(model: TextEncoderModel): number {
  const unet = model.io.unet;
  if (!unet) return 1;
  if (unet.sequenceLength === undefined) return MAX_PROMPT_CHUNKS;
  return Math.max(1, Math.floor(unet.sequenceLength / model.io.text.sequenceLength));
}

/** Token ids as the tensor dtype the ONNX model declares (int32 or int64). */
export function inputIdsTensor(ids: readonly number[], type: 'int32' | 'int64'): ort.Tensor {
  return type === 'int64'
    ? new ort.Tensor('int64', BigInt64Array.from(ids, (v) => BigInt(v)), [1, ids.length])
    : new ort.Tensor('int32', Int32Array.from(ids), [1, ids.length]);
}

export async function encodePrompt(model: TextEncoderModel, text: string, options: EncodeOptions = {}): Promise<EncodedPrompt> {
  const io = model.io.text;
  const tok = model.tokenizer;
  const segments = parseFiniteWeights(text);
  const { chunks: all, warnings } = chunkPrompt(segments, {
    tokenize: (t) => tok.tokenIds(t),
    startId: tok.bosId,
    endId: tok.eosId,
    padId: tok.padId,
    maxLength: io.sequenceLength,
    ...(options.embeddingFolders ? { embedding: embeddingLookup(options.embeddingFolders, io.hiddenSize, options.embeddingKey) } : {}),
  });
  const limit = options.maxChunks ?? promptChunkLimit(model);
  if (!(Number.isInteger(limit) && limit >= 1)) throw new RangeError(`maxChunks must be a whole number >= 1; got ${limit}`);
  const chunks = all.slice(0, limit);
  warnings.push(...widthWarnings(chunks, io.hiddenSize));

  const layer: ClipLayerChoice = options.rawHiddenStates
    ? chooseRawLayer(options.stopAtClipLayer ?? -2, exportedLayerCount(model.textEncoder))
    : options.stopAtClipLayer === undefined
      ? { kind: 'export' }
      : chooseClipLayer(options.stopAtClipLayer, clipLayerCount(io.hiddenSize, exportedLayerCount(model.textEncoder)));
  const withEmbeddings = chunks.some((c) => c.some((e) => e.kind === 'embedding' && e.vector.length === io.hiddenSize));
  const encode = await chunkEncoder(model, layer, withEmbeddings);

  const encoded: EncodedChunk[] = [];
  for (const chunk of chunks) encoded.push(await encode(chunk));
  if (chunks.some((c) => c.some((e) => e.weight !== 1.0))) {
    const empty = await encode(emptyChunk(tok, io.sequenceLength));
    chunks.forEach((chunk, k) => applyWeights(encoded[k]!.hidden, empty.hidden, chunk, io.hiddenSize));
  }

  const L = io.sequenceLength;
  const D = io.hiddenSize;
  const data = new Float32Array(chunks.length * L * D);
  encoded.forEach((e, k) => data.set(e.hidden, k * L * D));
  const result: EncodedPrompt = {
    hiddenStates: { data, shape: [1, chunks.length * L, D] },
    ids: encoded.flatMap((e) => e.ids),
    chunks: chunks.length,
    warnings,
  };
  if (encoded[0]!.pooled) result.pooled = encoded[0]!.pooled;
  if (all.length > chunks.length) result.truncated = describe(all.slice(chunks.length).flat(), tok);
  return result;
}

/** ComfyUI's per-position weighting against the empty prompt, in place. */
function applyWeights(z: Float32Array, empty: Float32Array, chunk: readonly ChunkEntry[], D: number): void {
  chunk.forEach((entry, j) => {
    const w = entry.weight;
    if (w === 1.0) return;
    for (let d = j * D; d < (j + 1) * D; d++) z[d] = (z[d]! - empty[d]!) * w + empty[d]!;
  });
}

function emptyChunk(tok: ClipTokenizer, length: number): ChunkEntry[] {
  const ids = [tok.bosId, tok.eosId, ...new Array<number>(Math.max(0, length - 2)).fill(tok.padId)];
  return ids.map((id) => ({ kind: 'token', id, weight: 1.0, special: true }));
}

interface EncodedChunk {
  /** [L * D] */
  hidden: Float32Array;
  pooled?: Tensor;
  ids: number[];
}

/**
 * Runs one chunk through the graph the prompt needs: the model's own encoder, or a derived one for clip skip
 * and/or token embeddings fed from here.
 */
async function chunkEncoder(model: TextEncoderModel, layer: ClipLayerChoice, withEmbeddings: boolean): Promise<(chunk: readonly ChunkEntry[]) => Promise<EncodedChunk>> {
  const io = model.io.text;
  const tok = model.tokenizer;
  const L = io.sequenceLength;
  const D = io.hiddenSize;
  // SDXL: the raw output of a layer, which optimum's exports expose as hidden_states.<layer + 1>.
  const hiddenName = layer.kind === 'hidden' ? `hidden_states.${layer.index + 1}` : io.lastHiddenState;
  if (layer.kind === 'hidden' && !model.textEncoder.output(hiddenName)) {
    throw new Error(
      `${model.textEncoder.name}/model.onnx has no output "${hiddenName}" (the output of layer ${layer.index + 1} before the final norm, which SDXL conditions on); export it with optimum-cli export onnx, which exposes every layer's hidden_states`,
    );
  }
  const fetches = io.pooled ? [hiddenName, io.pooled] : [hiddenName];
  let run: (feeds: Record<string, FeedValue>) => Promise<Record<string, ort.OnnxValue>> = (feeds) => model.textEncoder.run(feeds, fetches);
  let table: { input: string; rows: (ids: number[]) => Map<number, Float32Array> } | undefined;
  if (layer.kind === 'layer' || withEmbeddings) {
    const variant = await textEncoderVariant(model.textEncoder, {
      ...(layer.kind === 'layer' ? { hiddenLayer: layer.index } : {}),
      ...(withEmbeddings ? { tokenEmbeddingsInput: true } : {}),
    });
    if (layer.kind === 'layer' && variant.report.layers !== exportedLayerCount(model.textEncoder)) {
      throw new Error(`text_encoder/config.json says ${exportedLayerCount(model.textEncoder)} layers but its graph has ${variant.report.layers}: re-export the text encoder`);
    }
    const te = variant.report.tokenEmbeddings;
    if (te) {
      if (te.table.dims[1] !== D) throw new Error(`the text encoder's token embedding table is ${te.table.dims.join('x')}, not ${D} wide`);
      table = { input: te.input, rows: (ids) => readTableRows(te.table, ids) };
    }
    run = (feeds) => variant.run(feeds, fetches);
  }
  // An embedding vector's position still needs an id: for the causal mask's size and the pooled output's
  // position (the first end token, found by argmax over the ids), so it must be neither the end token nor above
  // it. The start token is below it in every CLIP vocabulary.
  const placeholder = tok.bosId;
  return async (chunk) => {
    // As ComfyUI: vectors of another width are left out and the chunk is padded at its end instead.
    const kept = chunk.filter((e) => e.kind === 'token' || e.vector.length === D);
    const positions: ChunkEntry[] = [...kept];
    while (positions.length < L) positions.push({ kind: 'token', id: tok.padId, weight: 1.0, special: true });
    const ids = positions.map((e) => (e.kind === 'token' ? e.id : placeholder));
    const feeds: Record<string, FeedValue> = { [io.inputIds]: inputIdsTensor(ids, io.inputIdsType) };
    if (table) {
      const rows = table.rows(positions.flatMap((e) => (e.kind === 'token' ? [e.id] : [])));
      const embeds = new Float32Array(L * D);
      positions.forEach((e, j) => embeds.set(e.kind === 'token' ? rows.get(e.id)! : e.vector, j * D));
      feeds[table.input] = { data: embeds, shape: [1, L, D] };
    }
    const out = await run(feeds);
    const hidden = fromOrtTensor(hiddenName, out[hiddenName]!);
    if (hidden.data.length !== L * D) throw new Error(`the text encoder returned ${hiddenName} [${hidden.shape.join(', ')}], expected [1, ${L}, ${D}]`);
    const pooled = io.pooled && out[io.pooled] ? fromOrtTensor(io.pooled, out[io.pooled]!) : undefined;
    // A copy: weighting works in place, and ORT's output buffers are not ours to change.
    return { hidden: Float32Array.from(hidden.data), ...(pooled ? { pooled } : {}), ids };
  };
}

/** `embedding:NAME` -> the vectors of the first file found, read once per prompt. */
function embeddingLookup(folders: readonly string[], width: number, embeddingKey?: string): (name: string) => EmbeddingVectors | undefined {
  // SDXL-style embedding files hold one tensor per text encoder: clip_l (SD-1.x's) and clip_g, or SD-2.x's clip_h.
  const key = embeddingKey ?? (width === 1024 ? 'clip_h' : 'clip_l');
  const seen = new Map<string, EmbeddingVectors | undefined>();
  return (name) => {
    if (!seen.has(name)) {
      const file = findEmbeddingFile(name, folders);
      seen.set(name, file === undefined ? undefined : readEmbeddingFile(file, name, key));
    }
    return seen.get(name);
  };
}

function widthWarnings(chunks: readonly ChunkEntry[][], width: number): string[] {
  const wrong = new Map<string, number>();
  for (const e of chunks.flat()) if (e.kind === 'embedding' && e.vector.length !== width) wrong.set(e.name, e.vector.length);
  return [...wrong].map(
    ([name, w]) =>
      `embedding:${name} holds ${w}-wide vectors${w === 768 ? ' (an SD-1.x embedding)' : w === 1024 ? ' (an SD-2.x embedding)' : ''} but this text encoder's are ${width} wide: it is left out, as ComfyUI does`,
  );
}

/** The prompt text of cut chunks: the tokens decoded, each embedding as `embedding:NAME`. */
function describe(entries: readonly ChunkEntry[], tok: ClipTokenizer): string {
  const parts: string[] = [];
  let ids: number[] = [];
  let lastEmbedding: string | undefined;
  const flush = () => {
    if (ids.length) parts.push(tok.decode(ids).trim());
    ids = [];
  };
  for (const e of entries) {
    if (e.kind === 'token') {
      if (!e.special) ids.push(e.id);
      lastEmbedding = undefined;
    } else if (e.name !== lastEmbedding) {
      flush();
      parts.push(`embedding:${e.name}`);
      lastEmbedding = e.name;
    }
  }
  flush();
  return parts.filter(Boolean).join(' ');
}
