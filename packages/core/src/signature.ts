/**
 * Input signatures: the cache key of a node's outputs.
 *
 * A node's signature hashes what determines its outputs: its class type, its constant inputs (canonical JSON,
 * so key order does not matter), for each linked input the signature of the source node and the output slot,
 * and the result of its `fingerprint` hook. It does not include the node id, so an identical sub-graph under
 * other ids (a pasted copy, another workflow) has the same signatures and shares cached outputs, as in
 * ComfyUI. Two exceptions, both ComfyUI's:
 * - a node whose definition asks for the hidden `UNIQUE_ID` input may behave differently per id (it reports to
 *   its own widget, stores per-node state), so its id is part of its signature;
 * - a `fingerprint` returning `NaN` means "different every time": the signature gets a per-run, per-node
 *   nonce, so it never matches a cached entry (and neither do its descendants', which include it).
 * Output nodes are not special: ComfyUI caches `SaveImage` like any node, which is why an unchanged resubmitted
 * prompt runs nothing (the executor re-sends the cached UI output so clients still get the images).
 */
import { createHash, randomUUID } from 'node:crypto';
import type { AnyNodeDefinition, HostPaths } from './node-definition.ts';
import type { Logger } from './logger.ts';
import type { NodeRegistry } from './registry.ts';
import { isLink, type ApiNode, type ApiPrompt } from './workflow/api-format.ts';
import { ownValue } from './own-keys.ts';

/** Hex digits kept from the sha256 (128 bits): short in logs, no realistic collision. */
const SIGNATURE_HEX_LENGTH = 32;
/** Bumped when the signature's contents change, so entries of another layout never match. */
const SIGNATURE_VERSION = 1;

/** A prompt the executor cannot run as given (validation would have caught it): says which node and why. */
export class MalformedPromptError extends Error {
  override name = 'MalformedPromptError';
  constructor(
    message: string,
    /** The node the problem is at, or `null` for the prompt as a whole. */
    readonly nodeId: string | null,
  ) {
    super(message);
  }
}

/** A linked input of a node, as its definition declares it. */
export interface DeclaredLink {
  input: string;
  source: string;
  slot: number;
  lazy: boolean;
}

/**
 * The links on the inputs a node's definition declares, in input-name order. Inputs the definition does not
 * declare are ignored here and by the executor (ComfyUI passes only declared inputs to a node too), so a stray
 * key neither runs an upstream node nor changes the signature.
 */
export function declaredLinks(node: ApiNode, definition: AnyNodeDefinition): DeclaredLink[] {
  const links: DeclaredLink[] = [];
  for (const name of sortedInputNames(definition)) {
    const value = node.inputs[name];
    if (isLink(value)) links.push({ input: name, source: String(value[0]), slot: value[1], lazy: definition.inputs[name]!.lazy === true });
  }
  return links;
}

/** The node and its definition, or a `MalformedPromptError` naming what is missing. */
export function nodeAndDefinition(
  prompt: ApiPrompt,
  registry: NodeRegistry,
  id: string,
  linkedFrom?: { node: string; input: string },
): { node: ApiNode; definition: AnyNodeDefinition } {
  const node = ownValue(prompt, id);
  if (!node || typeof node !== 'object' || typeof node.class_type !== 'string') {
    const where = linkedFrom ? `Input "${linkedFrom.input}" of node ${linkedFrom.node} links to node ${id}, which` : `Node ${id}`;
    const what = node ? 'has no class_type' : 'is not in the prompt';
    throw new MalformedPromptError(`${where} ${what}. Validate the prompt before running it.`, linkedFrom?.node ?? id);
  }
  if (typeof node.inputs !== 'object' || node.inputs === null) {
    throw new MalformedPromptError(`Node ${id} (${node.class_type}) has no "inputs" object.`, id);
  }
  const definition = registry.get(node.class_type);
  if (!definition) {
    throw new MalformedPromptError(
      `Node ${id} has class_type "${node.class_type}", which no loaded node pack defines. Install the pack or remove the node.`,
      id,
    );
  }
  return { node, definition };
}

/**
 * `targets` and all their declared ancestors, dependencies first (each node after every node it links from).
 * Throws `MalformedPromptError` for a missing node, an unknown class or a cycle. Iterative, so a very long
 * chain does not overflow the stack.
 */
export function dependencyOrder(prompt: ApiPrompt, registry: NodeRegistry, targets: Iterable<string>): string[] {
  const order: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  for (const target of targets) {
    if (state.get(target) === 'done') continue;
    nodeAndDefinition(prompt, registry, target);
    const stack: Array<{ id: string; links: DeclaredLink[]; next: number }> = [];
    const open = (id: string) => {
      const { node, definition } = nodeAndDefinition(prompt, registry, id);
      state.set(id, 'open');
      stack.push({ id, links: declaredLinks(node, definition), next: 0 });
    };
    open(target);
    while (stack.length) {
      const frame = stack[stack.length - 1]!;
      const link = frame.links[frame.next++];
      if (!link) {
        stack.pop();
        state.set(frame.id, 'done');
        order.push(frame.id);
        continue;
      }
      const seen = state.get(link.source);
      if (seen === 'done') continue;
      if (seen === 'open') {
        const cycle = stack.slice(stack.findIndex((f) => f.id === link.source)).map((f) => f.id);
        throw new MalformedPromptError(`The graph has a cycle: ${[...cycle, link.source].join(' -> ')}`, frame.id);
      }
      nodeAndDefinition(prompt, registry, link.source, { node: frame.id, input: link.input });
      open(link.source);
    }
  }
  return order;
}

export interface SignatureOptions {
  /** Makes `NaN` fingerprints unique to this run. Default: a random UUID. */
  runNonce?: string;
  /** Where a failing `fingerprint` hook is reported (it then counts as `NaN`, as ComfyUI's IS_CHANGED). */
  logger?: Logger;
  /** The host's folders, passed to `fingerprint` hooks (the files a node reads are looked up there first). */
  paths?: HostPaths;
}

/**
 * Signatures of `targets` and all their ancestors, memoised for this call (one call per run): each node's
 * `fingerprint` hook runs once. Returns node id -> short hex signature.
 */
export async function computeSignatures(
  prompt: ApiPrompt,
  registry: NodeRegistry,
  targets: Iterable<string>,
  options: SignatureOptions = {},
): Promise<Map<string, string>> {
  const nonce = options.runNonce ?? randomUUID();
  const signatures = new Map<string, string>();
  for (const id of dependencyOrder(prompt, registry, targets)) {
    const { node, definition } = nodeAndDefinition(prompt, registry, id);
    // The key text is built by hand (the generic canonicalJson only for object-valued constants and
    // fingerprints): this runs for every node of every prompt, fully cached re-runs included.
    let key = `v${SIGNATURE_VERSION}|${JSON.stringify(node.class_type)}|`;
    const constants: Record<string, unknown> = {};
    for (const name of sortedInputNames(definition)) {
      const value = node.inputs[name];
      if (value === undefined) continue;
      if (isLink(value)) {
        key += `${JSON.stringify(name)}=link:${signatures.get(String(value[0]))}:${value[1]};`;
      } else {
        key += `${JSON.stringify(name)}=${encodeConstant(value)};`;
        constants[name] = value;
      }
    }
    if (definition.fingerprint) {
      const fingerprint = await runFingerprint(definition, id, constants, options);
      const uncacheable = typeof fingerprint === 'number' && Number.isNaN(fingerprint);
      key += uncacheable ? `|uncacheable:${JSON.stringify(`${nonce}:${id}`)}` : `|fingerprint:${canonicalJson(fingerprint)}`;
    }
    if (Object.values(definition.hidden ?? {}).includes('UNIQUE_ID')) key += `|node:${JSON.stringify(id)}`;
    signatures.set(id, hashHex(key));
  }
  return signatures;
}

async function runFingerprint(
  definition: AnyNodeDefinition,
  id: string,
  constants: Record<string, unknown>,
  options: SignatureOptions,
): Promise<unknown> {
  try {
    return await definition.fingerprint!(constants as never, { nodeId: id, ...(options.paths ? { paths: options.paths } : {}) });
  } catch (error) {
    options.logger?.warn(
      `fingerprint() of node ${id} (${definition.id}) failed, so the node will run: ${error instanceof Error ? error.message : String(error)}`,
    );
    return NaN;
  }
}

/** Primitives (nearly every widget value) skip the generic encoder; objects and non-finite numbers use it. */
function encodeConstant(value: unknown): string {
  if (typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))) {
    return JSON.stringify(value);
  }
  return canonicalJson(value);
}

const inputNamesByDefinition = new WeakMap<AnyNodeDefinition, string[]>();

/** A definition's input names, sorted once: signatures and link lists must not depend on declaration order. */
function sortedInputNames(definition: AnyNodeDefinition): string[] {
  let names = inputNamesByDefinition.get(definition);
  if (!names) {
    names = Object.keys(definition.inputs).sort();
    inputNamesByDefinition.set(definition, names);
  }
  return names;
}

function hashHex(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, SIGNATURE_HEX_LENGTH);
}

/**
 * A deterministic JSON text for any value: object keys sorted (so `{a, b}` and `{b, a}` agree), non-finite
 * numbers, bigints, typed arrays, Dates, Maps and Sets encoded distinctly instead of collapsing to `null` or
 * `{}`, cycles cut. Used for signatures; not meant to be parsed back.
 */
export function canonicalJson(value: unknown): string {
  return encode(value, new Set());
}

function encode(value: unknown, ancestors: Set<object>): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : `{"$number":"${String(value)}"}`;
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return `{"$bigint":"${value.toString()}"}`;
    case 'object':
      break;
    default:
      return 'null'; // undefined, functions, symbols: as JSON.stringify does inside arrays
  }
  if (value === null) return 'null';
  if (ancestors.has(value)) return '{"$cycle":true}';
  if (ArrayBuffer.isView(value)) {
    const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
    return `{"$bytes":${JSON.stringify(value.constructor.name)},"data":"${bytes}"}`;
  }
  if (value instanceof ArrayBuffer) return `{"$bytes":"ArrayBuffer","data":"${Buffer.from(value).toString('base64')}"}`;
  if (value instanceof Date) return `{"$date":${JSON.stringify(Number.isNaN(value.getTime()) ? 'invalid' : value.toISOString())}}`;

  ancestors.add(value);
  try {
    if (Array.isArray(value)) return `[${value.map((item) => encode(item, ancestors)).join(',')}]`;
    if (value instanceof Map) {
      const entries = [...value].map(([k, v]) => `[${encode(k, ancestors)},${encode(v, ancestors)}]`).sort();
      return `{"$map":[${entries.join(',')}]}`;
    }
    if (value instanceof Set) return `{"$set":[${[...value].map((item) => encode(item, ancestors)).sort().join(',')}]}`;
    const object = value as Record<string, unknown>;
    const parts: string[] = [];
    for (const key of Object.keys(object).sort()) {
      if (object[key] === undefined) continue; // as JSON.stringify: an undefined property is an absent one
      parts.push(`${JSON.stringify(key)}:${encode(object[key], ancestors)}`);
    }
    return `{${parts.join(',')}}`;
  } finally {
    ancestors.delete(value);
  }
}
