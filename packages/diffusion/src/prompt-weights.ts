/**
 * Prompt weights as ComfyUI's default syntax reads them (comfy/sd1_clip.py: escape_important, parse_parentheses,
 * token_weights, unescape_important), reimplemented from their behaviour:
 *
 * - `(text)` multiplies the weight of `text` by 1.1; nesting multiplies again: `((text))` = 1.1 * 1.1.
 * - `(text:1.3)` sets the weight to 1.3 (it replaces the enclosing factor rather than multiplying it: in
 *   `((text:1.3))` the weight is 1.3); the number is whatever follows the last `:` inside the parentheses, read as
 *   Python's float() reads it, and when it does not read (`(a:b)`, `(a:1.3)` wrapped in more parentheses) the
 *   parentheses count as a plain 1.1 and the colon stays in the text. `((text):1.3)` is 1.3 * 1.1.
 * - `\(` and `\)` are literal parentheses (the backslash is dropped); square brackets, `BREAK` and A1111's other
 *   syntax mean nothing.
 * - Unbalanced parentheses: an unclosed `(` leaves the rest of the text as plain text, the `(` included; a `)`
 *   with no open `(` is plain text, and after it (the nesting count below zero, as in ComfyUI) no parenthesis is
 *   special until the count comes back, so `a) (b:1.2)` is one plain segment.
 *
 * The segments keep every character that is not syntax (spaces included): ComfyUI tokenizes each one on its own.
 */

/** A run of prompt text with one weight. */
export interface WeightedSegment {
  readonly text: string;
  readonly weight: number;
}

// Stand-ins for escaped parentheses while parsing: NUL + a control character never typed in a prompt.
const ESCAPED_CLOSE = '\0\u0001';
const ESCAPED_OPEN = '\0\u0002';

/** A weight ComfyUI would take but that can only give NaN or infinite conditioning (`(a:nan)`, `(a:inf)`). */
export class PromptWeightError extends RangeError {
  override name = 'PromptWeightError';
}

/** parsePromptWeights, refusing weights that are not finite numbers. */
export function parseFiniteWeights(text: string): WeightedSegment[] {
  const segments = parsePromptWeights(text);
  const bad = segments.find((s) => !Number.isFinite(s.weight));
  if (bad) throw new PromptWeightError(`the weight of "${bad.text}" is ${bad.weight}: prompt weights must be finite numbers`);
  return segments;
}

/** The prompt's segments and their weights, in order (empty text gives []). */
export function parsePromptWeights(text: string): WeightedSegment[] {
  const escaped = text.replaceAll('\\)', ESCAPED_CLOSE).replaceAll('\\(', ESCAPED_OPEN);
  return tokenWeights(escaped, 1.0).map(({ text: t, weight }) => ({ text: t.replaceAll(ESCAPED_CLOSE, ')').replaceAll(ESCAPED_OPEN, '('), weight }));
}

/**
 * Top-level pieces: each balanced `( ... )` group is one piece (parentheses included), the text between groups
 * another. The nesting count goes negative on an unmatched `)`, and a `(` then only brings it back up.
 */
function splitParentheses(text: string): string[] {
  const pieces: string[] = [];
  let current = '';
  let depth = 0;
  for (const ch of text) {
    if (ch === '(') {
      if (depth === 0) {
        if (current) pieces.push(current);
        current = '(';
      } else {
        current += ch;
      }
      depth++;
    } else if (ch === ')') {
      depth--;
      if (depth === 0) {
        pieces.push(`${current})`);
        current = '';
      } else {
        current += ch;
      }
    } else {
      current += ch;
    }
  }
  if (current) pieces.push(current);
  return pieces;
}

function tokenWeights(text: string, weight: number): WeightedSegment[] {
  const out: WeightedSegment[] = [];
  for (const piece of splitParentheses(text)) {
    if (piece.length >= 2 && piece.startsWith('(') && piece.endsWith(')')) {
      let inner = piece.slice(1, -1);
      let w = weight * 1.1;
      const colon = inner.lastIndexOf(':');
      if (colon > 0) {
        const explicit = pythonFloat(inner.slice(colon + 1));
        if (explicit !== undefined) {
          w = explicit;
          inner = inner.slice(0, colon);
        }
      }
      out.push(...tokenWeights(inner, w));
    } else {
      out.push({ text: piece, weight });
    }
  }
  return out;
}

// Python's float() literal: digits with single underscores between them, an optional fraction and exponent.
const DIGITS = '\\d(?:_?\\d)*';
const FLOAT_LITERAL = new RegExp(`^[+-]?(?:(?:${DIGITS})?\\.${DIGITS}|${DIGITS}\\.?)(?:[eE][+-]?${DIGITS})?$`);
const SPECIAL = /^([+-]?)(inf|infinity|nan)$/i;

/**
 * The number Python's float(s) returns, or undefined where it raises. Surrounding whitespace is ignored, `_`
 * separates digits, `inf`, `infinity` and `nan` are accepted in any case (non-ASCII digits, which Python also
 * reads, are not).
 */
export function pythonFloat(s: string): number | undefined {
  const t = s.trim();
  const special = SPECIAL.exec(t);
  if (special) return special[2]!.toLowerCase() === 'nan' ? NaN : special[1] === '-' ? -Infinity : Infinity;
  if (!FLOAT_LITERAL.test(t)) return undefined;
  return Number(t.replaceAll('_', ''));
}
