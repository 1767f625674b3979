import type { AnyNodeDefinition } from './node-definition.ts';

/** Where a node definition came from, for error messages and `python_module`-like reporting. */
export interface NodeSource {
  /** Pack name, e.g. `nodes-tgate` or `custom_nodes/my-pack`. */
  pack: string;
}

/** The set of node classes a host knows, by id. */
export class NodeRegistry {
  readonly #nodes = new Map<string, { definition: AnyNodeDefinition; source: NodeSource }>();

  /** Adds a node class; a second class with the same id is an error naming both packs. */
  register(definition: AnyNodeDefinition, source: NodeSource = { pack: 'builtin' }): void {
    const existing = this.#nodes.get(definition.id);
    if (existing) {
      throw new Error(
        `Duplicate node id "${definition.id}": defined by pack "${existing.source.pack}" and by pack "${source.pack}"`,
      );
    }
    this.#nodes.set(definition.id, { definition, source });
  }

  get(id: string): AnyNodeDefinition | undefined {
    return this.#nodes.get(id)?.definition;
  }

  sourceOf(id: string): NodeSource | undefined {
    return this.#nodes.get(id)?.source;
  }

  has(id: string): boolean {
    return this.#nodes.has(id);
  }

  ids(): string[] {
    return [...this.#nodes.keys()];
  }

  definitions(): AnyNodeDefinition[] {
    return [...this.#nodes.values()].map((e) => e.definition);
  }
}
