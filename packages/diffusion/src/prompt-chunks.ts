/**
 * A weighted prompt -> chunks of exactly `maxLength` (77) positions, as ComfyUI's SDTokenizer.tokenize_with_weights
 * (comfy/sd1_clip.py) lays them out; reimplemented from its behaviour:
 *
 * 1. Each weighted segment (prompt-weights.ts) is split before every ` embedding:` / `\nembedding:` (the space or
 *    newline is dropped), giving "words": the text between embeddings, and the embeddings. A segment that starts
 *    with `embedding:` starts with one. A word is tokenized whole (no start/end tokens); its tokens, or an
 *    embedding's vectors, form one *group* with the segment's weight.
 * 2. `embedding:NAME rest`: NAME is the first whitespace-separated word; when no embedding has that name and it
 *    ends (or starts) with commas, the name without them is tried and the commas go back into the text. An
 *    unknown name is dropped with a warning (ComfyUI's "does not exist, ignoring"); the rest is tokenized as a word.
 * 3. Chunks start with the start token and end with the end token. Groups are added in order; a group that does
 *    not fit in the current chunk (75 positions for tokens) either
 *    - is cut where the chunk is full, the rest going on in the next chunk, when it has 8 or more positions
 *      (`max_word_length`), or
 *    - moves whole to the next chunk when it is shorter: the current one is closed with the end token and padded.
 *    So a short weighted phrase or an embedding is never split across chunks, while one long unweighted prompt
 *    (a single group) fills every chunk to 75 tokens.
 * 4. The last chunk gets the end token and is padded to `maxLength` with the pad token. Start, end and pad tokens
 *    weigh 1.0.
 */
import type { WeightedSegment } from './prompt-weights.ts';

/** One position of a chunk: a token id, or one vector of a textual-inversion embedding. */
export type ChunkEntry =
  /** `special`: a start, end or pad token the layout added (not a token of the prompt). */
  | { readonly kind: 'token'; readonly id: number; readonly weight: number; readonly special?: true }
  | { readonly kind: 'embedding'; readonly name: string; readonly vector: Float32Array; readonly weight: number };

/** What `embedding:NAME` resolves to: its vectors (each of the encoder's width, or not: the encoder checks). */
export interface EmbeddingVectors {
  readonly name: string;
  readonly vectors: readonly Float32Array[];
}

export interface ChunkingOptions {
  /** Text -> token ids without start/end tokens. */
  tokenize(text: string): number[];
  startId: number;
  endId: number;
  padId: number;
  /** Positions per chunk, start and end tokens included (77). */
  maxLength: number;
  /**
   * `embedding:NAME` -> its vectors, undefined when there is no such embedding; may throw for a file it refuses.
   * Without it, `embedding:NAME` is plain text (ComfyUI without an embeddings folder).
   */
  embedding?(name: string): EmbeddingVectors | undefined;
}

export interface PromptChunks {
  /** Each exactly `maxLength` entries long; at least one. */
  readonly chunks: ChunkEntry[][];
  /** Embeddings that were not found, said once each. */
  readonly warnings: string[];
}

/** ComfyUI's `max_word_length`: groups at least this long may be cut across chunks, shorter ones move whole. */
export const MAX_WORD_LENGTH = 8;
const IDENTIFIER = 'embedding:';

export function chunkPrompt(segments: readonly WeightedSegment[], options: ChunkingOptions): PromptChunks {
  const warnings: string[] = [];
  const groups: ChunkEntry[][] = [];
  const tokens = (text: string, weight: number) => groups.push(options.tokenize(text).map((id) => ({ kind: 'token', id, weight }) as const));
  for (const { text, weight } of segments) {
    const parts = text.split(/ embedding:|\nembedding:/);
    const words = [parts[0]!, ...parts.slice(1).map((p) => IDENTIFIER + p)].filter((w) => w !== '');
    for (const word of words) {
      if (!word.startsWith(IDENTIFIER) || !options.embedding) {
        tokens(word, weight);
        continue;
      }
      const { found, leftover, name } = lookUp(stripNewlines(word.slice(IDENTIFIER.length)), options.embedding);
      if (found) groups.push(found.vectors.map((vector) => ({ kind: 'embedding', name: found.name, vector, weight })));
      else warnings.push(`embedding:${name} does not exist, ignoring it (as ComfyUI does)`);
      if (leftover !== '') tokens(leftover, weight);
    }
  }
  return { chunks: layOut(groups, options), warnings: [...new Set(warnings)] };
}

/** ComfyUI's _try_get_embedding: the first word is the name; trailing (or leading) commas are tried without. */
function lookUp(text: string, embedding: (name: string) => EmbeddingVectors | undefined): { found: EmbeddingVectors | undefined; leftover: string; name: string } {
  const words = text.split(/\s+/).filter(Boolean);
  const name = words[0] ?? '';
  const rest = words.slice(1).join(' ');
  const found = name === '' ? undefined : embedding(name);
  if (found) return { found, leftover: rest, name };
  const stripped = name.replace(/^,+|,+$/g, '');
  if (stripped.length < name.length) {
    // As ComfyUI: what follows the stripped name's length (the commas, when they trailed) goes back into the text.
    return { found: stripped === '' ? undefined : embedding(stripped), leftover: `${name.slice(stripped.length)} ${rest}`, name: stripped };
  }
  return { found: undefined, leftover: rest, name };
}

function stripNewlines(s: string): string {
  return s.replace(/^\n+|\n+$/g, '');
}

function layOut(groups: ChunkEntry[][], o: ChunkingOptions): ChunkEntry[][] {
  const special = (id: number): ChunkEntry => ({ kind: 'token', id, weight: 1.0, special: true });
  const close = (chunk: ChunkEntry[]) => {
    chunk.push(special(o.endId));
    while (chunk.length < o.maxLength) chunk.push(special(o.padId));
  };
  const room = o.maxLength - 1; // positions before the end token
  let chunk: ChunkEntry[] = [special(o.startId)];
  const chunks = [chunk];
  for (const group of groups) {
    const large = group.length >= MAX_WORD_LENGTH;
    let rest = group;
    while (rest.length > 0) {
      if (chunk.length + rest.length <= room) {
        chunk.push(...rest);
        rest = [];
        continue;
      }
      if (large) {
        const fits = room - chunk.length;
        chunk.push(...rest.slice(0, fits));
        rest = rest.slice(fits);
      }
      close(chunk);
      chunk = [special(o.startId)];
      chunks.push(chunk);
    }
  }
  close(chunk);
  return chunks;
}
