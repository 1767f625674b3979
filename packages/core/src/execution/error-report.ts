/**
 * What an error report says about values: inputs and outputs summarised so a report stays small and JSON-safe
 * whatever the node held (tensors, handles, long strings), and stack frames as ComfyUI's `traceback` list.
 */
import { NodeInputError } from '../errors.ts';
import type { ResolvedInput } from './node-inputs.ts';

export function tracebackOf(error: unknown): string[] {
  // A NodeInputError is the user's to fix (bad file, bad size): its message is the whole story.
  if (error instanceof NodeInputError) return [error.message];
  if (!(error instanceof Error) || typeof error.stack !== 'string') return [];
  return error.stack
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('at '));
}

export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') return `an object (${value.constructor?.name ?? 'no prototype'})`;
  return typeof value;
}

const MAX_STRING = 200;
const MAX_ITEMS = 8;
const MAX_KEYS = 12;

/** Inputs of a failing node for the error report; lazy ones show as `<lazy>`. */
export function summarizeInputs(inputs: ReadonlyMap<string, ResolvedInput>): Record<string, unknown[]> {
  const summary: Record<string, unknown[]> = {};
  for (const [name, input] of inputs) {
    if (input.kind === 'list') summary[name] = summarizeList(input.values);
    else if (input.kind === 'lazy') summary[name] = ['<lazy>'];
  }
  return summary;
}

export function summarizeList(values: unknown[]): unknown[] {
  return summarizeValue(values) as unknown[];
}

/**
 * A small JSON-safe picture of a value for error reports: numbers, booleans and short strings as they are,
 * long strings cut, typed arrays as `Float32Array[1024]`, class instances (handles) as their class name,
 * arrays and plain objects shallowly.
 */
export function summarizeValue(value: unknown, depth = 0): unknown {
  switch (typeof value) {
    case 'undefined':
      return null;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'boolean':
      return value;
    case 'string':
      return value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}… (${value.length} chars)` : value;
    case 'bigint':
      return `${value}n`;
    case 'function':
      return `<function ${value.name || 'anonymous'}>`;
    case 'symbol':
      return value.toString();
  }
  if (value === null) return null;
  if (ArrayBuffer.isView(value)) {
    const length = 'length' in value ? (value as unknown as { length: number }).length : value.byteLength;
    return `${value.constructor.name}[${length}]`;
  }
  if (value instanceof ArrayBuffer) return `ArrayBuffer[${value.byteLength}]`;
  if (Array.isArray(value)) {
    if (depth >= 2) return `Array[${value.length}]`;
    const items = value.slice(0, MAX_ITEMS).map((v) => summarizeValue(v, depth + 1));
    if (value.length > MAX_ITEMS) items.push(`… ${value.length - MAX_ITEMS} more`);
    return items;
  }
  const proto = Object.getPrototypeOf(value) as object | null;
  if (proto !== Object.prototype && proto !== null) return `<${(value as object).constructor?.name ?? 'object'}>`;
  if (depth >= 2) return 'Object';
  const out: Record<string, unknown> = {};
  const keys = Object.keys(value as object);
  for (const key of keys.slice(0, MAX_KEYS)) out[key] = summarizeValue((value as Record<string, unknown>)[key], depth + 1);
  if (keys.length > MAX_KEYS) out['…'] = `${keys.length - MAX_KEYS} more keys`;
  return out;
}
