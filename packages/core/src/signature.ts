/**
 * Input signatures: the cache key of a node's outputs.
 *
 * A node's signature hashes what determines its outputs: its class type, its constant inputs (canonical JSON,
 * so key order does not matter), for each linked input the signature of the source node and the output slot,
 * and the result of its `fingerprint` hook. Its inputs are those of the prompt graph's rule (`prompt-graph.ts`). It does not include the node id, so an identical sub-graph under
 * other ids (a pasted copy, another workflow) has the same signatures and shares cached outputs, as in
 * ComfyUI. Two exceptions, both ComfyUI's:
 * - a node whose definition asks for the hidden `UNIQUE_ID` input may behave differently per id (it reports to
 *   its own widget, stores per-node state), so its id is part of its signature, as it is for a node declared
 *   `notIdempotent`;
 * - a `fingerprint` returning `NaN` means "different every time": the signature gets a per-run, per-node
 *   nonce, so it never matches a cached entry (and neither do its descendants', which include it).
 * Output nodes are not special: ComfyUI caches `SaveImage` like any node, which is why an unchanged resubmitted
 * prompt runs nothing (the executor re-sends the cached UI output so clients still get the images).
 */
import { createHash, randomUUID } from 'node:crypto';
import type { AnyNodeDefinition, HostPaths } from './node-definition.ts';
import type { Logger } from './logger.ts';
import type { NodeRegistry } from './registry.ts';
import { isLink, type ApiPrompt } from './workflow/api-format.ts';
import { ownValue } from './own-keys.ts';
import { inputNames, MalformedPromptError, PromptGraph, type GraphLink } from './prompt-graph.ts';

/** Hex digits kept from the sha256 (128 bits): short in logs, no realistic collision. */
const SIGNATURE_HEX_LENGTH = 32;
/** Bumped when the signature's contents change, so entries of another layout never match. */
const SIGNATURE_VERSION = 1;

/**
 * Signatures of the nodes of one prompt graph, computed on demand and kept for the run: each node's
 * `fingerprint` hook runs once. Nodes an expansion adds are signed when they are first asked for.
 */
export class Signatures {
  readonly #graph: PromptGraph;
  readonly #options: SignatureOptions;
  readonly #nonce: string;
  readonly #signatures = new Map<string, string>();

  constructor(graph: PromptGraph, options: SignatureOptions = {}) {
    this.#graph = graph;
    this.#options = options;
    this.#nonce = options.runNonce ?? randomUUID();
  }

  get(id: string): string | undefined {
    return this.#signatures.get(id);
  }

  entries(): IterableIterator<[string, string]> {
    return this.#signatures.entries();
  }

  /** Signs `targets` and all their ancestors (lazy links included) not signed yet. */
  async compute(targets: Iterable<string>): Promise<void> {
    for (const id of this.#unsignedInOrder(targets)) this.#signatures.set(id, await this.#sign(id));
  }

  async #sign(id: string): Promise<string> {
    const { node, definition } = this.#graph.require(id);
    // The key text is built by hand (the generic canonicalJson only for object-valued constants and
    // fingerprints): this runs for every node of every prompt, fully cached re-runs included.
    let key = `v${SIGNATURE_VERSION}|${JSON.stringify(node.class_type)}|`;
    const constants: Record<string, unknown> = {};
    for (const name of inputNames(node, definition)) {
      const value = ownValue(node.inputs, name);
      if (value === undefined) continue;
      if (isLink(value)) {
        key += `${JSON.stringify(name)}=link:${this.#signatures.get(String(value[0]))}:${value[1]};`;
      } else {
        key += `${JSON.stringify(name)}=${encodeConstant(value)};`;
        constants[name] = value;
      }
    }
    if (definition.fingerprint) {
      const fingerprint = await runFingerprint(definition, id, constants, this.#options);
      const uncacheable = typeof fingerprint === 'number' && Number.isNaN(fingerprint);
      key += uncacheable ? `|uncacheable:${JSON.stringify(`${this.#nonce}:${id}`)}` : `|fingerprint:${canonicalJson(fingerprint)}`;
    }
    if (definition.notIdempotent === true || Object.values(definition.hidden ?? {}).includes('UNIQUE_ID')) key += `|node:${JSON.stringify(id)}`;
    return hashHex(key);
  }

  /**
   * The unsigned nodes among `targets` and their ancestors, dependencies first. Throws `MalformedPromptError`
   * for a missing node, an unknown class or a cycle. Iterative, so a very long chain does not overflow.
   */
  #unsignedInOrder(targets: Iterable<string>): string[] {
    const graph = this.#graph;
    const order: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const settled = (id: string) => state.get(id) === 'done' || this.#signatures.has(id);
    for (const target of targets) {
      if (settled(target)) continue;
      const stack: Array<{ id: string; links: readonly GraphLink[]; next: number }> = [];
      const open = (id: string, from?: { node: string; input: string }) => {
        graph.require(id, from);
        state.set(id, 'open');
        stack.push({ id, links: graph.links(id), next: 0 });
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
        if (settled(link.source)) continue;
        if (state.get(link.source) === 'open') {
          const cycle = stack.slice(stack.findIndex((f) => f.id === link.source)).map((f) => f.id);
          throw new MalformedPromptError(`The graph has a cycle: ${[...cycle, link.source].join(' -> ')}`, frame.id);
        }
        open(link.source, { node: frame.id, input: link.input });
      }
    }
    return order;
  }
}

export interface SignatureOptions {
  /** Makes `NaN` fingerprints unique to this run. Default: a random UUID. */
  runNonce?: string;
  /** Where a failing `fingerprint` hook is reported (it then counts as `NaN`, as ComfyUI's IS_CHANGED). */
  logger?: Logger;
  /** The host's folders, passed to `fingerprint` hooks (the files a node reads are looked up there first). */
  paths?: HostPaths;
}

/** Signatures of `targets` and all their ancestors in `prompt` (one-off; the executor keeps a `Signatures`). */
export async function computeSignatures(
  prompt: ApiPrompt,
  registry: NodeRegistry,
  targets: Iterable<string>,
  options: SignatureOptions = {},
): Promise<Map<string, string>> {
  const signatures = new Signatures(new PromptGraph(prompt, registry), options);
  await signatures.compute(targets);
  return new Map(signatures.entries());
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
