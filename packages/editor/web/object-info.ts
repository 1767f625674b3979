/**
 * `/object_info` entries turned back into node definitions, so the editor and core's UI -> API converter read
 * widget order, limits and control-after-generate widgets from one description.
 */
import type { AnyNodeDefinition, ComfyInputOptions, ComfyInputSpec, InputSpec, ObjectInfoEntry } from './core.ts';

export type { ObjectInfoEntry };

export interface InputDescription {
  name: string;
  spec: InputSpec;
  optional: boolean;
  /** The raw options object, for anything the definition types do not carry. */
  options: ComfyInputOptions;
}

const WIDGET_TYPES = new Set(['INT', 'FLOAT', 'STRING', 'BOOLEAN']);

/** The inputs of a class in the order the editor lays them out: required ones, then optional ones. */
export function describeInputs(entry: ObjectInfoEntry): InputDescription[] {
  const out: InputDescription[] = [];
  for (const section of ['required', 'optional'] as const) {
    const specs = entry.input[section] ?? {};
    const order = entry.input_order?.[section] ?? Object.keys(specs);
    for (const name of order) {
      const raw = specs[name];
      if (!raw) continue;
      out.push({ name, optional: section === 'optional', options: raw[1] ?? {}, spec: toSpec(raw, section === 'optional') });
    }
  }
  return out;
}

/** A node definition equivalent to the entry (for the converter; `execute` is never called in the editor). */
export function definitionFromObjectInfo(entry: ObjectInfoEntry): AnyNodeDefinition {
  const inputs: Record<string, InputSpec> = {};
  for (const input of describeInputs(entry)) inputs[input.name] = input.spec;
  return {
    id: entry.name,
    displayName: entry.display_name,
    category: entry.category,
    description: entry.description,
    inputs,
    outputs: entry.output.map((type, i) => ({ type, name: entry.output_name[i] ?? type, isList: entry.output_is_list[i] ?? false })),
    outputNode: entry.output_node,
    execute: () => {
      throw new Error('node definitions in the editor are descriptions only');
    },
  };
}

function toSpec(raw: ComfyInputSpec, optional: boolean): InputSpec {
  const [type, options = {}] = raw;
  const common = {
    optional,
    ...(typeof options.tooltip === 'string' ? { tooltip: options.tooltip } : {}),
    ...(options.forceInput === true ? { forceInput: true } : {}),
    ...(options.lazy === true ? { lazy: true } : {}),
    ...(options.advanced === true ? { advanced: true } : {}),
  };
  const num = (key: string) => (typeof options[key] === 'number' ? { [key]: options[key] as number } : {});
  if (Array.isArray(type)) {
    return {
      kind: 'COMBO',
      options: type.map(String),
      ...common,
      ...(typeof options.default === 'string' ? { default: options.default } : {}),
      ...(options.control_after_generate === true ? { controlAfterGenerate: true } : {}),
      ...(options.image_upload === true ? { imageUpload: true } : {}),
    } as InputSpec;
  }
  // ComfyUI also writes combos as ["COMBO", {options: [...]}] (V3 schema).
  if (type === 'COMBO' && Array.isArray(options.options)) {
    return { kind: 'COMBO', options: (options.options as unknown[]).map(String), ...common } as InputSpec;
  }
  if (!WIDGET_TYPES.has(type)) return { kind: 'SOCKET', type, ...common };
  switch (type) {
    case 'INT':
      return {
        kind: 'INT',
        ...common,
        ...num('default'),
        ...num('min'),
        ...num('max'),
        ...num('step'),
        ...(typeof options.control_after_generate === 'boolean' ? { controlAfterGenerate: options.control_after_generate } : {}),
        ...(options.display === 'slider' ? { display: 'slider' as const } : {}),
      };
    case 'FLOAT':
      return {
        kind: 'FLOAT',
        ...common,
        ...num('default'),
        ...num('min'),
        ...num('max'),
        ...num('step'),
        ...(typeof options.round === 'number' || options.round === false ? { round: options.round as number | false } : {}),
        ...(options.display === 'slider' ? { display: 'slider' as const } : {}),
      };
    case 'STRING':
      return {
        kind: 'STRING',
        ...common,
        ...(typeof options.default === 'string' ? { default: options.default } : {}),
        ...(options.multiline === true ? { multiline: true } : {}),
        ...(typeof options.placeholder === 'string' ? { placeholder: options.placeholder } : {}),
      };
    default:
      return {
        kind: 'BOOLEAN',
        ...common,
        ...(typeof options.default === 'boolean' ? { default: options.default } : {}),
        ...(typeof options.label_on === 'string' ? { labelOn: options.label_on } : {}),
        ...(typeof options.label_off === 'string' ? { labelOff: options.label_off } : {}),
      };
  }
}
