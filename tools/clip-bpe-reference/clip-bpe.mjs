// An independent CLIP BPE tokenizer, written from the algorithm of OpenAI CLIP's simple_tokenizer, to serve as an
// oracle in tests: it shares no code with @huggingface/tokenizers or with gategraph's tokenizer, so agreement
// between them means something. Plain JavaScript, no dependencies beyond Node's fs for fromFolder().
// Kept simple on purpose (obvious loops, no heap) so that it can be checked by reading it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The byte -> symbol table of byte-level BPE: each of the 256 byte values gets one printable character, so a
 * byte string becomes a string BPE can work on without whitespace or control characters in it. Bytes that are
 * already printable Latin-1 ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68 take the code
 * points from 256 upwards, in byte order.
 */
export function bytesToUnicode() {
  const printable = (b) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) table[b] = String.fromCodePoint(printable(b) ? b : next++);
  return table;
}

const WHITESPACE_RUN = /\p{White_Space}+/gu;

/**
 * CLIP's text cleaning, minus ftfy and HTML unescaping (see README.md): NFC, each whitespace run to one space,
 * trimmed, lowercased. Whitespace is Unicode's White_Space property (what the `regex` module's `\s` means);
 * the trim removes only the spaces the collapse left, since JS trim() would also drop U+FEFF, which is not
 * whitespace to Python.
 */
export function normalizeClipText(text) {
  let t = text.normalize('NFC').replace(WHITESPACE_RUN, ' ');
  if (t.startsWith(' ')) t = t.slice(1);
  if (t.endsWith(' ')) t = t.slice(0, -1);
  return t.toLowerCase();
}

/**
 * CLIP's word regex: the two special tokens, English contractions, a run of letters, ONE digit (numbers are
 * split digit by digit), or a run of anything that is neither whitespace, letter nor digit. Whitespace between
 * matches is skipped. CLIP compiles it case-insensitively; after lowercasing that only matters for a few
 * characters that case-fold onto a contraction's letter (U+017F 'ſ' folds to 's').
 */
const WORD = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\p{White_Space}\p{L}\p{N}]+/giu;
const SPECIALS = new Set(['<|startoftext|>', '<|endoftext|>']);

/** The words CLIP's BPE runs on, for already-normalized text. */
export function clipWords(normalized) {
  return Array.from(normalized.matchAll(WORD), (m) => m[0]);
}

/** CLIP's merge list: the lines after the '#version' header, at most 49152 - 256 - 2 of them. */
export function parseMerges(text) {
  const lines = text.split(/\r?\n/).filter((line) => line.length > 0);
  const body = lines[0]?.startsWith('#version') ? lines.slice(1) : lines;
  return body.slice(0, 49152 - 256 - 2).map((line) => {
    const pair = line.trim().split(' ');
    if (pair.length !== 2) throw new Error(`not a merge: ${JSON.stringify(line)}`);
    return pair;
  });
}

export class ClipBpe {
  /** @param vocab token -> id (vocab.json), @param merges [left, right] pairs in rank order */
  constructor(vocab, merges) {
    this.vocab = vocab;
    this.ranks = new Map(merges.map(([a, b], rank) => [`${a} ${b}`, rank]));
    this.byteSymbol = bytesToUnicode();
    this.utf8 = new TextEncoder();
    this.cache = new Map();
    this.bosId = this.idOf('<|startoftext|>');
    this.eosId = this.idOf('<|endoftext|>');
  }

  static fromFolder(dir) {
    const read = (name) => readFileSync(join(dir, name), 'utf8').replace(/^\uFEFF/, '');
    return new ClipBpe(JSON.parse(read('vocab.json')), parseMerges(read('merges.txt')));
  }

  idOf(token) {
    const id = this.vocab[token];
    if (id === undefined) throw new Error(`token not in the vocabulary: ${JSON.stringify(token)}`);
    return id;
  }

  /**
   * One word (already mapped to byte symbols) -> its BPE tokens. Start from single symbols, the last one
   * carrying '</w>'; repeatedly take the adjacent pair with the lowest merge rank and merge every occurrence of
   * it, left to right; stop when no adjacent pair has a rank.
   */
  bpe(word) {
    const hit = this.cache.get(word);
    if (hit) return hit;
    let symbols = Array.from(word);
    symbols[symbols.length - 1] += '</w>';
    for (;;) {
      let best;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const rank = this.ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = [symbols[i], symbols[i + 1]];
        }
      }
      if (!best) break;
      const merged = [];
      for (let i = 0; i < symbols.length; i++) {
        if (i + 1 < symbols.length && symbols[i] === best[0] && symbols[i + 1] === best[1]) {
          merged.push(best[0] + best[1]);
          i++;
        } else {
          merged.push(symbols[i]);
        }
      }
      symbols = merged;
    }
    this.cache.set(word, symbols);
    return symbols;
  }

  /** The token strings of a text, without bos/eos. */
  tokens(text) {
    const out = [];
    for (const word of clipWords(normalizeClipText(text))) {
      if (SPECIALS.has(word)) {
        out.push(word);
        continue;
      }
      const mapped = Array.from(this.utf8.encode(word), (b) => this.byteSymbol[b]).join('');
      out.push(...this.bpe(mapped));
    }
    return out;
  }

  /** Text -> ids: bos, the tokens' ids, eos (49406 ... 49407 for CLIP). No truncation, no padding. */
  encode(text) {
    return [this.bosId, ...this.tokens(text).map((t) => this.idOf(t)), this.eosId];
  }
}
