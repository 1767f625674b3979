/**
 * The prompt graph: one model of a prompt's nodes and links, built once per prompt and used by validation,
 * signatures and the executor, so they cannot disagree about which links a node has.
 *
 * The rule for "a node's links": the links on the inputs its definition declares, plus, for a node that
 * `acceptsUndeclaredInputs`, the links on any other key of its prompt entry. A link on an undeclared key of any
 * other node is ignored everywhere: it is not validated, not run, not part of a signature, and cannot make a
 * cycle (ComfyUI passes such a node only its declared inputs too). A node whose class is unknown has no
 * links (validation reports it).
 *
 * Nodes added by an expansion at run time are part of the same graph: their parent (the node that expanded),
 * the node they are displayed on, and the submitted node they descend from are kept for events and errors.
 */
import type { AnyNodeDefinition, ExpandedNode, PromptView, PromptViewNode } from './node-definition.ts';
import type { NodeRegistry } from './registry.ts';
import { isLink, type ApiNode, type ApiPrompt } from './workflow/api-format.ts';
import { ownValue } from './own-keys.ts';
import { ancestorsOf, findCycles, upstreamFirst } from './graph.ts';

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

/** A link of a node under the graph's rule. */
export interface GraphLink {
  input: string;
  source: string;
  slot: number;
  /** Declared `lazy`: not a dependency until the node asks for it. */
  lazy: boolean;
  /** Declared by the definition (false: an undeclared key of a node accepting any inputs). */
  declared: boolean;
}

interface Origin {
  parent: string | null;
  display: string;
  real: string;
}

export class PromptGraph {
  /** The submitted prompt (not copied: built per run, it must cost nothing for a large prompt). */
  readonly #prompt: ApiPrompt;
  /** Nodes added by expansions, and where they came from. */
  readonly #expanded = new Map<string, ApiNode>();
  readonly #origins = new Map<string, Origin>();
  readonly #links = new Map<string, GraphLink[]>();
  readonly #sources = new Map<string, readonly string[]>();
  #consumers: Map<string, string[]> | undefined;
  #view: PromptView | undefined;
  readonly #registry: NodeRegistry;

  /** `prompt` must be an object (validation and the executor check that first); its nodes are not copied. */
  constructor(prompt: ApiPrompt, registry: NodeRegistry) {
    this.#registry = registry;
    this.#prompt = prompt;
  }

  has(id: string): boolean {
    return Object.hasOwn(this.#prompt, id) || this.#expanded.has(id);
  }

  ids(): string[] {
    return [...Object.keys(this.#prompt), ...this.#expanded.keys()];
  }

  /** The node as the prompt has it (undefined for an unknown id). */
  node(id: string): ApiNode | undefined {
    return ownValue(this.#prompt, id) ?? this.#expanded.get(id);
  }

  /** The definition of the node's class (undefined: unknown id or class). */
  definition(id: string): AnyNodeDefinition | undefined {
    const node = this.node(id);
    return typeof node?.class_type === 'string' ? this.#registry.get(node.class_type) : undefined;
  }

  /** The node and its definition, or a `MalformedPromptError` naming what is missing. */
  require(id: string, linkedFrom?: { node: string; input: string }): { node: ApiNode; definition: AnyNodeDefinition } {
    const node = this.node(id);
    if (!node || typeof node !== 'object' || typeof node.class_type !== 'string') {
      const where = linkedFrom ? `Input "${linkedFrom.input}" of node ${linkedFrom.node} links to node ${id}, which` : `Node ${id}`;
      const what = node ? 'has no class_type' : 'is not in the prompt';
      throw new MalformedPromptError(`${where} ${what}. Validate the prompt before running it.`, linkedFrom?.node ?? id);
    }
    if (typeof node.inputs !== 'object' || node.inputs === null) {
      throw new MalformedPromptError(`Node ${id} (${node.class_type}) has no "inputs" object.`, id);
    }
    const definition = this.#registry.get(node.class_type);
    if (!definition) {
      throw new MalformedPromptError(
        `Node ${id} has class_type "${node.class_type}", which no loaded node pack defines. Install the pack or remove the node.`,
        id,
      );
    }
    return { node, definition };
  }

  /** The node's links under the rule above, in input-name order (so signatures do not depend on key order). */
  links(id: string): readonly GraphLink[] {
    let links = this.#links.get(id);
    if (links) return links;
    links = [];
    const node = this.node(id);
    const definition = this.definition(id);
    if (node && definition && typeof node.inputs === 'object' && node.inputs !== null) {
      for (const input of inputNames(node, definition)) {
        const value = ownValue(node.inputs, input);
        if (!isLink(value)) continue;
        const spec = Object.hasOwn(definition.inputs, input) ? definition.inputs[input] : undefined;
        links.push({ input, source: String(value[0]), slot: value[1], lazy: spec?.lazy === true, declared: spec !== undefined });
      }
    }
    this.#links.set(id, links);
    return links;
  }

  /** The distinct nodes `id` links from (lazy links included). */
  sources(id: string): readonly string[] {
    let sources = this.#sources.get(id);
    if (!sources) {
      sources = [...new Set(this.links(id).map((l) => l.source))];
      this.#sources.set(id, sources);
    }
    return sources;
  }

  /** The nodes linking from `id` (each once). */
  consumers(id: string): readonly string[] {
    if (!this.#consumers) {
      this.#consumers = new Map();
      for (const consumer of this.ids()) this.#addConsumerLinks(consumer);
    }
    return this.#consumers.get(id) ?? [];
  }

  /** `targets` and every node upstream of them that is in the graph. */
  ancestors(targets: Iterable<string>): Set<string> {
    return ancestorsOf(targets, (id) => this.sources(id), (id) => this.has(id));
  }

  /** The cycles among `nodes` (each a list of ids); empty when acyclic. */
  cycles(nodes: Iterable<string>): string[][] {
    return findCycles(nodes, (id) => this.sources(id));
  }

  /** `nodes` with each after the nodes it links from (cycles tolerated). */
  upstreamFirst(nodes: readonly string[]): string[] {
    return upstreamFirst(nodes, (id) => this.sources(id));
  }

  /** The parent, display node and submitted node of `id`. */
  origin(id: string): Origin {
    return this.#origins.get(id) ?? { parent: null, display: id, real: id };
  }

  /**
   * Adds the nodes an expansion of `parent` made. Throws (naming the parent) for an id already in the graph,
   * which a GraphBuilder prevents; the caller checks classes and cycles.
   */
  addExpansion(parent: string, nodes: Record<string, ExpandedNode>): string[] {
    const from = this.origin(parent);
    const added: string[] = [];
    for (const [id, node] of Object.entries(nodes)) {
      if (this.has(id)) {
        throw new MalformedPromptError(
          `Node ${parent} expanded into a node with id "${id}", which is already in the prompt. Build expansions with ctx.graph() so ids are unique.`,
          parent,
        );
      }
      const display = typeof node.override_display_id === 'string' ? node.override_display_id : from.display;
      this.#expanded.set(id, { class_type: node.class_type, inputs: node.inputs });
      this.#origins.set(id, { parent, display, real: from.real });
      added.push(id);
    }
    if (this.#consumers) for (const id of added) this.#addConsumerLinks(id);
    return added;
  }

  /** Read-only access for nodes (the `DYNPROMPT` hidden input); one object per graph. */
  view(): PromptView {
    this.#view ??= this.#makeView();
    return this.#view;
  }

  #makeView(): PromptView {
    return {
      get: (id) => {
        const node = this.node(id);
        return node ? (Object.freeze({ class_type: node.class_type, inputs: Object.freeze({ ...node.inputs }) }) as PromptViewNode) : undefined;
      },
      has: (id) => this.has(id),
      ids: () => this.ids(),
      displayId: (id) => (this.has(id) ? this.origin(id).display : undefined),
      parentId: (id) => (this.has(id) ? this.origin(id).parent : undefined),
      realId: (id) => (this.has(id) ? this.origin(id).real : undefined),
    };
  }

  #addConsumerLinks(consumer: string): void {
    for (const source of this.sources(consumer)) {
      const list = this.#consumers!.get(source) ?? this.#consumers!.set(source, []).get(source)!;
      list.push(consumer);
    }
  }
}

const declaredNamesByDefinition = new WeakMap<AnyNodeDefinition, string[]>();

/** The input names a node has under the rule, sorted: declared ones, plus its other keys if it accepts them. */
export function inputNames(node: ApiNode, definition: AnyNodeDefinition): string[] {
  let declared = declaredNamesByDefinition.get(definition);
  if (!declared) {
    declared = Object.keys(definition.inputs).sort();
    declaredNamesByDefinition.set(definition, declared);
  }
  if (!definition.acceptsUndeclaredInputs) return declared;
  const extra = Object.keys(node.inputs).filter((k) => !Object.hasOwn(definition.inputs, k));
  return extra.length ? [...declared, ...extra].sort() : declared;
}
