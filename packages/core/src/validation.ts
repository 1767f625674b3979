/**
 * Prompt validation before anything runs, as ComfyUI's `validate_prompt` does, with the same result shape
 * (`error` + `node_errors`), so ComfyUI clients show our errors unchanged.
 *
 * What is checked, and where we knowingly differ from ComfyUI:
 * - Every node must have a known `class_type` (type `missing_node_type`, as current ComfyUI; the ComfyUI
 *   frontend reacts to it by listing the missing nodes). A node that is not an object at all is an
 *   `invalid_prompt`.
 * - Only the ancestors of the output nodes (`outputNode: true`, optionally narrowed by `outputs`, ComfyUI's
 *   `partial_execution_targets`) are validated; a stray broken node feeding no output is not an error.
 * - Links: malformed links, links to missing nodes and to output slots past the source's outputs are
 *   `bad_linked_input` (ComfyUI crashes with an exception there). Type checks follow ComfyUI's
 *   `validate_node_input`: `*` matches anything and comma-separated unions match when they overlap.
 * - Constants are converted like ComfyUI's `int()` / `float()` / `str()`: `"20"` becomes 20 for INT,
 *   `20.7` becomes 20 (truncated, as Python's `int(20.7)`), `"1e-3"` becomes 0.001 for FLOAT, 7 becomes
 *   `"7"` for STRING. The converted values are in `result.prompt`, which is what must be executed.
 *   Deviations: BOOLEAN accepts true/false, numbers (0 is false) and the strings "true"/"false" — ComfyUI's
 *   `bool("false")` is True, which nobody means; `null` and objects are rejected for every widget; NaN is
 *   rejected for FLOAT; a constant given to a non-primitive socket (MODEL, LATENT...) is rejected instead of
 *   being passed to the node, unless the socket declares a `default` or `acceptsConstant` (ComfyUI passes
 *   constants to every such input; refusing them by default tells API users which input needs a link).
 * - FLOAT `round` and INT `step` are not enforced: ComfyUI applies them in the editor's widgets only, and
 *   API clients get their values through unchanged; we do the same so results match ComfyUI's.
 * - A required lazy input must still be connected (ComfyUI does the same; `execute` is typed to receive a
 *   value from it). Optional inputs may be absent; hidden inputs are never read from the prompt.
 * - Inputs a node lists in `validatesInputs` (ComfyUI's VALIDATE_INPUTS arguments) skip the checks above: the
 *   hook gets the constant as the prompt has it and `context.inputTypes` says what type each link carries.
 * - The node's `validate` hook receives the converted constant inputs, and only when the node's own inputs
 *   passed the checks above (its types promise well-typed values). Hooks run after every node's inputs were
 *   checked, upstream first, and `context.linked(input)` shows the upstream nodes that have no errors (their
 *   hooks included), with their constants. A returned string or a thrown `NodeInputError` is
 *   `custom_validation_failed`; any other exception is `exception_during_validation`.
 * - A cycle is `dependency_cycle` on each node of the cycle (as current ComfyUI), naming the path.
 * - An output is valid when it and all its ancestors are. The prompt is accepted (`ok`) when at least one
 *   output is valid; errors of the others are still reported, each node once, with the outputs it breaks in
 *   `dependent_outputs`.
 *
 * Messages are written for people and do not repeat the node (errors are grouped under their node id and
 * class); `details` keeps ComfyUI's terse form (often the input name) for clients that parse it.
 */
import type { ComboContext, UpstreamNode, ValidateContext } from './node-definition.ts';
import type { NodeRegistry } from './registry.ts';
import { isLink, type ApiNode, type ApiPrompt } from './workflow/api-format.ts';
import { compareIds, outputsDownstream } from './graph.ts';
import { PromptGraph } from './prompt-graph.ts';
import { ownValue, setOwn } from './own-keys.ts';
import { article, checkInputs, isPlainObject, nodeLabel, runValidateHook } from './validation/input-checks.ts';
import { copyNumberKinds, numberKind, type NumberKind } from './workflow/number-literals.ts';

/** A prompt-level error (`error` in the 400 response of `POST /prompt`). */
export interface PromptError {
  type: string;
  message: string;
  details: string;
  extra_info: Record<string, unknown>;
}

/** One problem with one node, as in ComfyUI's `node_errors[id].errors`. */
export interface NodeError {
  type: string;
  message: string;
  details: string;
  extra_info: {
    input_name?: string;
    /** The input's object_info spec (`["INT", {min, max, ...}]`); null for combos with very many values. */
    input_config?: unknown;
    received_value?: unknown;
    received_type?: string;
    linked_node?: unknown;
    [key: string]: unknown;
  };
}

export interface NodeErrorEntry {
  errors: NodeError[];
  /** The output nodes that cannot run because of this node. */
  dependent_outputs: string[];
  class_type: string;
}

export interface ValidationResult {
  /** True when at least one output can run (ComfyUI queues the prompt then). */
  ok: boolean;
  /** Why the whole prompt was rejected; absent when `ok`. */
  error?: PromptError;
  /** Errors by node id; may be non-empty when `ok` (outputs that will not run). */
  nodeErrors: Record<string, NodeErrorEntry>;
  /** The valid output node ids to execute, in id order. */
  outputs: string[];
  /** A copy of the prompt with constants converted (`"20"` -> 20) and link ids as strings: execute this one. */
  prompt: ApiPrompt;
}

export interface ValidatePromptOptions {
  /** Only these output nodes (ComfyUI's `partial_execution_targets`); ids that are not output nodes are ignored. */
  outputs?: string[];
  /** Passed to combo options functions, so combos list the host's folders (models, input images). */
  context?: ComboContext;
}

/** dependent_outputs lists at most this many outputs per node (a prompt may have thousands). */
export const MAX_DEPENDENT_OUTPUTS = 100;
/** The prompt-level error's details list at most this many node errors (all are in node_errors). */
const MAX_DETAIL_LINES = 50;
/** A cycle's message names at most this many of its nodes. */
const MAX_CYCLE_SHOWN = 10;

export async function validatePrompt(
  prompt: ApiPrompt,
  registry: NodeRegistry,
  options: ValidatePromptOptions = {},
): Promise<ValidationResult> {
  if (typeof prompt !== 'object' || prompt === null || Array.isArray(prompt)) {
    return rejected(
      {},
      promptError(
        'invalid_prompt',
        'The prompt must be a JSON object mapping node ids to nodes ({"3": {"class_type": "KSampler", "inputs": {...}}})',
        `received ${describeJsonType(prompt)}`,
      ),
    );
  }

  const copy = copyPrompt(prompt);
  const structural = checkNodesExist(prompt, registry);
  if (structural) return rejected(copy, structural);

  const targets = options.outputs?.map(String);
  const outputs = Object.keys(prompt)
    .filter((id) => registry.get(prompt[id]!.class_type)?.outputNode === true)
    .filter((id) => !targets || targets.includes(id))
    .sort(compareIds);
  if (outputs.length === 0) {
    const message = targets
      ? `None of the requested outputs (${targets.join(', ') || 'none given'}) is an output node of this prompt; ` +
        'ask for the ids of output nodes such as SaveImage or PreviewImage'
      : 'Prompt has no output nodes (like SaveImage or PreviewImage); add one';
    return rejected(copy, promptError('prompt_no_outputs', message, '', targets ? { partial_execution_targets: targets } : {}));
  }

  const errors = new Map<string, NodeError[]>();
  const addError = (id: string, error: NodeError) => {
    const list = errors.get(id) ?? errors.set(id, []).get(id)!;
    list.push(error);
  };

  // The executor's own graph: the links validated are exactly the links that run (prompt-graph.ts's rule).
  const graph = new PromptGraph(copy, registry);
  const toValidate = graph.ancestors(outputs);
  const cycles = graph.cycles(toValidate);
  for (const cycle of cycles) {
    for (const error of cycleErrors(copy, graph, cycle)) addError(error.nodeId, error.error);
  }
  // Inputs first, for every node, then the nodes' own hooks, upstream before downstream: a hook may look at
  // upstream nodes' constants, which are converted and checked by then, and sees only nodes with no errors at
  // all, their own hooks included (so a prompt gets the same errors whatever its ids).
  const comboContext = options.context ?? {};
  const ordered = [...toValidate].sort(compareIds);
  const constantsOf = new Map<string, Record<string, unknown>>();
  const inputTypesOf = new Map<string, Record<string, string>>();
  const numberKindsOf = new Map<string, Record<string, NumberKind>>();
  for (const id of ordered) {
    const node = copy[id]!;
    numberKindsOf.set(id, numberKindsIn(node.inputs));
    const checked = checkInputs(node, registry.get(node.class_type)!, copy, registry, comboContext);
    for (const error of checked.errors) addError(id, error);
    constantsOf.set(id, checked.constants);
    inputTypesOf.set(id, checked.inputTypes);
  }
  const upstreamOf = (id: string, output: number): UpstreamNode | undefined => {
    if (errors.has(id) || !constantsOf.has(id)) return undefined;
    const node = copy[id]!;
    return { id, classType: node.class_type, output, constants: constantsOf.get(id)!, linked: (input) => linkedFrom(node, input) };
  };
  const linkedFrom = (node: ApiNode, input: string): UpstreamNode | undefined => {
    const value = ownValue(node.inputs, input);
    return isLink(value) ? upstreamOf(String(value[0]), value[1]) : undefined;
  };
  for (const id of graph.upstreamFirst(ordered)) {
    const node = copy[id]!;
    const definition = registry.get(node.class_type)!;
    if (!definition.validate || errors.has(id)) continue;
    const context: ValidateContext = {
      ...comboContext,
      nodeId: id,
      linked: (input) => linkedFrom(node, input),
      inputTypes: inputTypesOf.get(id)!,
      numberKinds: numberKindsOf.get(id)!,
    };
    const error = await runValidateHook(definition, constantsOf.get(id)!, context);
    if (error) addError(id, error);
  }

  // An output can run when neither it nor any ancestor has errors: mark everything downstream of a node with
  // errors, along every link (the executor runs every linked source). Iterative, for very long chains.
  const consumers = new Map<string, string[]>();
  for (const id of toValidate) {
    for (const source of graph.sources(id)) {
      if (toValidate.has(source)) (consumers.get(source) ?? consumers.set(source, []).get(source)!).push(id);
    }
  }
  const broken = new Set(errors.keys());
  const pending = [...broken];
  while (pending.length) {
    for (const next of consumers.get(pending.pop()!) ?? []) {
      if (!broken.has(next)) {
        broken.add(next);
        pending.push(next);
      }
    }
  }

  const good = outputs.filter((output) => !broken.has(output));
  // The outputs each node with errors breaks (ComfyUI's dependent_outputs), found for all nodes in one pass,
  // consumers before producers, each list capped: a prompt with thousands of outputs over a long broken
  // chain is answered in linear time and with a bounded report.
  const downstream = outputsDownstream(ordered, outputs, consumers, cycles, MAX_DEPENDENT_OUTPUTS);
  const nodeErrors: Record<string, NodeErrorEntry> = {};
  for (const id of [...errors.keys()].sort(compareIds)) {
    setOwn(nodeErrors, id, { errors: errors.get(id)!, dependent_outputs: (downstream.get(id) ?? []).sort(compareIds), class_type: copy[id]!.class_type });
  }

  if (good.length === 0) {
    const lines = Object.entries(nodeErrors)
      .flatMap(([id, entry]) => entry.errors.map((e) => `${nodeLabel(id, entry.class_type)}: ${e.message}`));
    if (lines.length > MAX_DETAIL_LINES) lines.splice(MAX_DETAIL_LINES, lines.length, `(and ${lines.length - MAX_DETAIL_LINES} more, listed per node)`);
    const outputList = outputs.map((id) => nodeLabel(id, copy[id]!.class_type)).join(', ');
    return {
      ok: false,
      error: promptError(
        'prompt_outputs_failed_validation',
        `Prompt outputs failed validation: none of the outputs (${outputList}) can run; fix the errors listed per node`,
        lines.join('\n'),
      ),
      nodeErrors,
      outputs: [],
      prompt: copy,
    };
  }
  return { ok: true, nodeErrors, outputs: good, prompt: copy };
}

export { isTypeCompatible } from './socket-types.ts';

// --- prompt-level checks ---------------------------------------------------------------------------------

/** The first node that is malformed or of an unknown class, as ComfyUI reports it (the prompt stops there). */
function checkNodesExist(prompt: Record<string, unknown>, registry: NodeRegistry): PromptError | undefined {
  const unknown: Array<{ id: string; classType: string; title: string | undefined }> = [];
  for (const [id, raw] of Object.entries(prompt)) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      return promptError(
        'invalid_prompt',
        `Node ${id} is ${describeJsonType(raw)}, not a node object ({"class_type": ..., "inputs": {...}})`,
        `Node ID '#${id}'`,
        { node_id: id },
      );
    }
    const node = raw as Partial<ApiNode>;
    const title = typeof node._meta?.title === 'string' ? node._meta.title : undefined;
    if (typeof node.class_type !== 'string' || node.class_type === '') {
      return promptError(
        'missing_node_type',
        `Node ${id}${title ? ` ("${title}")` : ''} has no class_type. The workflow may be corrupted, or it was ` +
          'exported without the node type; re-export it in API format',
        `Node ID '#${id}'`,
        { node_id: id, class_type: null, node_title: title ?? null },
      );
    }
    if (node.inputs !== undefined && (typeof node.inputs !== 'object' || node.inputs === null || Array.isArray(node.inputs))) {
      return promptError(
        'invalid_prompt',
        `Node ${id} (${node.class_type}) has inputs that are ${describeJsonType(node.inputs)}; inputs must be an object of name -> value or link`,
        `Node ID '#${id}'`,
        { node_id: id },
      );
    }
    if (!registry.has(node.class_type)) unknown.push({ id, classType: node.class_type, title });
  }
  const first = unknown[0];
  if (!first) return undefined;
  const others = unknown.slice(1);
  const also = others.length
    ? ` Also unknown: ${others.map((u) => `node ${u.id} ("${u.classType}")`).join(', ')}.`
    : '';
  return promptError(
    'missing_node_type',
    `Node ${first.id}${first.title && first.title !== first.classType ? ` ("${first.title}")` : ''} has type ` +
      `"${first.classType}", which no loaded node pack defines. Install the pack that provides it (into ` +
      `custom_nodes/) or remove the node.${also}`,
    `Node ID '#${first.id}'`,
    { node_id: first.id, class_type: first.classType, node_title: first.title ?? first.classType },
  );
}

/** Each node on a cycle gets an error naming the path, in data-flow order (`a -> b` means a feeds b). */
function cycleErrors(prompt: ApiPrompt, graph: PromptGraph, cycle: string[]): Array<{ nodeId: string; error: NodeError }> {
  const members = new Set(cycle);
  const consumers = new Map<string, string[]>();
  for (const id of cycle) {
    for (const source of graph.sources(id)) {
      if (members.has(source)) (consumers.get(source) ?? consumers.set(source, []).get(source)!).push(id);
    }
  }
  const path = cyclePath(cycle[0]!, consumers);
  const label = (id: string) => `${id} (${prompt[id]!.class_type})`;
  // Every node of the cycle carries the error, so each message is bounded: a 4,000-node cycle must not make a
  // report of 4,000 x 4,000 names.
  const described =
    path.length <= MAX_CYCLE_SHOWN
      ? path.map(label).join(' -> ')
      : `${path.slice(0, MAX_CYCLE_SHOWN / 2).map(label).join(' -> ')} -> ... (${path.length - MAX_CYCLE_SHOWN} more) -> ` +
        path.slice(-MAX_CYCLE_SHOWN / 2).map(label).join(' -> ');
  const nodes = [...cycle].sort(compareIds);
  const others = nodes.length > path.length - 1;
  const listed = nodes.length <= MAX_CYCLE_SHOWN ? nodes.join(', ') : `${nodes.slice(0, MAX_CYCLE_SHOWN).join(', ')} and ${nodes.length - MAX_CYCLE_SHOWN} more`;
  return nodes.map((nodeId) => ({
    nodeId,
    error: {
      type: 'dependency_cycle',
      message:
        `Dependency cycle: ${described}. A node cannot wait for its own output; remove one of these links` +
        (others ? ` (nodes ${listed} all depend on each other)` : ''),
      details: described,
      extra_info: { node_id: nodeId, cycle_nodes: nodes.slice(0, MAX_CYCLE_SHOWN), cycle_size: nodes.length },
    },
  }));
}

/** Shortest path from `start` back to itself along "feeds" edges (breadth-first). */
function cyclePath(start: string, consumers: Map<string, string[]>): string[] {
  const parent = new Map<string, string>();
  const queue = [start];
  for (let head = 0; head < queue.length; head++) {
    const id = queue[head]!;
    for (const next of consumers.get(id) ?? []) {
      if (next === start) {
        const back: string[] = [];
        for (let at: string | undefined = id; at !== undefined && at !== start; at = parent.get(at)) back.push(at);
        return [start, ...back.reverse(), start];
      }
      if (!parent.has(next)) {
        parent.set(next, id);
        queue.push(next);
      }
    }
  }
  return [start, start];
}

// --- helpers -----------------------------------------------------------------------------------------------

/** A copy the validation may convert in place: node objects and their inputs are new, values are shared. */
function copyPrompt(prompt: Record<string, unknown>): ApiPrompt {
  const copy: ApiPrompt = {};
  for (const [id, node] of Object.entries(prompt)) {
    if (isPlainObject(node)) {
      const inputs = isPlainObject(node['inputs']) ? { ...node['inputs'] } : {};
      if (isPlainObject(node['inputs'])) copyNumberKinds(node['inputs'], inputs);
      setOwn(copy, id, { ...(node as unknown as ApiNode), inputs });
    } else {
      setOwn(copy, id, node as ApiNode);
    }
  }
  return copy;
}

/** The kind each number constant was written with (before conversion: an INT input truncates 1.5). */
function numberKindsIn(inputs: Record<string, unknown>): Record<string, NumberKind> {
  const kinds: Record<string, NumberKind> = {};
  for (const key of Object.keys(inputs)) {
    const kind = numberKind(inputs, key);
    if (kind) setOwn(kinds, key, kind);
  }
  return kinds;
}

function rejected(prompt: ApiPrompt, error: PromptError): ValidationResult {
  return { ok: false, error, nodeErrors: {}, outputs: [], prompt };
}

function promptError(type: string, message: string, details: string, extra: Record<string, unknown> = {}): PromptError {
  return { type, message, details, extra_info: extra };
}

function describeJsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${article(typeof value)} ${typeof value}`;
}


