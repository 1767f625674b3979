/**
 * Which tokenizer files a folder holds, and reading them.
 *
 * A tokenizer folder comes in one of two forms: the "fast" `tokenizer.json` (what transformers'
 * save_pretrained writes for a fast tokenizer) or CLIP's "slow" pair `vocab.json` + `merges.txt` (what
 * published SD ONNX folders ship). Both go through the same @huggingface/tokenizers Tokenizer; the slow pair
 * is turned into a tokenizer.json definition in memory (clip-slow-tokenizer.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const FAST_TOKENIZER_FILE = 'tokenizer.json';
export const VOCAB_FILE = 'vocab.json';
export const MERGES_FILE = 'merges.txt';

/** Which tokenizer files a folder has. */
export function tokenizerFilesIn(dir: string): { fast: boolean; vocab: boolean; merges: boolean } {
  return {
    fast: existsSync(join(dir, FAST_TOKENIZER_FILE)),
    vocab: existsSync(join(dir, VOCAB_FILE)),
    merges: existsSync(join(dir, MERGES_FILE)),
  };
}

/**
 * What a folder lacks to be a tokenizer, relative to it; undefined when one form is complete. The fast file
 * is always named first, the slow pair as the alternative; with half of the pair there, the other half is
 * the alternative named. (A lone vocab.json is not always half a CLIP pair: other tokenizers keep one beside
 * their tokenizer.json, as the embedded tiny-sd does.)
 */
export function missingTokenizerFiles(dir: string): string | undefined {
  const has = tokenizerFilesIn(dir);
  if (has.fast || (has.vocab && has.merges)) return undefined;
  if (has.vocab) return `${FAST_TOKENIZER_FILE} (or ${MERGES_FILE} beside ${VOCAB_FILE})`;
  if (has.merges) return `${FAST_TOKENIZER_FILE} (or ${VOCAB_FILE} beside ${MERGES_FILE})`;
  return `${FAST_TOKENIZER_FILE} (or ${VOCAB_FILE} + ${MERGES_FILE})`;
}

/**
 * A text file with a leading byte order mark removed: Windows editors add one to JSON and text files, and
 * JSON.parse rejects it, while a BOM before merges.txt's header would hide the header.
 */
export function readTextFile(path: string): string {
  const text = readFileSync(path, 'utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** A JSON object file, or undefined when the file does not exist; anything else unreadable says which file. */
export function readJsonObject(path: string): Record<string, unknown> | undefined {
  if (!existsSync(path)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(readTextFile(path));
  } catch (err) {
    throw new Error(`Tokenizer file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`Tokenizer file ${path} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}
