/**
 * ComfyUI's `/object_info` entries, built from our node definitions.
 *
 * The editor (litegraph / the ComfyUI frontend) and API clients read this to draw nodes and widgets, so the
 * shape follows ComfyUI's `server.py` `node_info()` for classic (V1) nodes: input specs are
 * `[type, options?]` tuples, a combo is `[[...values], options?]`, option names are snake_case
 * (`control_after_generate`, `label_on`, `image_upload`) except ComfyUI's own camelCase ones (`forceInput`),
 * and absent options are left out rather than written as `undefined`/`null`.
 */
import type { AnyNodeDefinition, ComboContext, ComboOptions, InputSpec } from './node-definition.ts';
import type { NodeRegistry, NodeSource } from './registry.ts';
import { consoleLogger } from './logger.ts';

/** Options object of an input spec, as ComfyUI writes it (`{default, min, max, step, tooltip, ...}`). */
export type ComfyInputOptions = Record<string, unknown>;

/**
 * One input as ComfyUI describes it: `["INT", {...}]`, `[["euler", "ddim"], {...}]`, `["MODEL"]`.
 * Like ComfyUI's Python tuples, the options element is absent when there are no options.
 */
export type ComfyInputSpec = [type: string | string[]] | [type: string | string[], options: ComfyInputOptions];

export interface ObjectInfoEntry {
  input: {
    required: Record<string, ComfyInputSpec>;
    optional?: Record<string, ComfyInputSpec>;
    /** Name -> `PROMPT` | `EXTRA_PNGINFO` | `UNIQUE_ID`. */
    hidden?: Record<string, string>;
  };
  /** Input names per section in declaration order (JSON objects do not promise an order to every client). */
  input_order: { required: string[]; optional?: string[]; hidden?: string[] };
  is_input_list: boolean;
  output: string[];
  output_is_list: boolean[];
  output_name: string[];
  /** Present when any output has a tooltip; one string per output ('' where an output has none). */
  output_tooltips?: string[];
  name: string;
  display_name: string;
  description: string;
  /** `nodes` for builtin nodes, `custom_nodes.<pack>` for packs: the editor shows it as the node's source badge. */
  python_module: string;
  category: string;
  output_node: boolean;
  deprecated?: true;
  experimental?: true;
}

/** ComfyUI's category for a class that declares none. */
const DEFAULT_CATEGORY = 'sd';

/** The object_info entry of one node class. Combo options given as functions are evaluated now. */
export function objectInfoEntry(
  definition: AnyNodeDefinition,
  source: NodeSource = { pack: 'builtin' },
  context: ComboContext = {},
): ObjectInfoEntry {
  const required: Record<string, ComfyInputSpec> = {};
  const optional: Record<string, ComfyInputSpec> = {};
  for (const [name, spec] of Object.entries(definition.inputs)) {
    (spec.optional ? optional : required)[name] = comfyInputSpec(spec, context);
  }
  const hidden: Record<string, string> = { ...(definition.hidden ?? {}) };

  const input: ObjectInfoEntry['input'] = { required };
  const inputOrder: ObjectInfoEntry['input_order'] = { required: Object.keys(required) };
  // ComfyUI lists only the sections a class declares; an empty `optional: {}` is simply not there.
  if (Object.keys(optional).length) {
    input.optional = optional;
    inputOrder.optional = Object.keys(optional);
  }
  if (Object.keys(hidden).length) {
    input.hidden = hidden;
    inputOrder.hidden = Object.keys(hidden);
  }

  const outputs = definition.outputs;
  const entry: ObjectInfoEntry = {
    input,
    input_order: inputOrder,
    is_input_list: definition.inputIsList === true,
    output: outputs.map((o) => o.type),
    output_is_list: outputs.map((o) => o.isList === true),
    output_name: outputs.map((o) => o.name ?? o.type),
    name: definition.id,
    display_name: definition.displayName ?? definition.id,
    description: definition.description ?? '',
    python_module: pythonModuleOf(source),
    category: definition.category ?? DEFAULT_CATEGORY,
    output_node: definition.outputNode === true,
  };
  // The ComfyUI frontend types output_tooltips as string[], so outputs without a tooltip get ''.
  if (outputs.some((o) => o.tooltip !== undefined)) entry.output_tooltips = outputs.map((o) => o.tooltip ?? '');
  if (definition.deprecated) entry.deprecated = true;
  if (definition.experimental) entry.experimental = true;
  return entry;
}

export interface ObjectInfoOptions {
  /**
   * Called when one class cannot be described (its combo options function threw). The class is left out,
   * like ComfyUI does, so one broken pack does not hide every node from the editor. Default: a warning on stderr.
   */
  onError?: (nodeId: string, error: unknown) => void;
  /** Passed to combo options functions (the host's folders). */
  context?: ComboContext;
}

/** `/object_info`: every registered class by id, in registration order. */
export function objectInfo(registry: NodeRegistry, options: ObjectInfoOptions = {}): Record<string, ObjectInfoEntry> {
  const onError =
    options.onError ??
    ((nodeId: string, error: unknown) =>
      consoleLogger('warn').warn(
        `object_info: node class "${nodeId}" (pack ${registry.sourceOf(nodeId)?.pack ?? '?'}) is left out: ` +
          (error instanceof Error ? error.message : String(error)),
      ));
  const out: Record<string, ObjectInfoEntry> = {};
  for (const id of registry.ids()) {
    const definition = registry.get(id);
    if (!definition) continue;
    try {
      out[id] = objectInfoEntry(definition, registry.sourceOf(id), options.context);
    } catch (error) {
      onError(id, error);
    }
  }
  return out;
}

/**
 * ComfyUI's spec tuple for one input. Validation reports it as `input_config`, so clients see the same
 * description in errors as in object_info.
 */
export function comfyInputSpec(spec: InputSpec, context: ComboContext = {}): ComfyInputSpec {
  const options: ComfyInputOptions = {};
  const set = (key: string, value: unknown) => {
    if (value !== undefined) options[key] = value;
  };
  let type: string | string[];
  // Keys in the order ComfyUI's own nodes write them: value range first, tooltip last.
  switch (spec.kind) {
    case 'INT':
      type = 'INT';
      set('default', spec.default);
      set('min', spec.min);
      set('max', spec.max);
      set('step', spec.step);
      set('display', spec.display);
      set('control_after_generate', spec.controlAfterGenerate);
      break;
    case 'FLOAT':
      type = 'FLOAT';
      set('default', spec.default);
      set('min', spec.min);
      set('max', spec.max);
      set('step', spec.step);
      set('round', spec.round);
      set('display', spec.display);
      break;
    case 'STRING':
      type = 'STRING';
      set('default', spec.default);
      set('multiline', spec.multiline);
      set('placeholder', spec.placeholder);
      break;
    case 'BOOLEAN':
      type = 'BOOLEAN';
      set('default', spec.default);
      set('label_on', spec.labelOn);
      set('label_off', spec.labelOff);
      break;
    case 'COMBO':
      type = [...comboValues(spec.options, context)];
      set('default', spec.default);
      set('image_upload', spec.imageUpload);
      break;
    case 'SOCKET':
      type = spec.type;
      set('default', spec.default);
      break;
  }
  if (spec.kind !== 'SOCKET') set('forceInput', spec.forceInput);
  set('lazy', spec.lazy);
  set('advanced', spec.advanced);
  set('tooltip', spec.tooltip);
  return Object.keys(options).length ? [type, options] : [type];
}

/** The current values of a combo; a function is called each time, so new files in a model folder show up. */
export function comboValues(options: ComboOptions, context: ComboContext = {}): readonly string[] {
  return typeof options === 'function' ? options(context) : options;
}

/**
 * ComfyUI's `python_module`: `nodes` for the classes that ship with it, `custom_nodes.<folder>` for packs.
 * The frontend derives the node's source badge from it (`custom_nodes.` prefix -> the pack's name).
 */
export function pythonModuleOf(source: NodeSource): string {
  if (source.pack === 'builtin') return 'nodes';
  const name = source.pack.replace(/^custom_nodes[\\/]/, '').replace(/[\\/]+$/, '');
  const folder = name.split(/[\\/]/).pop() || name;
  return `custom_nodes.${folder}`;
}
