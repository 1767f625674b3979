/**
 * CLIP's "slow" tokenizer files (vocab.json + merges.txt, optionally added_tokens.json) turned into the
 * tokenizer.json definition that transformers' CLIP converter (convert_slow_tokenizer.CLIPConverter) writes,
 * built in memory: nothing is written into the user's folder, and the result goes to the same
 * @huggingface/tokenizers Tokenizer as a folder's own tokenizer.json, so both forms share one code path.
 *
 * The definition, component by component (each one is implemented by @huggingface/tokenizers 0.2):
 * - model: BPE over vocab.json and the merges, `</w>` marking a word's last symbol, unknown symbols mapped
 *   to the unk token (none occur: the vocabulary holds all 256 byte symbols, bare and with `</w>`);
 * - normalizer: NFC, every whitespace run to one space, lowercase;
 * - pre-tokenizer: CLIP's word regex (contractions, letter runs, single digits, runs of anything else;
 *   whitespace between them dropped), then the byte-to-symbol mapping;
 * - decoder: byte level (the Tokenizer turns `</w>` back into spaces);
 * - post-processor: bos + tokens + eos. ClipTokenizer.encode asks for no special tokens and adds bos/eos
 *   itself, exactly as it does for a tokenizer.json, so this only matters to other callers.
 */
import { join } from 'node:path';
import { MERGES_FILE, VOCAB_FILE, readJsonObject, readTextFile } from './tokenizer-files.ts';

/**
 * Candidate token strings for each role, in order of preference (the tokenizer config's, then CLIP's own);
 * the first one in the vocabulary is used, as ClipTokenizer does for bos and eos.
 */
export interface ClipSpecialTokens {
  bos: readonly string[];
  eos: readonly string[];
  unk: readonly string[];
}

interface AddedTokenDefinition {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** The subset of the tokenizer.json schema this module writes (the library takes a plain object). */
export interface ClipTokenizerDefinition {
  version: '1.0';
  added_tokens: AddedTokenDefinition[];
  normalizer: object;
  pre_tokenizer: object;
  post_processor: object | null;
  decoder: object;
  model: {
    type: 'BPE';
    dropout: null;
    unk_token: string;
    continuing_subword_prefix: string;
    end_of_word_suffix: string;
    fuse_unk: false;
    byte_fallback: false;
    ignore_merges: false;
    vocab: Record<string, number>;
    merges: [string, string][];
  };
}

/**
 * CLIP's simple_tokenizer (and transformers' CLIPTokenizer after it) reads at most this many merges after the
 * header line: 49,152 BPE symbols minus the 256 byte symbols and the 2 special tokens. The files SD folders
 * ship hold exactly this many; OpenAI's original merge list is much longer and is cut here the same way.
 */
const CLIP_MAX_MERGES = 49152 - 256 - 2;

/** The regex of CLIP's word split, as the converter writes it (Oniguruma syntax; the library rewrites it). */
const CLIP_WORD_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";

export function clipTokenizerDefinition(dir: string, specials: ClipSpecialTokens): ClipTokenizerDefinition {
  const vocabPath = join(dir, VOCAB_FILE);
  const { vocab, ids } = readVocab(vocabPath);
  const merges = readMerges(join(dir, MERGES_FILE), ids);
  const pick = (candidates: readonly string[]) => candidates.find((t) => ids.has(t));
  const bos = pick(specials.bos);
  const eos = pick(specials.eos);
  const unk = pick(specials.unk);
  // BPE maps a symbol missing from the vocabulary to unk; without one the library would yield undefined ids
  if (unk === undefined) {
    throw new Error(`Tokenizer file ${vocabPath} has no unknown token (${specials.unk.join(', ')}); it is not a CLIP vocabulary`);
  }
  const added = addedTokens(dir, ids, [bos, eos, unk]);
  return {
    version: '1.0',
    added_tokens: added,
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        // invert: the regex matches the pieces to keep; what lies between them (whitespace) is removed
        { type: 'Split', pattern: { Regex: CLIP_WORD_PATTERN }, behavior: 'Removed', invert: true },
        // The converter writes use_regex true, which runs GPT-2's word regex over each piece again; after
        // CLIP's split it has nothing left to split in the Rust library. This library's copy of that regex
        // uses JS `\s`, which also matches U+FEFF, so it would cut a piece such as "!<U+FEFF>!" that CLIP and
        // the Rust library keep whole: with use_regex false the result is the converter's in every case.
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: bos !== undefined && eos !== undefined
      ? { type: 'RobertaProcessing', sep: [eos, ids.get(eos)], cls: [bos, ids.get(bos)], add_prefix_space: false, trim_offsets: false }
      : null, // ClipTokenizer reports the missing bos/eos token itself, with the folder's name
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unk,
      continuing_subword_prefix: '',
      end_of_word_suffix: '</w>',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

/** vocab.json, checked to be token -> distinct integer ids; also returned as a Map for fast membership tests. */
function readVocab(path: string): { vocab: Record<string, number>; ids: Map<string, number> } {
  const json = readJsonObject(path);
  if (!json) throw new Error(`Tokenizer file ${path} does not exist`);
  const ids = new Map<string, number>();
  const holders = new Map<number, string>();
  // Object.keys and a lookup: about twice as fast as Object.entries on a 49k-key object, and this runs per load
  for (const token of Object.keys(json)) {
    const id = json[token];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      throw new Error(`Tokenizer file ${path} is not a vocabulary: "${token}" maps to ${JSON.stringify(id)}, not a token id`);
    }
    const other = holders.get(id);
    if (other !== undefined) throw new Error(`Tokenizer file ${path} gives id ${id} to both "${other}" and "${token}"`);
    holders.set(id, token);
    ids.set(token, id);
  }
  return { vocab: json as Record<string, number>, ids };
}

/**
 * merges.txt: a `#version` header, then one merge per line, "left right", in rank order. Line endings may be
 * LF or CRLF, with or without a final newline. Every merge's parts and result must be vocabulary entries: a
 * merges.txt and vocab.json from different tokenizers fail here, on the first merge that does not fit.
 */
function readMerges(path: string, vocab: Map<string, number>): [string, string][] {
  const lines = readTextFile(path).split(/\r\n|\n|\r/);
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
  // transformers drops the first line unread; only a header is dropped here, so a headerless file loses nothing
  const first = lines[0]?.startsWith('#version') ? 1 : 0;
  const end = Math.min(lines.length, first + CLIP_MAX_MERGES);
  const merges: [string, string][] = new Array(end - first);
  for (let i = first; i < end; i++) {
    const line = lines[i]!;
    const pair = splitMerge(line);
    if (!pair) {
      throw new Error(`${path} line ${i + 1} is not a merge: expected two tokens separated by a space, found ${JSON.stringify(line)}`);
    }
    const [left, right] = pair;
    for (const token of [left, right, left + right]) {
      if (!vocab.has(token)) {
        throw new Error(`${path} line ${i + 1} (${left} + ${right}) needs "${token}", which ${VOCAB_FILE} does not contain: merges.txt and vocab.json are not from the same tokenizer`);
      }
    }
    merges[i - first] = pair;
  }
  return merges;
}

/**
 * "left right" -> [left, right]; undefined unless the line is exactly two tokens. The common case (one space,
 * no other whitespace) is found without a regex: this runs for each of the ~49k lines on every model load.
 */
function splitMerge(line: string): [string, string] | undefined {
  const space = line.indexOf(' ');
  if (space > 0 && space < line.length - 1 && line.indexOf(' ', space + 1) < 0 && !/[^\S ]/.test(line)) {
    return [line.slice(0, space), line.slice(space + 1)];
  }
  // other whitespace (tabs, doubled or trailing spaces): split as transformers does, on any run of it
  const parts = line.trim().split(/\s+/);
  return parts.length === 2 && parts[0] !== '' ? [parts[0]!, parts[1]!] : undefined;
}

/**
 * The added tokens: bos/eos/unk (special, so a literal `<|endoftext|>` in a prompt stays one token, as CLIP's
 * own regex keeps it, and decode can skip them), then added_tokens.json (e.g. textual-inversion tokens:
 * `{ "<cat-toy>": 49408 }`). All are matched after normalization, i.e. case-insensitively, as CLIP's tokenizer
 * lowercases before it looks for them. The pad token is not added: SD-2's is "!", an ordinary vocabulary entry
 * that OpenCLIP's tokenizer (which SD-2 was trained with) never splits out of "!!".
 */
function addedTokens(dir: string, vocab: Map<string, number>, specials: readonly (string | undefined)[]): AddedTokenDefinition[] {
  const added: AddedTokenDefinition[] = [];
  const token = (content: string, id: number, special: boolean): AddedTokenDefinition =>
    ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special });
  for (const content of new Set(specials)) {
    if (content !== undefined) added.push(token(content, vocab.get(content)!, true));
  }
  const path = join(dir, 'added_tokens.json');
  const extra = readJsonObject(path);
  if (!extra) return added;
  const byId = new Map<number, string>();
  for (const [content, id] of vocab) byId.set(id, content);
  for (const [content, id] of Object.entries(extra)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      throw new Error(`Tokenizer file ${path} gives "${content}" the id ${JSON.stringify(id)}, not a token id`);
    }
    const holder = byId.get(id);
    if (holder !== undefined && holder !== content) {
      throw new Error(`Tokenizer file ${path} gives "${content}" the id ${id}, which ${VOCAB_FILE} already uses for "${holder}"`);
    }
    const known = vocab.get(content);
    if (known !== undefined && known !== id) {
      throw new Error(`Tokenizer file ${path} gives "${content}" the id ${id}, but ${VOCAB_FILE} has it as ${known}`);
    }
    if (added.some((t) => t.content === content)) continue;
    byId.set(id, content);
    added.push(token(content, id, false));
  }
  return added;
}
