/**
 * GraphBuilder: how a node builds the sub-graph it expands into (see `ExpansionResult`), as ComfyUI's
 * `comfy_execution.graph_utils.GraphBuilder`. Node ids are the builder's prefix plus a local id, so two
 * expansions never collide and a re-run makes the same ids (which keeps error reports and events stable).
 *
 * ```ts
 * const graph = ctx.graph();
 * const sum = graph.node('Add', { a: inputs.a, b: 1 });
 * const next = graph.node('Loop', { value: sum.out(0), n: inputs.n - 1 });
 * return { outputs: [next.out(0)], expand: graph.finalize() };
 * ```
 */
import type { ExpandedNode, GraphBuilderLike, GraphBuilderNodeLike, PromptLink } from './node-definition.ts';

export class GraphBuilder implements GraphBuilderLike {
  readonly #nodes = new Map<string, GraphBuilderNode>();
  #counter = 0;

  constructor(readonly prefix = '') {}

  /** Adds a node; `id` is local (the prefix is added), default a counter. Inputs may hold `other.out(n)` links. */
  node(classType: string, inputs: Record<string, unknown> = {}, id?: string): GraphBuilderNode {
    const local = id ?? String(++this.#counter);
    const full = `${this.prefix}${local}`;
    if (this.#nodes.has(full)) throw new Error(`GraphBuilder: node "${local}" is already in this graph; give each node its own id.`);
    const node = new GraphBuilderNode(full, classType, { ...inputs });
    this.#nodes.set(full, node);
    return node;
  }

  /** A node added before, by its local id. */
  lookup(id: string): GraphBuilderNode | undefined {
    return this.#nodes.get(`${this.prefix}${id}`);
  }

  /** The nodes as an expansion (`{ id: { class_type, inputs, override_display_id? } }`). */
  finalize(): Record<string, ExpandedNode> {
    const out: Record<string, ExpandedNode> = {};
    for (const node of this.#nodes.values()) out[node.id] = node.serialize();
    return out;
  }
}

export class GraphBuilderNode implements GraphBuilderNodeLike {
  #displayId: string | undefined;

  constructor(
    readonly id: string,
    readonly classType: string,
    readonly inputs: Record<string, unknown>,
  ) {}

  /** A link to output `slot` of this node, for another node's input or for the expanding node's outputs. */
  out(slot: number): PromptLink {
    return [this.id, slot];
  }

  set(input: string, value: unknown): this {
    this.inputs[input] = value;
    return this;
  }

  /** Show this node's progress and errors on another node of the editor (a loop body's original node). */
  overrideDisplayId(id: string): this {
    this.#displayId = id;
    return this;
  }

  serialize(): ExpandedNode {
    return {
      class_type: this.classType,
      inputs: { ...this.inputs },
      ...(this.#displayId !== undefined ? { override_display_id: this.#displayId } : {}),
    };
  }
}
