import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFiniteWeights, parsePromptWeights, PromptWeightError, pythonFloat } from '../src/index.ts';

/**
 * ComfyUI's default prompt syntax (comfy/sd1_clip.py token_weights / parse_parentheses / escape_important), written
 * out as prompt -> [text, weight] segments. Weights are the doubles Python computes (1.1 * 1.1 = 1.2100000000000002).
 */
const COMFYUI_WEIGHTS: Array<[string, Array<[string, number]>]> = [
  ['a red circle', [['a red circle', 1]]],
  ['', []],
  // (x) multiplies by 1.1, nesting multiplies again
  ['a (red) circle', [['a ', 1], ['red', 1.1], [' circle', 1]]],
  ['((red))', [['red', 1.2100000000000002]]],
  ['a (b (c (d)))', [['a ', 1], ['b ', 1.1], ['c ', 1.2100000000000002], ['d', 1.3310000000000004]]],
  // (x:w) sets the weight; an inner explicit weight replaces the outer factor, an outer one multiplies inner (x)
  ['(red:1.5)', [['red', 1.5]]],
  ['((red:1.5))', [['red', 1.5]]],
  ['((red):1.5)', [['red', 1.6500000000000001]]],
  ['(a (b:0.5) c)', [['a ', 1.1], ['b', 0.5], [' c', 1.1]]],
  ['((a) b:0.8)', [['a', 0.8800000000000001], [' b', 0.8]]],
  // the number after the LAST colon, as Python's float() reads it
  ['(a:1.2:1.3)', [['a:1.2', 1.3]]],
  ['(a: 2 )', [['a', 2]]],
  ['(a:1_0)', [['a', 10]]],
  ['(a:.5e1)', [['a', 5]]],
  ['(a:-1)', [['a', -1]]],
  // no number: the parentheses are a plain 1.1 and the colon stays; a colon first is not a weight
  ['(red:x)', [['red:x', 1.1]]],
  ['(a:1e)', [['a:1e', 1.1]]],
  ['(:1.5)', [[':1.5', 1.1]]],
  ['()', []],
  // square brackets mean nothing
  ['[red] (b:x)', [['[red] ', 1], ['b:x', 1.1]]],
  // \( and \) are literal parentheses, the backslash dropped
  ['\\(red\\) (blue)', [['(red) ', 1], ['blue', 1.1]]],
  ['(a \\(b\\):1.2)', [['a (b)', 1.2]]],
  ['x (a\\:1.2) y', [['x ', 1], ['a\\', 1.2], [' y', 1]]],
  // unbalanced: an unclosed ( is text; after a stray ) nothing is special until the count recovers
  ['(red circle', [['(red circle', 1]]],
  ['a (b', [['a ', 1], ['(b', 1]]],
  ['a) (b:1.2)', [['a) (b:1.2)', 1]]],
  ['a) ((b)) c', [['a) (', 1], ['b', 1.1], [') c', 1]]],
  ['(a)) (b)', [['a', 1.1], [') (b)', 1]]],
  // whitespace and newlines are kept for the tokenizer
  ['a\n(b)', [['a\n', 1], ['b', 1.1]]],
];

test("parsePromptWeights follows ComfyUI's token_weights, case by case", () => {
  for (const [prompt, expected] of COMFYUI_WEIGHTS) {
    const got = parsePromptWeights(prompt).map((s) => [s.text, s.weight]);
    assert.deepEqual(got, expected, JSON.stringify(prompt));
  }
});

test('weights Python would read as nan or inf are refused, not turned into NaN conditioning', () => {
  assert.deepEqual(parsePromptWeights('(a:nan)').map((s) => s.weight), [NaN]);
  assert.deepEqual(parsePromptWeights('(a:-inf)').map((s) => s.weight), [-Infinity]);
  assert.throws(() => parseFiniteWeights('x (a:Infinity) y'), (err: unknown) => err instanceof PromptWeightError && /weight of "a" is Infinity/.test(err.message));
  assert.deepEqual(parseFiniteWeights('(a:1.2)'), [{ text: 'a', weight: 1.2 }]);
});

test("pythonFloat accepts what Python's float() accepts", () => {
  const ok: Array<[string, number]> = [['1', 1], [' 1.5 ', 1.5], ['-2.', -2], ['.5', 0.5], ['1e3', 1000], ['1E-2', 0.01], ['+3', 3], ['1_000.000_1', 1000.0001], ['INF', Infinity], ['-Infinity', -Infinity]];
  for (const [s, v] of ok) assert.equal(pythonFloat(s), v, s);
  assert.ok(Number.isNaN(pythonFloat('nan')));
  for (const s of ['', '.', 'e3', '1e', '1__0', '_1', '1_', '0x10', '1.2.3', '1 2', 'infinit']) assert.equal(pythonFloat(s), undefined, s);
});
