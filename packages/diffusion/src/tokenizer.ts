/**
 * CLIP-style prompt tokenization on top of @huggingface/tokenizers. A tokenizer folder holds either a
 * tokenizer.json (the "fast" form: CLIP's BPE for SD models, the word-piece vocabulary for the embedded
 * tiny-sd) or CLIP's "slow" vocab.json + merges.txt, which published SD folders ship; the slow pair is turned
 * into the same tokenizer.json definition in memory (clip-slow-tokenizer.ts), so both take one code path.
 *
 * The text encoder takes a fixed number of ids (77 for SD): [bos, tokens..., eos, pad, pad, ...]. A prompt
 * with more than `maxLength - 2` tokens is cut (as diffusers does) and the cut part is reported so the caller
 * can warn; the eos always stays. The pad id comes from the tokenizer config: `<|endoftext|>` (= eos) for
 * SD-1.x, "!" (id 0) for SD-2's OpenCLIP tokenizer.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '@huggingface/tokenizers';
import { clipTokenizerDefinition } from './clip-slow-tokenizer.ts';
import { FAST_TOKENIZER_FILE, MERGES_FILE, VOCAB_FILE, readJsonObject, tokenizerFilesIn } from './tokenizer-files.ts';

/**
 * The positions of every CLIP / OpenCLIP text encoder SD uses. A tokenizer_config.json model_max_length above
 * it does not describe the text encoder: transformers writes 1e30 when the length is unknown, and ComfyUI's
 * copy of CLIP's files (bundled here) says 8192 because ComfyUI cuts prompts into 77-token chunks itself.
 * Padding to such a length would feed the encoder more positions than it has (openModelFolder refuses a
 * declared mismatch; an encoder with a free sequence dimension would fail inside onnxruntime), so those
 * values fall back to 77. A shorter length is kept: it is a deliberate setting (an encoder exported for fewer
 * positions), and openModelFolder checks it against the encoder's declared input.
 */
const CLIP_POSITIONS = 77;

export interface TokenizedPrompt {
  /** Exactly `maxLength` ids: bos, the prompt's tokens, eos, then padding. */
  ids: number[];
  /** How many ids are real (bos + tokens + eos); the rest is padding. */
  length: number;
  /** The text of the tokens that did not fit, when the prompt was cut. */
  truncated?: string;
  /** Number of prompt tokens (without bos/eos) before any cut. */
  tokenCount: number;
}

/** A special token given as a string or as HF's AddedToken object ({ content: "<|endoftext|>", ... }). */
type TokenSpec = string | { content?: string } | null | undefined;

function tokenText(spec: TokenSpec): string | undefined {
  if (typeof spec === 'string') return spec;
  if (spec && typeof spec === 'object' && typeof spec.content === 'string') return spec.content;
  return undefined;
}

/** The token strings that may fill a role, in order: tokenizer_config.json's, special_tokens_map.json's, the fallbacks. */
function roleCandidates(role: string, config: Record<string, unknown>, special: Record<string, unknown>, fallback: string[]): string[] {
  const names = [tokenText(config[role] as TokenSpec), tokenText(special[role] as TokenSpec), ...fallback];
  return names.filter((n): n is string => n !== undefined);
}

export class ClipTokenizer {
  readonly maxLength: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;

  private constructor(private readonly tok: Tokenizer, readonly dir: string, config: Record<string, unknown>, special: Record<string, unknown>) {
    const max = config.model_max_length;
    this.maxLength = typeof max === 'number' && Number.isInteger(max) && max >= 2 && max <= CLIP_POSITIONS ? max : CLIP_POSITIONS;
    const id = (role: 'bos_token' | 'eos_token' | 'pad_token', fallback: string[]): number | undefined => {
      for (const n of roleCandidates(role, config, special, fallback)) {
        const v = this.tok.token_to_id(n);
        if (v !== undefined) return v;
      }
      return undefined;
    };
    const bos = id('bos_token', ['<|startoftext|>']);
    const eos = id('eos_token', ['<|endoftext|>']);
    if (bos === undefined || eos === undefined) {
      throw new Error(`Tokenizer in ${dir} has no ${bos === undefined ? 'start' : 'end'}-of-text token (bos_token / eos_token in tokenizer_config.json, or <|startoftext|> / <|endoftext|> in the vocabulary); it is not a CLIP tokenizer`);
    }
    this.bosId = bos;
    this.eosId = eos;
    this.padId = id('pad_token', []) ?? eos;
  }

  /**
   * Loads a tokenizer folder: `tokenizer.json`, or else CLIP's `vocab.json` + `merges.txt` (+ `added_tokens.json`),
   * with `tokenizer_config.json` and `special_tokens_map.json` when present. When both forms are there the
   * tokenizer.json is used, as transformers' AutoTokenizer prefers the fast tokenizer.
   */
  static load(dir: string): ClipTokenizer {
    const config = readJsonObject(join(dir, 'tokenizer_config.json')) ?? {};
    const special = readJsonObject(join(dir, 'special_tokens_map.json')) ?? {};
    const fastFile = join(dir, FAST_TOKENIZER_FILE);
    const has = tokenizerFilesIn(dir);
    let definition: object;
    let source: string;
    if (has.fast) {
      definition = readJsonObject(fastFile)!;
      source = fastFile;
    } else {
      if (has.vocab !== has.merges) {
        const [present, absent] = has.vocab ? [VOCAB_FILE, MERGES_FILE] : [MERGES_FILE, VOCAB_FILE];
        throw new Error(`Tokenizer folder ${dir} has ${present} but no ${absent}; CLIP's "slow" tokenizer needs both files (or a tokenizer.json)`);
      }
      if (!has.vocab) {
        throw new Error(`Tokenizer folder ${dir} has no tokenizer.json; this engine reads the "fast" tokenizer file (transformers' tokenizer.save_pretrained writes it) or CLIP's "slow" files ${VOCAB_FILE} + ${MERGES_FILE}`);
      }
      const role = (name: 'bos_token' | 'eos_token' | 'unk_token', clip: string) => roleCandidates(name, config, special, [clip]);
      definition = clipTokenizerDefinition(dir, {
        bos: role('bos_token', '<|startoftext|>'),
        eos: role('eos_token', '<|endoftext|>'),
        unk: role('unk_token', '<|endoftext|>'),
      });
      source = `${join(dir, VOCAB_FILE)} + ${MERGES_FILE}`;
    }
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(definition, config);
    } catch (err) {
      throw new Error(`Tokenizer ${source} could not be read: ${(err as Error).message}`);
    }
    return new ClipTokenizer(tok, dir, config, special);
  }

  /** Prompt -> exactly maxLength ids, CLIP layout; reports what a too-long prompt lost. */
  encode(text: string): TokenizedPrompt {
    const tokens = this.tokenIds(text);
    const room = this.maxLength - 2;
    const kept = tokens.slice(0, room);
    const ids = [this.bosId, ...kept, this.eosId];
    const length = ids.length;
    while (ids.length < this.maxLength) ids.push(this.padId);
    const result: TokenizedPrompt = { ids, length, tokenCount: tokens.length };
    if (tokens.length > room) result.truncated = this.tok.decode(tokens.slice(room)).trim();
    return result;
  }

  /** The token ids of a text without start/end tokens or padding: one piece of a prompt (prompt-chunks.ts). */
  tokenIds(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  /** The token strings of a prompt (no bos/eos): for showing users how their prompt was split. */
  tokenize(text: string): string[] {
    return this.tok.tokenize(text);
  }

  decode(ids: readonly number[]): string {
    return this.tok.decode([...ids], { skip_special_tokens: true });
  }
}

/** The warning a text-encode node shows for a cut prompt. */
export function truncationWarning(maxLength: number, dropped: string): string {
  return `prompt truncated after ${maxLength} tokens: dropped '${dropped}'`;
}

/**
 * CLIP's tokenizer files shipped with this package (OpenAI CLIP, MIT license; see its README): for models that
 * carry no tokenizer of their own, such as single-file checkpoints. Found next to this module, so it works
 * from the workspace and from an installed package alike.
 */
export function bundledClipTokenizerDir(): string {
  return fileURLToPath(new URL('../assets/clip-tokenizer/', import.meta.url));
}
