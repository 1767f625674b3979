// CLIP's "slow" tokenizer files (vocab.json + merges.txt, as published SD folders ship them): the definition
// built from them in memory, checked on the real CLIP files shipped in assets/clip-tokenizer against an
// independent BPE written from CLIP's algorithm (tools/clip-bpe-reference), plus the files' variants and
// failures a user's folder can have, and a model folder whose tokenizer/ holds only the slow files.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClipTokenizer, ModelFolderError, SessionPool, bundledClipTokenizerDir, openModelFolder } from '../src/index.ts';
import { ClipBpe } from '../../../tools/clip-bpe-reference/clip-bpe.mjs';
import { REPO_MODEL, requireTestModel, tempDir } from './fixtures/test-model.ts';

const clipDir = bundledClipTokenizerDir();
const tok = ClipTokenizer.load(clipDir);
const ref = ClipBpe.fromFolder(clipDir);
const BOS = 49406;
const EOS = 49407;

/** The ids without padding: bos, the prompt's tokens, eos. */
function unpadded(t: ClipTokenizer, prompt: string): number[] {
  const r = t.encode(prompt);
  return r.ids.slice(0, r.length);
}

const clipFiles = ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json'];

/** A tokenizer folder in a temp dir holding the bundled files, some of them replaced or left out. */
function clipCopy(prefix: string, replace: Record<string, string | null> = {}): string {
  const dir = tempDir(prefix);
  for (const name of clipFiles) {
    if (name in replace) continue;
    copyFileSync(join(clipDir, name), join(dir, name));
  }
  for (const [name, text] of Object.entries(replace)) if (text !== null) writeFileSync(join(dir, name), text);
  return dir;
}

const vocabText = readFileSync(join(clipDir, 'vocab.json'), 'utf8');
const mergesText = readFileSync(join(clipDir, 'merges.txt'), 'utf8');
const vocab = JSON.parse(vocabText) as Record<string, number>;

/** A CLIP vocabulary id, read straight from vocab.json. */
function id(token: string): number {
  const v = vocab[token];
  assert.ok(v !== undefined, `${token} is not in vocab.json`);
  return v;
}

// --- deterministic prompts -----------------------------------------------------------------------------------

/** xorshift32: a seeded generator, so every run checks the same prompts. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

const WORDS = ('a photo of the cat portrait landscape masterpiece best quality highly detailed cinematic lighting octane render ' +
  'trending on artstation by greg rutkowski sunset over mountains cyberpunk city neon rain watercolor oil painting studio ' +
  'ghibli anime girl with blue eyes and red hair unreal engine bokeh depth field dog astronaut riding horse mars steampunk ' +
  'forest castle dragon fantasy illustration concept art sharp focus volumetric fog golden hour x y z qu').split(' ');
const APOSTROPHES = ["cat's", "don't", "they're", "we've", "I'm", "you'll", "he'd", "isn't", "o'clock", "rock'n'roll", "'tis",
  "dogs'", "'quoted'", "it\u2019s", "DON'T", "We'Ll", "ain't", "y'all", "'s", "''", "'''t", "can't've", "'", "l'été", "'d'm", "'S"];
const PUNCTUATION = [',', '.', '!', '?', ';', ':', '-', '--', '...', '(', ')', '((', '))', '[', ']', '{', '}', '"', '/', '\\', '&',
  '*', '#', '@', '%', '+', '=', '<', '>', '|', '~', '^', '_', '`', '\u2026', '\u2014', '\u201c', '\u201d', '\u00ab', '\u00bb',
  '\u00bf', '\u00a1', ':)', '!!!', '?!', '->', '(masterpiece:1.2)', '[cat|dog]', '<lora:x:0.8>', 'f/1.8', '\u00a9', '\u2122',
  '\u00b0', '\u00b1', '\u2192', '\u2022', '\u200b', '\u0007', '\ufeff', '<|', '|>', '</w>'];
const ACCENTED = ['caf\u00e9', 'cafe\u0301', '\u00fcber', 'u\u0308ber', 'ni\u00f1o', 'nin\u0303o', '\u00c5ngstr\u00f6m', 'A\u030angstro\u0308m',
  'fa\u00e7ade', 'na\u00efve', 'cr\u00e8me br\u00fbl\u00e9e', '\u00c9clair', 'E\u0301CLAIR', 'S\u00e3o Paulo', 'Zo\u00eb', '\u041c\u043e\u0441\u043a\u0432\u0430',
  '\u0395\u03bb\u03bb\u03ac\u03b4\u03b1', '\u6771\u4eac', '\u30bd\u30a6\u30eb', '\uc11c\uc6b8', '\u0130stanbul', 'stra\u00dfe', '\u03a3\u039f\u03a6\u039f\u03a3',
  'q\u0303', 'x\u0301\u0302', '\u01c5emal', '\ufb01ne', '\uff21\uff22\uff23', '\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35', '\u0928\u092e\u0938\u094d\u0924\u0947'];
const EMOJI = ['\u{1f431}', '\u{1f600}', '\u{1f44d}', '\u{1f44d}\u{1f3fd}', '\u{1f469}\u{1f3ff}\u200d\u{1f52c}',
  '\u{1f468}\u200d\u{1f469}\u200d\u{1f467}\u200d\u{1f466}', '\u{1f3f3}\ufe0f\u200d\u{1f308}', '\u2764\ufe0f', '\u{1f1ef}\u{1f1f5}', '\u2728',
  '\u{1f9d1}\u200d\u{1f680}', '\u{1f937}\u200d\u2640\ufe0f', '\u{1f602}\u{1f602}\u{1f602}', '\u{1f525}', '\u2615', '\u{1f3fb}', '\u{1f44b}\u{1f3fc}'];
const WHITESPACE = [' ', ' ', ' ', ' ', '  ', '\t', '\n', '\r\n', ' \t ', '\u00a0', '\u3000', '\u2003', '\u202f', '\n\n\n', '\u2028', '\u00a0 \u00a0'];
const LETTERS = 'abcdefghijklmnopqrstuvwxyz\u00e9\u00fc\u00f1';

type Category = 'word' | 'apostrophe' | 'punctuation' | 'number' | 'accented' | 'emoji' | 'long' | 'whitespace';

function mixCase(word: string, rnd: () => number): string {
  const r = rnd();
  if (r < 0.55) return word;
  if (r < 0.7) return word.toUpperCase();
  if (r < 0.85) return word.charAt(0).toUpperCase() + word.slice(1);
  return Array.from(word, (c) => (rnd() < 0.5 ? c.toUpperCase() : c)).join('');
}

function piece(rnd: () => number): [string, Category] {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
  const r = rnd();
  if (r < 0.34) return [mixCase(pick(WORDS), rnd), 'word'];
  if (r < 0.44) return [mixCase(pick(APOSTROPHES), rnd), 'apostrophe'];
  if (r < 0.56) return [pick(PUNCTUATION), 'punctuation'];
  if (r < 0.66) {
    const digits = (n: number) => Array.from({ length: n }, () => String(Math.floor(rnd() * 10))).join('');
    const forms = [() => digits(2 + Math.floor(rnd() * 7)), () => `${digits(1)}.${digits(2)}`, () => `${digits(4)}x${digits(4)}`,
      () => `${digits(1)}k`, () => `${digits(1)},${digits(3)},${digits(3)}`, () => '\u0663\u0664', () => '\u00bd', () => '\u00b2', () => '\u216b', () => '\u2460'];
    return [pick(forms)(), 'number'];
  }
  if (r < 0.78) return [mixCase(pick(ACCENTED), rnd), 'accented'];
  if (r < 0.88) return [pick(EMOJI), 'emoji'];
  if (r < 0.94) {
    const fixed = ['pneumonoultramicroscopicsilicovolcanoconiosis', 'supercalifragilisticexpialidocious', 'Donaudampfschifffahrtsgesellschaftskapit\u00e4n'];
    if (rnd() < 0.3) return [mixCase(pick(fixed), rnd), 'long'];
    return [mixCase(Array.from({ length: 30 + Math.floor(rnd() * 25) }, () => pick(Array.from(LETTERS))).join(''), rnd), 'long'];
  }
  return [pick(WHITESPACE).repeat(1 + Math.floor(rnd() * 3)), 'whitespace'];
}

interface GeneratedPrompt {
  text: string;
  categories: Set<Category>;
}

/**
 * Prompts of up to 14 pieces, joined mostly by whitespace runs and sometimes glued together, each one cut back
 * (whole pieces off its end) until it fits 75 tokens, so the full id list can be compared without truncation.
 */
function prompts(count: number, seed: number): GeneratedPrompt[] {
  const rnd = random(seed);
  const out: GeneratedPrompt[] = [];
  while (out.length < count) {
    const pieces: [string, Category][] = [];
    const n = 1 + Math.floor(rnd() * 14);
    for (let i = 0; i < n; i++) {
      const [text, category] = piece(rnd);
      const glue = rnd() < 0.15 ? '' : WHITESPACE[Math.floor(rnd() * WHITESPACE.length)]!;
      pieces.push([i === 0 ? text : glue + text, category]);
    }
    const lead = rnd() < 0.1 ? '\n ' : '';
    const tail = rnd() < 0.1 ? ' \t' : '';
    for (let k = pieces.length; k > 0; k--) {
      const text = lead + pieces.slice(0, k).map(([t]) => t).join('') + tail;
      if (ref.encode(text).length <= 77) {
        out.push({ text, categories: new Set(pieces.slice(0, k).map(([, c]) => c)) });
        break;
      }
    }
  }
  return out;
}

const generated = prompts(1500, 0x5eed1234);

// --- tests ---------------------------------------------------------------------------------------------------

test('the bundled CLIP files tokenize "a photo of a cat" as CLIP does, padded with <|endoftext|> to 77', () => {
  assert.equal(tok.maxLength, 77, "model_max_length 8192 (ComfyUI's copy) must not make the tokenizer pad to 8192");
  assert.equal(tok.bosId, BOS);
  assert.equal(tok.eosId, EOS);
  assert.equal(tok.padId, EOS);
  const r = tok.encode('a photo of a cat');
  assert.deepEqual(r.ids.slice(0, r.length), [49406, 320, 1125, 539, 320, 2368, 49407]);
  assert.equal(r.length, 7);
  assert.equal(r.tokenCount, 5);
  assert.deepEqual(r.ids.slice(7), new Array(70).fill(EOS));
  assert.deepEqual(tok.tokenize('A Photo of a CAT'), ['a</w>', 'photo</w>', 'of</w>', 'a</w>', 'cat</w>']);
  assert.equal(tok.decode(r.ids), 'a photo of a cat');
});

test('the slow-file tokenizer agrees with the independent reference BPE on 1,500 generated prompts', () => {
  const seen = new Map<Category, number>();
  let tokens = 0;
  for (const { text, categories } of generated) {
    for (const c of categories) seen.set(c, (seen.get(c) ?? 0) + 1);
    const expected = ref.encode(text);
    const actual = unpadded(tok, text);
    if (actual.join() !== expected.join()) {
      assert.fail(`first differing prompt: ${JSON.stringify(text)}\n  ours:      ${actual.join(' ')}\n  reference: ${expected.join(' ')}\n` +
        `  our tokens:       ${JSON.stringify(tok.tokenize(text))}\n  reference tokens: ${JSON.stringify(ref.tokens(text))}`);
    }
    assert.equal(tok.encode(text).tokenCount, expected.length - 2);
    tokens += expected.length - 2;
  }
  // the generator really mixes what it claims to: every kind of piece is in many prompts
  for (const c of ['word', 'apostrophe', 'punctuation', 'number', 'accented', 'emoji', 'long', 'whitespace'] as const) {
    assert.ok((seen.get(c) ?? 0) >= 100, `only ${seen.get(c) ?? 0} prompts with ${c} pieces`);
  }
  assert.ok(tokens > 30_000, `only ${tokens} tokens compared`);
});

test('hand-checked ids: digits one by one, NFC, whitespace runs, contractions', () => {
  // written from CLIP's vocabulary, not from either implementation, so both agreeing on a shared mistake shows here
  const encoders = [['engine', (p: string) => unpadded(tok, p)], ['reference', (p: string) => ref.encode(p)]] as const;
  for (const [name, ids] of encoders) {
    assert.deepEqual(ids('2048'), [BOS, id('2</w>'), id('0</w>'), id('4</w>'), id('8</w>'), EOS], name);
    assert.deepEqual(ids("  don't\t\n\u00a0STOP  "), [BOS, id('don</w>'), id("'t</w>"), id('stop</w>'), EOS], name);
    assert.deepEqual(ids('cafe\u0301'), [BOS, id('caf\u00c3\u00a9</w>'), EOS], name); // NFC: é is one character, bytes C3 A9
    assert.deepEqual(ids('cat, dog'), [BOS, id('cat</w>'), id(',</w>'), id('dog</w>'), EOS], name);
  }
});

test('a U+FEFF inside a punctuation run stays in that run, as in CLIP and transformers\' Rust tokenizer', () => {
  // the library's GPT-2 regex (ByteLevel use_regex) would split at it: the definition turns that step off
  const text = 'a!\ufeff!b';
  assert.deepEqual(unpadded(tok, text), ref.encode(text));
  // one BPE word "!<U+FEFF>!" (its UTF-8 bytes EF BB BF shown as ï » ¿): only its last symbol carries </w>
  assert.deepEqual(tok.tokenize(text), ['a</w>', '!', '\u00ef', '\u00bb', '\u00bf', '!</w>', 'b</w>']);
});

test('a prompt over 75 tokens keeps 75, ends with eos and reports the dropped words', () => {
  const r = tok.encode('a photo of a cat '.repeat(16)); // 80 tokens
  assert.equal(r.ids.length, 77);
  assert.equal(r.length, 77);
  assert.equal(r.ids[76], EOS);
  assert.equal(r.tokenCount, 80);
  assert.deepEqual(r.ids.slice(1, 76), ref.encode('a photo of a cat '.repeat(16)).slice(1, 76));
  assert.equal(r.truncated, 'a photo of a cat');
});

test('CRLF merges.txt (with and without a final newline) and a vocab.json with a BOM give the same ids', () => {
  const sample = generated.slice(0, 300).map((p) => p.text);
  const expected = sample.map((p) => unpadded(tok, p));
  const lines = mergesText.replace(/\n$/, '').split('\n');
  for (const [name, merges] of [['crlf', lines.join('\r\n')], ['crlf-final', `${lines.join('\r\n')}\r\n`], ['lf-bare', lines.join('\n')]] as const) {
    const dir = clipCopy(name, { 'merges.txt': merges, 'vocab.json': `\ufeff${vocabText}` });
    const t = ClipTokenizer.load(dir);
    assert.deepEqual(sample.map((p) => unpadded(t, p)), expected, name);
  }
});

test('added_tokens.json tokens (textual inversion) are single ids, case-insensitively and glued to words', () => {
  const dir = clipCopy('added', { 'added_tokens.json': JSON.stringify({ '<cat-toy>': 49408, 'sks': 49409 }) });
  const t = ClipTokenizer.load(dir);
  const head = ref.encode('a photo of').slice(0, -1);
  const tail = ref.encode('on a beach').slice(1);
  assert.deepEqual(unpadded(t, 'a photo of <cat-toy> on a beach'), [...head, 49408, ...tail]);
  assert.deepEqual(unpadded(t, 'a photo of <CAT-TOY> on a beach'), [...head, 49408, ...tail]);
  assert.deepEqual(unpadded(t, 'a photo of<cat-toy>on a beach'), [...head, 49408, ...tail]);
  assert.deepEqual(unpadded(t, 'a photo of sks on a beach'), [...head, 49409, ...tail]);
  assert.deepEqual(t.tokenize('<cat-toy> cat'), ['<cat-toy>', 'cat</w>']);
  // without the file the same text is split by the BPE, as the reference does
  assert.deepEqual(unpadded(tok, 'a photo of <cat-toy> on a beach'), ref.encode('a photo of <cat-toy> on a beach'));
  assert.ok(ref.encode('<cat-toy>').length > 3);
});

test('SD-2\'s OpenCLIP config pads with "!" (id 0) and still reads "!!" as one token', () => {
  const config = JSON.parse(readFileSync(join(clipDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  const dir = clipCopy('sd2', {
    'tokenizer_config.json': JSON.stringify({ ...config, pad_token: '!', model_max_length: 77 }),
    'special_tokens_map.json': JSON.stringify({ bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', pad_token: '!' }),
  });
  const t = ClipTokenizer.load(dir);
  assert.equal(t.padId, 0);
  const r = t.encode('wow!! a cat!');
  const expected = ref.encode('wow!! a cat!');
  assert.deepEqual(r.ids.slice(0, r.length), expected);
  assert.ok(expected.includes(id('!!</w>')), '"!!" is one vocabulary token');
  assert.deepEqual(r.ids.slice(r.length), new Array(77 - r.length).fill(0));
});

test('model_max_length above CLIP\'s 77 positions (1e30, 8192, 78) pads to 77; a shorter one is kept', () => {
  const config = JSON.parse(readFileSync(join(clipDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  for (const [max, expected] of [[1e30, 77], [8192, 77], [78, 77], [16, 16]] as const) {
    const t = ClipTokenizer.load(clipCopy('len', { 'tokenizer_config.json': JSON.stringify({ ...config, model_max_length: max }) }));
    assert.equal(t.maxLength, expected, `model_max_length ${max}`);
    assert.equal(t.encode('a photo of a cat').ids.length, expected);
  }
});

test('when a folder has tokenizer.json as well as the slow files, tokenizer.json is used', () => {
  const dir = clipCopy('both');
  copyFileSync(join(REPO_MODEL, 'tokenizer', 'tokenizer.json'), join(dir, 'tokenizer.json'));
  const fast = ClipTokenizer.load(join(REPO_MODEL, 'tokenizer'));
  const t = ClipTokenizer.load(dir);
  assert.equal(t.bosId, fast.bosId);
  assert.deepEqual(t.encode('a red circle').ids.slice(0, 5), fast.encode('a red circle').ids.slice(0, 5));
  assert.notEqual(t.bosId, BOS);
});

test('broken slow files fail with one sentence naming the file (and line)', () => {
  const load = (files: Record<string, string | null>) => () => ClipTokenizer.load(clipCopy('bad', files));
  assert.throws(load({ 'vocab.json': null }), /has merges\.txt but no vocab\.json; CLIP's "slow" tokenizer needs both files/);
  assert.throws(load({ 'merges.txt': null }), /has vocab\.json but no merges\.txt; CLIP's "slow" tokenizer needs both files/);
  assert.throws(load({ 'vocab.json': '{"a": 1,' }), /vocab\.json is not valid JSON/);
  assert.throws(load({ 'vocab.json': '["a", "b"]' }), /vocab\.json is not a JSON object/);
  assert.throws(load({ 'vocab.json': '{"a": "one"}' }), /vocab\.json is not a vocabulary: "a" maps to "one"/);
  assert.throws(load({ 'tokenizer_config.json': '{model_max_length: 77}' }), /tokenizer_config\.json is not valid JSON/);

  const lines = mergesText.split('\n');
  const withLine5 = (text: string) => [...lines.slice(0, 4), text, ...lines.slice(5)].join('\n');
  assert.throws(load({ 'merges.txt': withLine5('i n t') }), /merges\.txt line 5 is not a merge: expected two tokens separated by a space, found "i n t"/);
  assert.throws(load({ 'merges.txt': withLine5('') }), /merges\.txt line 5 is not a merge/);
  assert.throws(load({ 'merges.txt': withLine5('in') }), /merges\.txt line 5 is not a merge/);

  // a merge whose result is missing: "i n" (line 2) makes "in"
  const { in: _dropped, ...withoutIn } = vocab;
  assert.throws(load({ 'vocab.json': JSON.stringify(withoutIn) }), /merges\.txt line 2 \(i \+ n\) needs "in", which vocab\.json does not contain: merges\.txt and vocab\.json are not from the same tokenizer/);
  // a merge whose part is missing
  assert.throws(load({ 'merges.txt': withLine5('i nosuchtoken') }), /merges\.txt line 5 \(i \+ nosuchtoken\) needs "nosuchtoken"/);
  // a real mismatched pair: the embedded model's word-piece vocab.json beside CLIP's merges.txt
  assert.throws(load({ 'vocab.json': readFileSync(join(REPO_MODEL, 'tokenizer', 'vocab.json'), 'utf8') }), /merges\.txt line \d+ \(.*\) needs ".*", which vocab\.json does not contain/);

  assert.throws(load({ 'added_tokens.json': '{"<x>": 320}' }), /added_tokens\.json gives "<x>" the id 320, which vocab\.json already uses for "a<\/w>"/);
  assert.throws(load({ 'added_tokens.json': '{"cat</w>": 49408}' }), /added_tokens\.json gives "cat<\/w>" the id 49408, but vocab\.json has it as 2368/);
  assert.throws(load({ 'added_tokens.json': '{"<x>": -1}' }), /added_tokens\.json gives "<x>" the id -1, not a token id/);
  assert.throws(() => ClipTokenizer.load(tempDir('none')), /has no tokenizer\.json; this engine reads the "fast" tokenizer file .* or CLIP's "slow" files vocab\.json \+ merges\.txt/);
});

// --- a model folder with only the slow files -----------------------------------------------------------------

const pool = new SessionPool({ intraOpNumThreads: 1 });
after(() => pool.freeAll());

/** A model folder made of the test model's ONNX parts (linked) and a tokenizer/ with the given files. */
function modelWithTokenizer(prefix: string, tokenizerFiles: string[], parts = ['text_encoder', 'unet', 'vae_decoder', 'vae_encoder', 'scheduler']): string {
  const model = requireTestModel();
  const dir = join(tempDir(prefix), 'model');
  mkdirSync(join(dir, 'tokenizer'), { recursive: true });
  copyFileSync(join(model, 'model_index.json'), join(dir, 'model_index.json'));
  for (const part of parts) symlinkSync(join(model, part), join(dir, part), 'dir');
  for (const name of tokenizerFiles) copyFileSync(join(clipDir, name), join(dir, 'tokenizer', name));
  return dir;
}

async function openError(dir: string): Promise<ModelFolderError> {
  try {
    const m = await openModelFolder(dir, { pool });
    await m.release();
  } catch (err) {
    assert.ok(err instanceof ModelFolderError, `expected a ModelFolderError, got ${String(err)}`);
    return err;
  }
  assert.fail(`opening ${dir} should have failed`);
}

test('a model folder whose tokenizer/ holds only vocab.json + merges.txt opens, with the CLIP tokenizer', async () => {
  const dir = modelWithTokenizer('slowmodel', clipFiles);
  const model = await openModelFolder(dir, { pool });
  try {
    assert.equal(model.io.text.sequenceLength, 77);
    assert.deepEqual(unpadded(model.tokenizer, 'a photo of a cat'), [49406, 320, 1125, 539, 320, 2368, 49407]);
  } finally {
    await model.release();
  }
});

test('the component check accepts the slow pair, and names tokenizer.json with the slow pair (or its missing half) as the alternative', async () => {
  const noEncoder = modelWithTokenizer('noenc', ['vocab.json', 'merges.txt'], ['unet', 'vae_decoder', 'scheduler']);
  assert.match((await openError(noEncoder)).message, /missing component: text_encoder\/model\.onnx$/);
  const half = modelWithTokenizer('half', ['vocab.json'], ['unet', 'vae_decoder', 'scheduler']);
  assert.match((await openError(half)).message, /missing components: text_encoder\/model\.onnx, tokenizer\/tokenizer\.json \(or merges\.txt beside vocab\.json\)$/);
  const none = modelWithTokenizer('notok', [], ['text_encoder', 'unet', 'vae_decoder', 'scheduler']);
  rmSync(join(none, 'tokenizer'), { recursive: true });
  assert.match((await openError(none)).message, /missing component: tokenizer\/tokenizer\.json \(or vocab\.json \+ merges\.txt\)$/);
});
