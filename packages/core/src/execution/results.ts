/**
 * What a node's `execute` returned, checked and turned into the stored form: every output slot a list
 * (ComfyUI's OUTPUT_IS_LIST mapping), UI outputs merged over the calls of a mapped node.
 */
import type { CacheEntry } from '../cache.ts';
import { isExpansionResult, isNodeResult, type AnyNodeDefinition, type ExpandedNode, type UiOutput } from '../node-definition.ts';
import type { ApiNode } from '../workflow/api-format.ts';
import { describeType } from './error-report.ts';

/** One call's result: its output values (an expansion's may be links into it) and UI output. */
export interface CallResult {
  values: unknown[];
  ui: UiOutput | undefined;
  /** The nodes this call expanded into; its values may then be links to their outputs. */
  expand?: Record<string, ExpandedNode>;
}

/** Checks what `execute` returned against the declared outputs, with a message that tells the author what to fix. */
export function normaliseResult(id: string, node: ApiNode, definition: AnyNodeDefinition, returned: unknown): CallResult {
  const where = `Node ${id} (${node.class_type})`;
  const declared = definition.outputs;
  let values: unknown;
  let ui: unknown;
  let expand: Record<string, ExpandedNode> | undefined;
  if (Array.isArray(returned)) {
    values = returned;
  } else if (isExpansionResult(returned)) {
    values = returned.outputs;
    ui = returned.ui;
    expand = returned.expand;
    if (typeof expand !== 'object' || Array.isArray(expand)) {
      throw new TypeError(`${where}: "expand" must be the object a GraphBuilder's finalize() returns; got ${describeType(expand)}.`);
    }
  } else if (isNodeResult(returned)) {
    values = returned.outputs ?? (declared.length === 0 ? [] : undefined);
    ui = returned.ui;
  } else if (returned === undefined && declared.length === 0) {
    values = [];
  }
  if (!Array.isArray(values)) {
    throw new TypeError(
      `${where}: execute() must return an array of its ${declared.length} output value(s), { outputs, ui } or { outputs, expand }; it returned ${describeType(returned)}.`,
    );
  }
  if (values.length !== declared.length) {
    throw new TypeError(
      `${where}: execute() returned ${values.length} output value(s) but the node declares ${declared.length} (${declared.map((o) => o.name ?? o.type).join(', ') || 'none'}).`,
    );
  }
  if (!expand) {
    declared.forEach((output, slot) => {
      if (output.isList && !Array.isArray(values[slot])) {
        throw new TypeError(
          `${where}: output ${slot} (${output.name ?? output.type}) is declared isList, so execute() must return an array for it; got ${describeType(values[slot])}.`,
        );
      }
    });
  }
  if (ui !== undefined && ui !== null) {
    const bad = typeof ui !== 'object' || Array.isArray(ui) || Object.values(ui).some((v) => !Array.isArray(v));
    if (bad) throw new TypeError(`${where}: the "ui" it returned must be an object of arrays, e.g. { images: [...] }.`);
  }
  return { values, ui: (ui ?? undefined) as UiOutput | undefined, ...(expand ? { expand } : {}) };
}

/**
 * The outputs of all calls of a mapped node: list outputs concatenated, others collected; UI arrays joined.
 * `resolved` says, per call, which slots are whole lists already (an expansion's link resolves to the linked
 * node's list, whose elements all become this node's).
 */
export function mergeResults(definition: AnyNodeDefinition, results: CallResult[], resolved?: ReadonlyArray<ReadonlySet<number>>): CacheEntry {
  const outputs = definition.outputs.map((output, slot) =>
    results.flatMap((r, call) => (output.isList || resolved?.[call]?.has(slot) ? (r.values[slot] as unknown[]) : [r.values[slot]])),
  );
  let ui: UiOutput | undefined;
  for (const result of results) {
    if (!result.ui) continue;
    ui ??= {};
    for (const [key, items] of Object.entries(result.ui)) ui[key] = [...(ui[key] ?? []), ...items];
  }
  return ui ? { outputs, ui } : { outputs };
}

export function hasUi(ui: UiOutput | undefined): ui is UiOutput {
  return ui !== undefined && Object.keys(ui).length > 0;
}
