/**
 * CLIP-style prompt tokenization on top of @huggingface/tokenizers (which reads the model's tokenizer.json:
 * CLIP's BPE for SD models, the word-piece vocabulary for the embedded tiny-sd).
 *
 * The text encoder takes a fixed number of ids (77 for SD): [bos, tokens..., eos, pad, pad, ...]. A prompt
 * with more than `maxLength - 2` tokens is cut (as diffusers does) and the cut part is reported so the caller
 * can warn; the eos always stays. The pad id comes from the tokenizer config: `<|endoftext|>` (= eos) for
 * SD-1.x, "!" (id 0) for SD-2's OpenCLIP tokenizer.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

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

function readJson(path: string): Record<string, unknown> | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`Tokenizer file ${path} is not valid JSON: ${(err as Error).message}`);
  }
}

export class ClipTokenizer {
  readonly maxLength: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;

  private constructor(private readonly tok: Tokenizer, readonly dir: string, config: Record<string, unknown>, special: Record<string, unknown>) {
    const max = config.model_max_length;
    // transformers writes a huge sentinel (1e30) when the length is unknown: CLIP's 77 is the only sane default
    this.maxLength = typeof max === 'number' && Number.isInteger(max) && max >= 2 && max <= 4096 ? max : 77;
    const id = (role: 'bos_token' | 'eos_token' | 'pad_token', fallback: string[]): number | undefined => {
      const names = [tokenText(config[role] as TokenSpec), tokenText(special[role] as TokenSpec), ...fallback];
      for (const n of names) {
        if (n === undefined) continue;
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

  /** Loads `tokenizer.json` (+ `tokenizer_config.json`, `special_tokens_map.json` when present) from a folder. */
  static load(dir: string): ClipTokenizer {
    const file = join(dir, 'tokenizer.json');
    const json = readJson(file);
    if (!json) {
      throw new Error(`Tokenizer folder ${dir} has no tokenizer.json; this engine reads the "fast" tokenizer file (transformers' tokenizer.save_pretrained writes it)`);
    }
    const config = readJson(join(dir, 'tokenizer_config.json')) ?? {};
    const special = readJson(join(dir, 'special_tokens_map.json')) ?? {};
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(json, config);
    } catch (err) {
      throw new Error(`Tokenizer ${file} could not be read: ${(err as Error).message}`);
    }
    return new ClipTokenizer(tok, dir, config, special);
  }

  /** Prompt -> exactly maxLength ids, CLIP layout; reports what a too-long prompt lost. */
  encode(text: string): TokenizedPrompt {
    const tokens = this.tok.encode(text, { add_special_tokens: false }).ids;
    const room = this.maxLength - 2;
    const kept = tokens.slice(0, room);
    const ids = [this.bosId, ...kept, this.eosId];
    const length = ids.length;
    while (ids.length < this.maxLength) ids.push(this.padId);
    const result: TokenizedPrompt = { ids, length, tokenCount: tokens.length };
    if (tokens.length > room) result.truncated = this.tok.decode(tokens.slice(room)).trim();
    return result;
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
