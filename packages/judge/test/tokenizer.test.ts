// The Python tokenizer (tools/tiny-sd/domain.py encode) and @huggingface/tokenizers on models/tiny-sd/tokenizer
// must give identical ids; the fixture holds ids produced by Python.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Tokenizer } from '@huggingface/tokenizers';

const dir = new URL('../../../models/tiny-sd/tokenizer/', import.meta.url);
const tokJson = JSON.parse(readFileSync(new URL('tokenizer.json', dir), 'utf8')) as {
  padding: { pad_id: number; strategy: { Fixed: number } };
};
const tokConfig = JSON.parse(readFileSync(new URL('tokenizer_config.json', dir), 'utf8')) as { model_max_length: number };
const expected = JSON.parse(readFileSync(new URL('./fixtures/tokenizer-expected.json', import.meta.url), 'utf8')) as {
  text: string;
  ids: number[];
}[];

function encode77(tok: Tokenizer, text: string): number[] {
  const max = tokConfig.model_max_length;
  const ids = tok.encode(text).ids.slice(0, max);
  if (ids.length === max) ids[max - 1] = tokJson.padding.pad_id; // keep the EOS on truncation (CLIP-style)
  while (ids.length < max) ids.push(tokJson.padding.pad_id);
  return ids;
}

test('@huggingface/tokenizers encodes like the Python tokenizer (padded to 77 with <|endoftext|>)', () => {
  const tok = new Tokenizer(tokJson, tokConfig);
  assert.equal(tokConfig.model_max_length, 77);
  assert.equal(tokJson.padding.strategy.Fixed, 77);
  for (const e of expected) assert.deepEqual(encode77(tok, e.text), e.ids, JSON.stringify(e.text));
});

test('special tokens: <|endoftext|> has the highest id, unknown words map to <|unk|>', () => {
  const tok = new Tokenizer(tokJson, tokConfig);
  const eos = tok.token_to_id('<|endoftext|>')!;
  const bos = tok.token_to_id('<|startoftext|>')!;
  const unk = tok.token_to_id('<|unk|>')!;
  const vocab = (tokJson as unknown as { model: { vocab: Record<string, number> } }).model.vocab;
  assert.equal(eos, Math.max(...Object.values(vocab)));
  const ids = tok.encode('a zebra-striped unicorn').ids;
  assert.equal(ids[0], bos);
  assert.equal(ids.at(-1), eos);
  assert.ok(ids.includes(unk));
  assert.ok(!ids.slice(1, -1).includes(eos));
});
