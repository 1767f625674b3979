/**
 * A node's inputs for one run: resolved from constants and its sources' outputs, then mapped over lists
 * (ComfyUI's `_map_node_over_list`).
 *
 * Every output slot is stored as a list. A node without `inputIsList` whose inputs carry lists runs once per
 * index up to the longest list (shorter lists repeat their last element); if one of its inputs is an empty
 * list it runs zero times. Lazy inputs do not count towards the number of runs (their length is unknown
 * until evaluated); run `i` gets element `i` (or the last) of the evaluated list. A node with
 * `inputIsList: true` runs once and receives whole arrays (constants as one-element arrays).
 *
 * A call whose inputs hold an ExecutionBlocker (the element it reads, or any element for `inputIsList`) is
 * not made: its outputs are blockers.
 */
import { ExecutionBlocker, type AnyNodeDefinition, type HiddenValues, type InputSpec } from '../node-definition.ts';
import { isLink, type ApiNode } from '../workflow/api-format.ts';
import { ownValue } from '../own-keys.ts';
import { inputNames } from '../prompt-graph.ts';

/** What an input of a node resolves to before list mapping. */
export type ResolvedInput =
  | { kind: 'absent' }
  | { kind: 'list'; values: unknown[] }
  | { kind: 'lazy'; evaluate: () => Promise<unknown[]>; source: string | undefined; slot: number };

/** Where a linked input's value comes from: the list a source produced (a promise if it must run again first). */
export type LinkedValues = (source: string, slot: number, input: string) => unknown[] | Promise<unknown[]>;

/**
 * The node's inputs (declared ones, plus undeclared keys for a node that accepts them): constants as
 * one-element lists, non-lazy links as their source's list, `rawLink` inputs as the link, lazy ones as an
 * evaluation the node may ask for.
 */
export function resolveInputs(
  node: ApiNode,
  definition: AnyNodeDefinition,
  linked: LinkedValues,
  lazyLink: (input: string, source: string, slot: number) => () => Promise<unknown[]>,
): Map<string, ResolvedInput> | Promise<Map<string, ResolvedInput>> {
  const inputs = new Map<string, ResolvedInput>();
  // Sources are normally in the run already: then this is synchronous (no turn of the event loop per node).
  const waiting: Array<Promise<void>> = [];
  for (const name of inputNames(node, definition)) {
    const spec: InputSpec | undefined = Object.hasOwn(definition.inputs, name) ? definition.inputs[name] : undefined;
    const raw = ownValue(node.inputs, name);
    if (raw === undefined) {
      inputs.set(name, { kind: 'absent' });
    } else if (!isLink(raw)) {
      inputs.set(name, spec?.lazy ? { kind: 'lazy', evaluate: async () => [raw], source: undefined, slot: 0 } : { kind: 'list', values: [raw] });
    } else if (spec?.kind === 'SOCKET' && spec.rawLink) {
      inputs.set(name, { kind: 'list', values: [[String(raw[0]), raw[1]]] });
    } else if (!spec?.lazy) {
      const values = linked(String(raw[0]), raw[1], name);
      if (Array.isArray(values)) inputs.set(name, { kind: 'list', values });
      else waiting.push(values.then((list) => void inputs.set(name, { kind: 'list', values: list })));
    } else {
      inputs.set(name, { kind: 'lazy', evaluate: lazyLink(name, String(raw[0]), raw[1]), source: String(raw[0]), slot: raw[1] });
    }
  }
  if (waiting.length === 0) return inputs;
  // Keep the input-name order the node sees, whatever order the re-run sources finished in.
  return Promise.all(waiting).then(() => new Map(inputNames(node, definition).filter((n) => inputs.has(n)).map((n) => [n, inputs.get(n)!])));
}

/** How many times a node runs: once with whole lists, else once per index of its longest non-lazy list. */
export function callCount(definition: AnyNodeDefinition, inputs: ReadonlyMap<string, ResolvedInput>): number {
  if (definition.inputIsList) return 1;
  let longest = 1;
  for (const input of inputs.values()) {
    if (input.kind !== 'list') continue;
    if (input.values.length === 0) return 0;
    longest = Math.max(longest, input.values.length);
  }
  return longest;
}

/** Element `index` of a list, or its last element when the list is shorter (ComfyUI's rule). */
export function elementAt(values: readonly unknown[], index: number): unknown {
  return values[Math.min(index, values.length - 1)];
}

/** The blocker call `index` would read, if any. */
export function blockerOf(definition: AnyNodeDefinition, inputs: ReadonlyMap<string, ResolvedInput>, index: number): ExecutionBlocker | undefined {
  for (const input of inputs.values()) {
    if (input.kind !== 'list') continue;
    if (definition.inputIsList) {
      const found = input.values.find((v) => v instanceof ExecutionBlocker);
      if (found) return found as ExecutionBlocker;
    } else {
      const value = elementAt(input.values, index);
      if (value instanceof ExecutionBlocker) return value;
    }
  }
  return undefined;
}

/** The `inputs` argument of call `index`: list elements (or whole lists), lazy functions, hidden values. */
export function callArguments(
  definition: AnyNodeDefinition,
  inputs: ReadonlyMap<string, ResolvedInput>,
  index: number,
  hidden: HiddenValues,
): Record<string, unknown> {
  const wholeLists = definition.inputIsList === true;
  const args: Record<string, unknown> = {};
  for (const [name, input] of inputs) {
    if (input.kind === 'absent') args[name] = undefined;
    else if (input.kind === 'list') args[name] = wholeLists ? input.values : elementAt(input.values, index);
    else {
      const { evaluate } = input;
      args[name] = async () => {
        const values = await evaluate();
        return wholeLists ? values : elementAt(values, index);
      };
    }
  }
  for (const [name, kind] of Object.entries(definition.hidden ?? {})) args[name] = hidden[kind];
  return args;
}

/**
 * What `checkLazyStatus` sees for call `index`: values where available (lazy ones already evaluated, or
 * whose source is available), `undefined` for lazy inputs not evaluated yet.
 */
export function lazyStatusArguments(
  definition: AnyNodeDefinition,
  inputs: ReadonlyMap<string, ResolvedInput>,
  index: number,
  hidden: HiddenValues,
  lazyValue: (name: string, input: Extract<ResolvedInput, { kind: 'lazy' }>) => unknown[] | undefined,
): Record<string, unknown> {
  const args = callArguments(definition, inputs, index, hidden);
  for (const [name, input] of inputs) {
    if (input.kind !== 'lazy') continue;
    const values = lazyValue(name, input);
    args[name] = values === undefined ? undefined : definition.inputIsList ? values : elementAt(values, index);
  }
  return args;
}
