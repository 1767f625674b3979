/**
 * UI workflow -> API prompt, the way ComfyUI's frontend builds the prompt it queues (`graphToPrompt`):
 *
 * - nodes are emitted in execution order (the saved `order`), keyed by `String(id)`; nodes inside a subgraph
 *   get the frontend's execution ids `"<instance id>:<inner id>"`;
 * - muted (mode 2) and bypassed (mode 4) nodes are left out; a link out of a bypassed node is followed to the
 *   bypassed node's input of the same type (same slot first, then an exact type, then a compatible one);
 *   a link out of a muted node is dropped, so the consumer fails validation with a missing input;
 * - virtual nodes are not emitted: links are followed through `Reroute`s, a `PrimitiveNode`'s value becomes
 *   the constant of the inputs it feeds, notes are ignored;
 * - `widgets_values` become inputs by name, in the definition's widget order (see `widgetLayout`), and a
 *   linked input wins over the widget value it replaces;
 * - `_meta.title` is the node's title, or the class's display name when the user did not rename it.
 *
 * Node definitions are needed to name widget values. A node whose class is unknown is still converted (links
 * only) and reported in `warnings`; validation then reports the unknown class.
 *
 * One conversion in one file (over 400 lines): its rules (bypass, reroutes, primitives, subgraphs, widget
 * layout) depend on each other and read best in order.
 */
import type { AnyNodeDefinition, InputSpec } from '../node-definition.ts';
import { NodeRegistry } from '../registry.ts';
import { isTypeCompatible } from '../socket-types.ts';
import type { ApiLink, ApiPrompt } from './api-format.ts';
import {
  NodeMode,
  SUBGRAPH_INPUT_ID,
  SUBGRAPH_OUTPUT_ID,
  normalizeUiWorkflow,
  type UiDataType,
  type UiGraph,
  type UiLink,
  type UiNode,
  type UiNodeId,
  type UiSubgraph,
  type UiWorkflow,
} from './ui-format.ts';

/** Where node definitions come from: a registry, or a function returning the definition of a class. */
export type NodeLookup = NodeRegistry | ((classType: string) => AnyNodeDefinition | undefined);

export interface UiToApiResult {
  prompt: ApiPrompt;
  /** Things the user should know: unknown node types, dropped links, values filled from defaults. */
  warnings: string[];
}

/** Node types the editor draws but never sends to the server. */
export const VIRTUAL_NODE_TYPES: ReadonlySet<string> = new Set(['Reroute', 'PrimitiveNode', 'Note', 'MarkdownNote']);

/** Subgraph definitions (and so the types of their instances) are identified by UUIDs. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Values of the editor's "control after generate" widget stored after a seed's value. */
const CONTROL_VALUES: ReadonlySet<unknown> = new Set(['fixed', 'increment', 'decrement', 'randomize', 'increment-wrap']);

/** Converts a UI workflow (version 0.4 or 1, already schema-valid) to an API prompt. */
export function uiToApi(workflow: UiWorkflow, nodes: NodeLookup): UiToApiResult {
  return new Converter(normalizeUiWorkflow(workflow), toLookup(nodes)).run();
}

/** One widget of a node class, in the order the editor creates widgets. */
export interface WidgetSlot {
  name: string;
  spec: Exclude<InputSpec, { kind: 'SOCKET' }>;
  /**
   * How many extra `widgets_values` entries the editor stores after this widget's value: 1 for an INT/FLOAT
   * with "control after generate" (the mode: fixed/increment/decrement/randomize), 2 for a COMBO with it (the
   * mode and the `control_filter_list` text).
   */
  extraValues: number;
}

/**
 * The widgets the editor creates for a class, in its order: widget-typed inputs (INT, FLOAT, STRING, BOOLEAN,
 * COMBO) in declaration order, required ones first, then optional ones. `forceInput` inputs are sockets
 * without a widget and take no `widgets_values` entry.
 */
export function widgetLayout(definition: AnyNodeDefinition): WidgetSlot[] {
  const entries = Object.entries(definition.inputs);
  const ordered = [...entries.filter(([, s]) => !s.optional), ...entries.filter(([, s]) => s.optional)];
  const slots: WidgetSlot[] = [];
  for (const [name, spec] of ordered) {
    if (spec.kind === 'SOCKET' || spec.forceInput) continue;
    slots.push({ name, spec, extraValues: controlValueCount(name, spec) });
  }
  return slots;
}

function controlValueCount(name: string, spec: InputSpec): number {
  // Only INT declares the option in our types; FLOAT and COMBO may carry it from other sources (object_info).
  const flag = (spec as { controlAfterGenerate?: unknown }).controlAfterGenerate;
  switch (spec.kind) {
    case 'INT':
      // The editor adds the control to seed widgets by name when the definition does not say either way.
      if (flag === undefined) return name === 'seed' || name === 'noise_seed' ? 1 : 0;
      return flag ? 1 : 0;
    case 'FLOAT':
      return flag ? 1 : 0;
    case 'COMBO':
      return flag ? 2 : 0;
    default:
      return 0;
  }
}

/**
 * The editor's side of the one type rule (socket-types.ts, what validation applies): litegraph's untyped slots
 * (undefined, '', 0) link to anything, its type lists are comma-joined, its numeric event types link to equal
 * ones. Unlike litegraph's own check, case-sensitive and blind to spaces after commas, as the server is.
 */
export function typesCompatible(a: UiDataType | undefined, b: UiDataType | undefined): boolean {
  const norm = (t: UiDataType | undefined) => (Array.isArray(t) ? t.join(',') : t);
  const x = norm(a);
  const y = norm(b);
  if (x === undefined || y === undefined || x === '' || y === '' || x === 0 || y === 0) return true;
  if (typeof x === 'number' || typeof y === 'number') return x === y;
  return isTypeCompatible(String(x), String(y));
}

// ---------------------------------------------------------------------------------------------------------

type Lookup = (classType: string) => AnyNodeDefinition | undefined;

function toLookup(nodes: NodeLookup): Lookup {
  return nodes instanceof NodeRegistry ? (id) => nodes.get(id) : nodes;
}

/** The nodes and links of one graph level: the root, or the inside of one subgraph instance. */
interface Scope {
  nodes: UiNode[];
  links: Map<number, UiLink>;
  /** Ids of the subgraph instances from the root down to this level. */
  path: string[];
  /** The subgraph node this scope is the inside of. */
  instance?: ExecNode;
}

type SkipReason = 'muted' | 'bypassed' | 'virtual' | 'in a muted subgraph' | 'in a bypassed subgraph';

interface ExecNode {
  /** Execution id: the API key. */
  id: string;
  node: UiNode;
  scope: Scope;
  /** Set for subgraph instances: the inside. */
  inner?: Scope;
  skip?: SkipReason;
}

/** What an input resolves to: a link to an emitted-or-not node, or a constant from a PrimitiveNode. */
type Resolved = { link: ApiLink } | { value: unknown };

/** Who is asking, for messages. */
interface Asker {
  target: ExecNode;
  input: string;
}

class Converter {
  readonly #graph: UiGraph;
  readonly #lookup: Lookup;
  readonly #definitions: Map<string, UiSubgraph>;
  readonly #all = new Map<string, ExecNode>();
  readonly #ordered: ExecNode[] = [];
  readonly #warnings: string[] = [];

  constructor(graph: UiGraph, lookup: Lookup) {
    this.#graph = graph;
    this.#lookup = lookup;
    this.#definitions = new Map(graph.subgraphDefinitions.map((d) => [d.id, d]));
  }

  run(): UiToApiResult {
    this.#expand({ nodes: this.#graph.nodes, links: linkMap(this.#graph.links), path: [] }, undefined, []);
    const prompt: ApiPrompt = {};
    for (const exec of this.#ordered) {
      if (exec.skip) continue;
      const { node } = exec;
      const definition = this.#lookup(node.type);
      const inputs: Record<string, unknown> = definition ? this.#widgetInputs(exec, definition) : {};
      if (!definition) this.#warnUnknown(exec);
      (node.inputs ?? []).forEach((input, slot) => {
        if (input.link === null || input.link === undefined) return;
        const resolved = this.#resolveInput(exec, slot, new Set(), undefined, { target: exec, input: input.name });
        if (!resolved) return;
        inputs[input.name] = 'link' in resolved ? resolved.link : wrapArray(resolved.value);
      });
      const title = typeof node.title === 'string' && node.title !== '' ? node.title : (definition?.displayName ?? node.type);
      prompt[exec.id] = { inputs, class_type: node.type, _meta: { title } };
    }
    this.#dropLinksToMissingNodes(prompt);
    return { prompt, warnings: this.#warnings };
  }

  /** Registers the nodes of a scope in execution order, expanding subgraph instances in place. */
  #expand(scope: Scope, inherited: SkipReason | undefined, openDefinitions: string[]): void {
    for (const node of executionOrder(scope.nodes)) {
      const id = executionId(scope.path, node.id);
      const exec: ExecNode = { id, node, scope };
      const mode = node.mode ?? NodeMode.ALWAYS;
      if (inherited) exec.skip = inherited;
      else if (mode === NodeMode.NEVER) exec.skip = 'muted';
      else if (mode === NodeMode.BYPASS) exec.skip = 'bypassed';
      else if (VIRTUAL_NODE_TYPES.has(node.type)) exec.skip = 'virtual';
      this.#all.set(id, exec);

      const definition = this.#definitions.get(node.type);
      if (!definition) {
        this.#ordered.push(exec);
        continue;
      }
      if (openDefinitions.includes(definition.id)) {
        this.#warnings.push(`${describe(exec)}: subgraph "${definition.name ?? definition.id}" contains itself; it was left out`);
        exec.skip = 'virtual';
        continue;
      }
      const inner: Scope = { nodes: definition.nodes, links: linkMap(definition.links), path: [...scope.path, String(node.id)], instance: exec };
      exec.inner = inner;
      const innerSkip: SkipReason | undefined =
        exec.skip === 'muted' || exec.skip === 'in a muted subgraph'
          ? 'in a muted subgraph'
          : exec.skip === 'bypassed' || exec.skip === 'in a bypassed subgraph'
            ? 'in a bypassed subgraph'
            : undefined;
      // The instance itself is never emitted: its inner nodes are.
      exec.skip ??= 'virtual';
      this.#expand(inner, innerSkip, [...openDefinitions, definition.id]);
    }
  }

  /** Widget values named by the definition's widget order; see `widgetLayout` for the rules. */
  #widgetInputs(exec: ExecNode, definition: AnyNodeDefinition): Record<string, unknown> {
    const inputs: Record<string, unknown> = {};
    const slots = widgetLayout(definition);
    const saved = exec.node.widgets_values;
    if (saved !== undefined && !Array.isArray(saved)) {
      for (const slot of slots) {
        if (slot.name in saved) inputs[slot.name] = wrapArray(saved[slot.name]);
        else this.#fillDefault(exec, slot, inputs);
      }
      return inputs;
    }
    const values = saved ?? [];
    // Entries beyond one per widget are control values. Counting the surplus keeps us right both for files
    // that store them and for files (or editor versions) that do not.
    let surplus = values.length - slots.length;
    let i = 0;
    for (const slot of slots) {
      if (i < values.length) inputs[slot.name] = wrapArray(values[i]);
      else this.#fillDefault(exec, slot, inputs);
      i++;
      if (slot.extraValues > 0 && surplus > 0 && isControlValue(values[i])) {
        i++;
        surplus--;
        if (slot.extraValues > 1 && surplus > 0 && typeof values[i] === 'string') {
          i++;
          surplus--;
        }
      }
    }
    return inputs;
  }

  #fillDefault(exec: ExecNode, slot: WidgetSlot, inputs: Record<string, unknown>): void {
    const value = defaultValue(slot.spec);
    if (value === undefined) return;
    inputs[slot.name] = value;
    this.#warnings.push(
      `${describe(exec)}: the workflow has no value for widget "${slot.name}"; using its default ${JSON.stringify(value)}`,
    );
  }

  #warnUnknown(exec: ExecNode): void {
    const values = exec.node.widgets_values;
    const count = Array.isArray(values) ? values.length : values ? Object.keys(values).length : 0;
    const lost =
      count > 0
        ? `; its ${count} widget value${count === 1 ? '' : 's'} could not be matched to input names and ${count === 1 ? 'was' : 'were'} left out`
        : '';
    const { type } = exec.node;
    let advice = 'Install the node pack that provides it.';
    if (/^workflow[>/]/.test(type)) {
      advice = 'It is a group node of the old editor; ungroup it (or convert it to a subgraph) in ComfyUI and save again.';
    } else if (UUID.test(type)) {
      advice = 'It looks like a subgraph instance whose definition is missing from the workflow\'s definitions.subgraphs.';
    }
    this.#warnings.push(`${describe(exec)}: unknown node type "${type}"${lost}. ${advice}`);
  }

  #resolveInput(exec: ExecNode, slot: number, visited: Set<string>, type: UiDataType | undefined, asker: Asker): Resolved | undefined {
    const key = `${exec.id}[I]${slot}`;
    if (visited.has(key)) return this.#cycle(asker);
    visited.add(key);
    const input = exec.node.inputs?.[slot];
    if (!input || input.link === null || input.link === undefined) return undefined;
    const link = exec.scope.links.get(input.link);
    if (!link) {
      this.#warnings.push(
        `${describe(exec)} input "${input.name}": link ${input.link} is not in the workflow's links; the input is left unconnected`,
      );
      return undefined;
    }
    const [, originId, originSlot] = link;
    if (Number(originId) === SUBGRAPH_INPUT_ID && exec.scope.instance) {
      // The link comes in through the subgraph's boundary: continue from the instance's matching input.
      return this.#resolveInput(exec.scope.instance, originSlot, visited, undefined, asker);
    }
    const origin = this.#all.get(executionId(exec.scope.path, originId));
    if (!origin) {
      this.#warnings.push(
        `${describe(exec)} input "${input.name}": link ${input.link} comes from node ${String(originId)}, which is not in the workflow; the input is left unconnected`,
      );
      return undefined;
    }
    return this.#resolveOutput(origin, originSlot, type ?? input.type, visited, asker);
  }

  #resolveOutput(exec: ExecNode, slot: number, type: UiDataType, visited: Set<string>, asker: Asker): Resolved | undefined {
    const key = `${exec.id}[O]${slot}`;
    if (visited.has(key)) return this.#cycle(asker);
    visited.add(key);
    const { node } = exec;

    if (exec.skip === 'bypassed') {
      const through = bypassInputIndex(node, slot, type);
      if (through === -1) {
        this.#warnings.push(
          `${describe(asker.target)} input "${asker.input}": the bypassed ${describe(exec)} has no input of type ${typeName(type)} to pass through; the input is left unconnected`,
        );
        return undefined;
      }
      return this.#resolveInput(exec, through, visited, undefined, asker);
    }

    if (exec.inner) {
      const inner = exec.inner;
      const link = [...inner.links.values()].find((l) => Number(l[3]) === SUBGRAPH_OUTPUT_ID && l[4] === slot);
      if (!link) return undefined;
      if (Number(link[1]) === SUBGRAPH_INPUT_ID) return this.#resolveInput(exec, link[2], visited, undefined, asker);
      const origin = this.#all.get(executionId(inner.path, link[1]));
      return origin ? this.#resolveOutput(origin, link[2], type, visited, asker) : undefined;
    }

    if (VIRTUAL_NODE_TYPES.has(node.type)) {
      if (node.type === 'PrimitiveNode') {
        // The primitive's first widget holds the value; the editor writes it into the widgets it feeds.
        const values = node.widgets_values;
        return Array.isArray(values) && values.length > 0 ? { value: values[0] } : undefined;
      }
      // Reroutes pass their input straight through, with the same slot.
      if (node.inputs?.[slot]) return this.#resolveInput(exec, slot, visited, type, asker);
      return undefined;
    }

    return { link: [exec.id, slot] };
  }

  #cycle(asker: Asker): undefined {
    this.#warnings.push(
      `${describe(asker.target)} input "${asker.input}": its link runs in a circle (through reroutes or bypassed nodes); the input is left unconnected`,
    );
    return undefined;
  }

  /** Links to nodes that were not emitted (muted ones, for instance) are removed, as the frontend does. */
  #dropLinksToMissingNodes(prompt: ApiPrompt): void {
    for (const [id, apiNode] of Object.entries(prompt)) {
      for (const [name, value] of Object.entries(apiNode.inputs)) {
        if (!Array.isArray(value) || value.length !== 2) continue;
        const source = String(value[0]);
        if (source in prompt) continue;
        delete apiNode.inputs[name];
        const target = this.#all.get(id)!;
        const origin = this.#all.get(source);
        const why = origin ? `${describe(origin)} is ${origin.skip ?? 'not emitted'}` : `node ${source} does not exist`;
        this.#warnings.push(`${describe(target)} input "${name}": ${why}, so the input is left unconnected`);
      }
    }
  }
}

function linkMap(links: UiLink[]): Map<number, UiLink> {
  return new Map(links.map((l) => [l[0], l]));
}

function executionId(path: string[], id: UiNodeId): string {
  return [...path, String(id)].join(':');
}

/** By the saved execution `order`, ties (and nodes without one) in file order. */
function executionOrder(nodes: UiNode[]): UiNode[] {
  return nodes
    .map((node, index) => ({ node, index, order: typeof node.order === 'number' ? node.order : Number.POSITIVE_INFINITY }))
    .sort((a, b) => a.order - b.order || a.index - b.index)
    .map((e) => e.node);
}

/**
 * The input of a bypassed node whose link stands in for output `slot`, given the type the consumer wants:
 * the input at the same slot if it fits, else the first input of exactly that type, else the first
 * compatible one; -1 when none fits.
 */
function bypassInputIndex(node: UiNode, slot: number, type: UiDataType): number {
  const inputs = node.inputs ?? [];
  if (inputs.length === 0) return -1;
  if (type === '*' || type === '') return inputs.length > slot ? slot : 0;
  const outputType = node.outputs?.[slot]?.type ?? type;
  const same = inputs[slot];
  if (same && typesCompatible(same.type, outputType) && typesCompatible(same.type, type)) return slot;
  const exact = inputs.findIndex((input) => input.type === type);
  if (exact !== -1) return exact;
  return inputs.findIndex((input) => typesCompatible(input.type, outputType) && typesCompatible(input.type, type));
}

/**
 * A control mode string, or a boolean: very old saves (ComfyUI's early default graph) stored `true` for
 * "randomize".
 */
function isControlValue(value: unknown): boolean {
  return CONTROL_VALUES.has(value) || typeof value === 'boolean';
}

function defaultValue(spec: WidgetSlot['spec']): unknown {
  if (spec.default !== undefined) return spec.default;
  if (spec.kind === 'COMBO' && Array.isArray(spec.options) && spec.options.length > 0) return spec.options[0];
  return undefined;
}

/** Arrays mean links in the API format, so list-valued constants travel as `{ __value__: [...] }`. */
function wrapArray(value: unknown): unknown {
  return Array.isArray(value) ? { __value__: value } : value;
}

function describe(exec: ExecNode): string {
  const title = exec.node.title && exec.node.title !== exec.node.type ? `${exec.node.type} "${exec.node.title}"` : exec.node.type;
  return `node ${exec.id} (${title})`;
}

function typeName(type: UiDataType): string {
  return Array.isArray(type) ? type.join(',') : String(type);
}
