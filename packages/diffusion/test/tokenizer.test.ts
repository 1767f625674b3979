// CLIP-style padding and truncation on the embedded model's tokenizer (committed with the model's tokenizer/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClipTokenizer, truncationWarning } from '../src/index.ts';
import { REPO_MODEL, tempDir } from './fixtures/test-model.ts';

const dir = join(REPO_MODEL, 'tokenizer');
const tok = ClipTokenizer.load(dir);
const vocab = (JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } }).model.vocab;

test('a prompt becomes bos, its tokens, eos, then <|endoftext|> padding up to 77 ids', () => {
  assert.equal(tok.maxLength, 77);
  assert.equal(tok.bosId, vocab['<|startoftext|>']);
  assert.equal(tok.eosId, vocab['<|endoftext|>']);
  assert.equal(tok.padId, tok.eosId, 'SD-1.x pads with <|endoftext|>');
  const r = tok.encode('A Red circle on a gray background');
  const words = ['a', 'red', 'circle', 'on', 'a', 'gray', 'background'].map((w) => vocab[w]!);
  assert.deepEqual(r.ids.slice(0, 9), [tok.bosId, ...words, tok.eosId]);
  assert.equal(r.ids.length, 77);
  assert.ok(r.ids.slice(9).every((id) => id === tok.padId));
  assert.equal(r.length, 9);
  assert.equal(r.tokenCount, 7);
  assert.equal(r.truncated, undefined);
});

test('the empty prompt is bos, eos and padding', () => {
  const r = tok.encode('');
  assert.deepEqual(r.ids.slice(0, 2), [tok.bosId, tok.eosId]);
  assert.equal(r.length, 2);
  assert.equal(r.ids.length, 77);
  assert.equal(r.truncated, undefined);
});

test('a prompt longer than 75 tokens keeps the first 75, ends with eos and reports the dropped words', () => {
  const long = `${'red circle '.repeat(37)}above blue square`; // 74 + 3 tokens
  const r = tok.encode(long);
  assert.equal(r.ids.length, 77);
  assert.equal(r.ids[76], tok.eosId);
  assert.equal(r.ids[75], vocab.above);
  assert.equal(r.tokenCount, 77);
  assert.equal(r.truncated, 'blue square');
  assert.equal(truncationWarning(tok.maxLength, r.truncated), "prompt truncated after 77 tokens: dropped 'blue square'");
  // exactly 75 tokens fit without a cut
  assert.equal(tok.encode('red circle '.repeat(37) + 'above').truncated, undefined);
});

test('max length and pad token come from tokenizer_config.json (e.g. SD-2 pads with id 0)', () => {
  const other = tempDir('tok');
  copyFileSync(join(dir, 'tokenizer.json'), join(other, 'tokenizer.json'));
  const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(other, 'tokenizer_config.json'), JSON.stringify({ ...config, model_max_length: 8, pad_token: ',' }));
  const t = ClipTokenizer.load(other);
  assert.equal(t.maxLength, 8);
  assert.equal(t.padId, vocab[',']);
  const r = t.encode('a red circle');
  assert.deepEqual(r.ids, [t.bosId, vocab.a!, vocab.red!, vocab.circle!, t.eosId, vocab[',']!, vocab[',']!, vocab[',']!]);
  assert.equal(t.encode('a red circle on a gray background').truncated, 'background'); // 7 tokens, room for 6
});

test('a folder without tokenizer.json says which file the engine needs', () => {
  assert.throws(() => ClipTokenizer.load(tempDir('notok')), /has no tokenizer\.json; this engine reads the "fast" tokenizer file/);
});
