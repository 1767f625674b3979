/**
 * JSON number literals as they were written. `JSON.parse` turns `1` and `1.0` into the same number, but a node
 * that validates its own inputs (ComfyUI's VALIDATE_INPUTS) may need to tell an int from a float, as Python's
 * `json` does. Prompts parsed here remember, per object, which keys held a float literal with an integral
 * value (`1.0`, `2e3`); any other number's kind follows from its value.
 */
import { parse } from 'lossless-json';

export type NumberKind = 'int' | 'float';

/** Objects -> keys whose literal was a float with an integral value. */
const floatLiteralKeys = new WeakMap<object, Set<string>>();

class IntegralFloat {
  constructor(readonly value: number) {}
}

/**
 * `JSON.parse`, keeping number literal kinds (read them with `numberKind`). A text JSON.parse accepts but the
 * strict parser refuses (a key written twice) is parsed by JSON.parse, as Python's json would, without kinds.
 */
export function parseJsonKeepingNumberKinds(text: string): unknown {
  let parsed: unknown;
  try {
    parsed = parse(text, null, (literal: string) => {
      const value = Number(literal);
      return Number.isInteger(value) && /[.eE]/.test(literal) ? new IntegralFloat(value) : value;
    });
  } catch (error) {
    if (error instanceof SyntaxError && /^Duplicate key/.test(error.message)) return JSON.parse(text) as unknown;
    throw error;
  }
  return unwrap(parsed);
}

/** Replaces the markers by numbers, iteratively (a deeply nested body must not overflow the stack). */
function unwrap(root: unknown): unknown {
  if (root instanceof IntegralFloat) return root.value;
  const stack: unknown[] = [root];
  while (stack.length) {
    const value = stack.pop();
    if (typeof value !== 'object' || value === null) continue;
    const container = value as Record<string, unknown>;
    for (const key of Object.keys(container)) {
      const item = container[key];
      if (item instanceof IntegralFloat) {
        container[key] = item.value;
        markFloatLiteral(container, key);
      } else if (typeof item === 'object' && item !== null) stack.push(item);
    }
  }
  return root;
}

/** Records that `object[key]` was written as a float literal (used when copying a parsed prompt). */
export function markFloatLiteral(object: object, key: string): void {
  (floatLiteralKeys.get(object) ?? floatLiteralKeys.set(object, new Set()).get(object)!).add(key);
}

/** The kind of `object[key]` as written: 'float' for `1.0` or `1.5`, 'int' for `1`; undefined for a non-number. */
export function numberKind(object: object, key: string): NumberKind | undefined {
  const value = (object as Record<string, unknown>)[key];
  if (typeof value !== 'number') return undefined;
  if (!Number.isInteger(value)) return 'float';
  return floatLiteralKeys.get(object)?.has(key) ? 'float' : 'int';
}

/** Copies the float-literal marks of `from` onto `to` (a copy of the same object). */
export function copyNumberKinds(from: object, to: object): void {
  const keys = floatLiteralKeys.get(from);
  if (keys) floatLiteralKeys.set(to, new Set(keys));
}
