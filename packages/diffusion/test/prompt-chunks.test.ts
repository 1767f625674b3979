// ComfyUI's chunk layout (SDTokenizer.tokenize_with_weights) on the embedded model's whole-word tokenizer, where
// every vocabulary word is one token, so positions can be counted from the prompt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { chunkPrompt, ClipTokenizer, MAX_WORD_LENGTH, parsePromptWeights, type ChunkEntry, type EmbeddingVectors } from '../src/index.ts';
import { REPO_MODEL } from './fixtures/test-model.ts';

const tok = ClipTokenizer.load(join(REPO_MODEL, 'tokenizer'));
const S = tok.bosId;
const E = tok.eosId;
const P = tok.padId;
const id = (word: string) => {
  const [v, ...rest] = tok.tokenIds(word);
  assert.ok(v !== undefined && rest.length === 0, `"${word}" is one token`);
  return v;
};

/** Two embeddings of 2 and 9 vectors; every other name is unknown. */
const EMBEDDINGS: Record<string, EmbeddingVectors> = {
  shape2: { name: 'shape2', vectors: [Float32Array.of(1), Float32Array.of(2)] },
  long9: { name: 'long9', vectors: Array.from({ length: 9 }, (_, i) => Float32Array.of(i)) },
};

function chunks(prompt: string, withEmbeddings = true) {
  return chunkPrompt(parsePromptWeights(prompt), {
    tokenize: (t) => tok.tokenIds(t),
    startId: S,
    endId: E,
    padId: P,
    maxLength: 77,
    ...(withEmbeddings ? { embedding: (name: string) => EMBEDDINGS[name] } : {}),
  });
}

/** A chunk as [id or 'emb:name', weight] pairs, trailing padding dropped (checked separately). */
function layout(chunk: ChunkEntry[]): Array<[number | string, number]> {
  assert.equal(chunk.length, 77, 'every chunk has 77 positions');
  const end = chunk.findIndex((e) => e.kind === 'token' && e.special === true && e.id === E);
  assert.ok(chunk.slice(end + 1).every((e) => e.kind === 'token' && e.id === P && e.weight === 1), 'after the end token: padding');
  return chunk.slice(0, end + 1).map((e) => [e.kind === 'token' ? e.id : `emb:${e.name}`, e.weight]);
}

const words = (n: number, word = 'red') => Array.from({ length: n }, () => word).join(' ');

test('a prompt of up to 75 tokens is one chunk: start, tokens, end, padding', () => {
  const { chunks: c } = chunks(words(75));
  assert.equal(c.length, 1);
  assert.deepEqual(layout(c[0]!), [[S, 1], ...Array.from({ length: 75 }, () => [id('red'), 1] as [number, number]), [E, 1]]);
  const empty = chunks('').chunks;
  assert.deepEqual(layout(empty[0]!), [[S, 1], [E, 1]]);
});

test('one long unweighted prompt is one group: chunks are filled to 75 tokens (160 tokens -> 75, 75, 10)', () => {
  const { chunks: c } = chunks(`${words(100, 'red')} ${words(60, 'blue')}`);
  assert.deepEqual(c.map((x) => layout(x).length - 2), [75, 75, 10]);
  assert.equal(layout(c[1]!)[25]![0], id('red'), 'the cut falls inside the group, where the chunk is full');
  assert.equal(layout(c[1]!)[26]![0], id('blue'));
});

test('a weighted phrase shorter than 8 tokens that does not fit moves whole to the next chunk', () => {
  const { chunks: c } = chunks(`${words(72)} (blue square on the left:1.2)`);
  assert.equal(c.length, 2);
  const first = layout(c[0]!);
  assert.equal(first.length, 74, 'start + 72 tokens + end; the 3 free positions are padding');
  const second = layout(c[1]!);
  assert.deepEqual(second, [[S, 1], ...['blue', 'square', 'on', 'the', 'left'].map((w) => [id(w), 1.2] as [number, number]), [E, 1]]);
});

test(`a weighted phrase of ${MAX_WORD_LENGTH} or more tokens is cut where the chunk is full`, () => {
  const phrase = 'a large blue square on the top left of the image'; // 11 tokens
  const { chunks: c } = chunks(`${words(72)} (${phrase}:0.8)`);
  const first = layout(c[0]!);
  assert.equal(first.length, 77, 'full: start + 72 + 3 of the phrase + end');
  assert.deepEqual(first.slice(73, 76), ['a', 'large', 'blue'].map((w) => [id(w), 0.8]));
  assert.deepEqual(layout(c[1]!).slice(1, -1).map(([v]) => v), ['square', 'on', 'the', 'top', 'left', 'of', 'the', 'image'].map(id));
});

test('unweighted text between weighted phrases is a group of its own', () => {
  // 70 plain tokens, then (red:1.1) fits, then 5 plain tokens do not fit in the 4 positions left and move.
  const { chunks: c } = chunks(`${words(70, 'blue')} (red) circle at the top left`);
  assert.deepEqual(layout(c[0]!).slice(-3), [[id('blue'), 1], [id('red'), 1.1], [E, 1]]);
  assert.deepEqual(layout(c[1]!).map(([v]) => v), [S, ...['circle', 'at', 'the', 'top', 'left'].map(id), E]);
});

test('embeddings: vectors take positions with the segment\'s weight; 2 vectors move whole, 9 are cut', () => {
  const { chunks: c, warnings } = chunks('a embedding:shape2 circle, (embedding:long9:1.3)');
  assert.deepEqual(warnings, []);
  assert.deepEqual(layout(c[0]!), [
    [S, 1], [id('a'), 1], ['emb:shape2', 1], ['emb:shape2', 1], [id('circle'), 1], [id(','), 1],
    ...Array.from({ length: 9 }, () => ['emb:long9', 1.3] as [string, number]), [E, 1],
  ]);
  const moved = chunks(`${words(74)} embedding:shape2`).chunks;
  assert.equal(layout(moved[0]!).length, 76);
  assert.deepEqual(layout(moved[1]!), [[S, 1], ['emb:shape2', 1], ['emb:shape2', 1], [E, 1]]);
  const cut = chunks(`${words(70)} embedding:long9`).chunks;
  assert.equal(layout(cut[0]!).filter(([v]) => v === 'emb:long9').length, 5);
  assert.equal(layout(cut[1]!).filter(([v]) => v === 'emb:long9').length, 4);
});

test('embedding names: the first word; trailing commas tried without; unknown names dropped with a warning', () => {
  const { chunks: c, warnings } = chunks('embedding:shape2, red embedding:nothere blue embedding:nothere,');
  assert.deepEqual(layout(c[0]!).map(([v]) => v), [S, 'emb:shape2', 'emb:shape2', id(','), id('red'), id('blue'), id(','), E]);
  assert.deepEqual(warnings, ['embedding:nothere does not exist, ignoring it (as ComfyUI does)']);
  // only " embedding:" and "\nembedding:" start an embedding; "x,embedding:" is text
  const text = chunks('red,embedding:shape2').chunks;
  assert.ok(!layout(text[0]!).some(([v]) => v === 'emb:shape2'));
  const newline = chunks('red\nembedding:shape2\n').chunks;
  assert.deepEqual(layout(newline[0]!).map(([v]) => v), [S, id('red'), 'emb:shape2', 'emb:shape2', E]);
  // without embedding folders (ComfyUI's embedding_directory None) the words are tokenized as text
  const plain = chunks('embedding:shape2', false);
  assert.deepEqual(plain.warnings, []);
  assert.ok(!layout(plain.chunks[0]!).some(([v]) => typeof v === 'string'));
});
