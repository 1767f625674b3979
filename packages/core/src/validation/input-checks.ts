/**
 * The checks of one node's inputs before anything runs (the node-level half of `validation.ts`): required
 * inputs present, links well-formed and of a compatible type, constants converted as ComfyUI converts them
 * (`int()`, `float()`, `str()`), min/max and combo values, and the node's own `validate` hook.
 */
import type { AnyNodeDefinition, ComboContext, InputSpec, ValidateContext } from '../node-definition.ts';
import type { NodeRegistry } from '../registry.ts';
import { isLink, type ApiLink, type ApiNode, type ApiPrompt } from '../workflow/api-format.ts';
import { comboValues, comfyInputSpec } from '../object-info.ts';
import { NodeInputError } from '../errors.ts';
import { ownValue } from '../own-keys.ts';
import { isTypeCompatible } from '../socket-types.ts';
import type { NodeError } from '../validation.ts';

/** Combos with more values than this report `input_config: null`, like ComfyUI (model lists get long). */
const LARGE_COMBO = 20;
/** How many allowed values a `value_not_in_list` message shows. */
const SHOWN_COMBO_VALUES = 8;


/**
 * Checks one node's declared inputs, converting constants in `node.inputs` in place (it is our copy); returns
 * the problems and the converted constants (what the `validate` hook receives).
 */
export function checkInputs(
  node: ApiNode,
  definition: AnyNodeDefinition,
  prompt: ApiPrompt,
  registry: NodeRegistry,
  context: ComboContext,
): { errors: NodeError[]; constants: Record<string, unknown>; inputTypes: Record<string, string> } {
  const errors: NodeError[] = [];
  const constants: Record<string, unknown> = {};
  const inputTypes: Record<string, string> = {};
  const taken = definition.validatesInputs;
  const specs = Object.entries(definition.inputs);
  // A node taking undeclared inputs gets them unchecked, as a VALIDATE_INPUTS argument would (links must exist).
  if (definition.acceptsUndeclaredInputs) {
    for (const name of Object.keys(node.inputs)) if (!Object.hasOwn(definition.inputs, name)) specs.push([name, UNDECLARED_INPUT]);
  }
  for (const [name, spec] of specs) {
    try {
      const takenOver = spec === UNDECLARED_INPUT || taken === 'all' || (taken?.includes(name) ?? false);
      const error = checkInput(name, spec, node, prompt, registry, { constants, inputTypes, takenOver }, context);
      if (error) errors.push(error);
    } catch (error) {
      // A combo whose options function throws (e.g. an unreadable model folder).
      errors.push(exceptionError(error, `could not check input "${name}"`, name));
    }
  }
  return { errors, constants, inputTypes };
}

/** The spec an undeclared input of a node that `acceptsUndeclaredInputs` is checked against. */
const UNDECLARED_INPUT: InputSpec = { kind: 'SOCKET', type: '*', optional: true };

/** What checkInput fills in, and whether the node's own validate hook checks this input instead. */
interface InputCheckState {
  constants: Record<string, unknown>;
  inputTypes: Record<string, string>;
  takenOver: boolean;
}

function checkInput(
  name: string,
  spec: InputSpec,
  node: ApiNode,
  prompt: ApiPrompt,
  registry: NodeRegistry,
  state: InputCheckState,
  context: ComboContext,
): NodeError | undefined {
  const { constants } = state;
  const inputs = node.inputs;
  const config = () => comfyInputSpec(spec, context);
  if (!Object.hasOwn(inputs, name) || inputs[name] === undefined) {
    if (spec.optional) return undefined;
    return {
      type: 'required_input_missing',
      message:
        spec.kind === 'SOCKET'
          ? `Required input "${name}" is not connected; link it to a ${spec.type} output`
          : `Required input "${name}" is missing; give it a value or link it`,
      details: name,
      extra_info: { input_name: name },
    };
  }

  let value: unknown = inputs[name];
  if (Array.isArray(value)) return checkLink(name, spec, value, inputs, prompt, registry, config, state);

  // ComfyUI lets clients pass a list as a constant by wrapping it: {"__value__": [...]}.
  if (isPlainObject(value) && Object.hasOwn(value, '__value__')) {
    value = value['__value__'];
    inputs[name] = value;
  }
  if (state.takenOver) {
    // The node's validate hook checks this one (ComfyUI's VALIDATE_INPUTS argument): as the prompt has it.
    constants[name] = value;
    return undefined;
  }
  const converted = convertConstant(spec, value);
  if (!converted.ok) {
    return {
      type: 'invalid_input_type',
      message: `Input "${name}" ${converted.problem}`,
      details: `${name}, ${formatValue(value)}, ${converted.problem}`,
      extra_info: { input_name: name, input_config: config(), received_value: value, exception_message: converted.problem },
    };
  }
  value = converted.value;
  inputs[name] = value;

  if ((spec.kind === 'INT' || spec.kind === 'FLOAT') && typeof value === 'number') {
    if (spec.min !== undefined && value < spec.min) {
      return {
        type: 'value_smaller_than_min',
        message: `Input "${name}" is ${value}, below the minimum ${spec.min}`,
        details: name,
        extra_info: { input_name: name, input_config: config(), received_value: value },
      };
    }
    if (spec.max !== undefined && value > spec.max) {
      return {
        type: 'value_bigger_than_max',
        message: `Input "${name}" is ${value}, above the maximum ${spec.max}`,
        details: name,
        extra_info: { input_name: name, input_config: config(), received_value: value },
      };
    }
  }

  if (spec.kind === 'COMBO') {
    const allowed = comboValues(spec.options, context);
    if (!allowed.includes(value as string)) {
      const shown = allowed.slice(0, SHOWN_COMBO_VALUES).map((v) => JSON.stringify(v));
      const rest = allowed.length > SHOWN_COMBO_VALUES ? `, ... (${allowed.length} in all)` : '';
      const suggestion = closeComboValue(String(value), allowed);
      const listed = allowed.length ? `one of ${shown.join(', ')}${rest}` : 'one of an empty list (nothing is installed for it)';
      return {
        type: 'value_not_in_list',
        message:
          `Input "${name}" is ${JSON.stringify(value)}, which is not ${listed}` +
          (suggestion ? `; did you mean ${JSON.stringify(suggestion)}?` : ''),
        details:
          `${name}: ${formatValue(value)} not in ` +
          (allowed.length > LARGE_COMBO ? `(list of length ${allowed.length})` : `[${allowed.map(formatValue).join(', ')}]`),
        extra_info: { input_name: name, input_config: allowed.length > LARGE_COMBO ? null : config(), received_value: value },
      };
    }
  }

  constants[name] = value;
  return undefined;
}

function checkLink(
  name: string,
  spec: InputSpec,
  value: unknown[],
  inputs: Record<string, unknown>,
  prompt: ApiPrompt,
  registry: NodeRegistry,
  config: () => unknown,
  state: InputCheckState,
): NodeError | undefined {
  const bad = (message: string): NodeError => ({
    type: 'bad_linked_input',
    message,
    details: name,
    extra_info: { input_name: name, input_config: config(), received_value: value },
  });
  if (!isLink(value)) {
    return bad(
      `Input "${name}" has a malformed link ${JSON.stringify(value)}; a link is [source node id, output index], e.g. ["4", 0]`,
    );
  }
  const sourceId = String(value[0]);
  const slot = value[1];
  const link: ApiLink = [sourceId, slot];
  inputs[name] = link;

  const source = ownValue(prompt, sourceId);
  if (!source) return bad(`Input "${name}" is linked to node ${sourceId}, which does not exist in the prompt`);
  const sourceDefinition = registry.get(source.class_type)!;
  const outputs = sourceDefinition.outputs;
  const sourceLabel = nodeLabel(sourceId, source.class_type);
  if (slot < 0 || slot >= outputs.length) {
    const has = outputs.length === 0 ? 'has no outputs' : `has only ${outputs.length} output${outputs.length === 1 ? '' : 's'} (0-${outputs.length - 1})`;
    return bad(`Input "${name}" is linked to output ${slot} of ${sourceLabel}, which ${has}`);
  }

  const output = outputs[slot]!;
  state.inputTypes[name] = output.type;
  const expected = expectedType(spec);
  if (!state.takenOver && !isTypeCompatible(output.type, expected)) {
    const outputName = output.name ?? output.type;
    return {
      type: 'return_type_mismatch',
      message: `Input "${name}" expects ${expected}, but node ${sourceId} output ${slot} ("${outputName}") is ${output.type}`,
      details: `${name}, received_type(${output.type}) mismatch input_type(${expected})`,
      extra_info: { input_name: name, input_config: config(), received_type: output.type, linked_node: link },
    };
  }
  return undefined;
}

/** The type a link into this input must carry: widgets accept links of their own type (and combos `COMBO`). */
function expectedType(spec: InputSpec): string {
  return spec.kind === 'SOCKET' ? spec.type : spec.kind;
}

type Conversion = { ok: true; value: unknown } | { ok: false; problem: string };

const PRIMITIVES = ['INT', 'FLOAT', 'STRING', 'BOOLEAN'] as const;
type Primitive = (typeof PRIMITIVES)[number];

/** Converts a constant to the input's value type, the way ComfyUI's int()/float()/str() calls do. */
function convertConstant(spec: InputSpec, value: unknown): Conversion {
  switch (spec.kind) {
    case 'INT':
    case 'FLOAT':
    case 'STRING':
    case 'BOOLEAN':
      return convertPrimitive(spec.kind, value);
    case 'COMBO':
      // No conversion, like ComfyUI: 5 is not the option "5".
      return { ok: true, value };
    case 'SOCKET': {
      const types = spec.type.split(',').map((t) => t.trim());
      if (types.includes('*')) return { ok: true, value };
      // A pack's own socket type with a default, or one that says so, takes the constant as it is (ComfyUI).
      if (spec.default !== undefined || spec.acceptsConstant === true) return { ok: true, value };
      // A socket of primitive type (e.g. socket('INT')) takes the constant if any of its types does.
      for (const type of types) {
        if (!(PRIMITIVES as readonly string[]).includes(type)) continue;
        const converted = convertPrimitive(type as Primitive, value);
        if (converted.ok) return converted;
      }
      const primitive = types.filter((t) => (PRIMITIVES as readonly string[]).includes(t));
      return {
        ok: false,
        problem: primitive.length
          ? `is ${formatValue(value)}, which is not a valid ${primitive.join(' or ')} value`
          : `needs a link from a ${spec.type} output, but got the constant ${formatValue(value)}`,
      };
    }
  }
}

function convertPrimitive(type: Primitive, value: unknown): Conversion {
  const fail = (what: string): Conversion => ({ ok: false, problem: `is ${formatValue(value)}, ${what}` });
  if (value === null || typeof value === 'object') return fail(`not ${article(type)} ${type} value`);
  switch (type) {
    case 'INT': {
      if (typeof value === 'boolean') return { ok: true, value: value ? 1 : 0 };
      if (typeof value === 'number') {
        if (!Number.isFinite(value)) return fail('not a finite integer');
        return { ok: true, value: Math.trunc(value) + 0 }; // `+ 0` turns -0 into 0
      }
      if (typeof value === 'string' && /^\s*[+-]?\d(?:_?\d)*\s*$/.test(value)) {
        return { ok: true, value: Number(value.replace(/_/g, '')) + 0 };
      }
      return fail('which cannot be converted to an integer');
    }
    case 'FLOAT': {
      if (typeof value === 'boolean') return { ok: true, value: value ? 1 : 0 };
      if (typeof value === 'number') return Number.isNaN(value) ? fail('not a number') : { ok: true, value };
      if (typeof value === 'string') {
        const parsed = parsePythonFloat(value);
        if (parsed !== undefined) return { ok: true, value: parsed };
      }
      return fail('which cannot be converted to a number');
    }
    case 'STRING':
      if (typeof value === 'string') return { ok: true, value };
      if (typeof value === 'number') return { ok: true, value: String(value) };
      // Python's str(True) is "True"; keep ComfyUI's spelling.
      if (typeof value === 'boolean') return { ok: true, value: value ? 'True' : 'False' };
      return fail('not a string');
    case 'BOOLEAN':
      if (typeof value === 'boolean') return { ok: true, value };
      if (typeof value === 'number') return { ok: true, value: value !== 0 };
      if (typeof value === 'string') {
        const word = value.trim().toLowerCase();
        if (word === 'true') return { ok: true, value: true };
        if (word === 'false') return { ok: true, value: false };
      }
      return fail('not a boolean (use true or false)');
  }
}

/** Python's float() on a string: decimal or exponent notation, `_` between digits, inf/infinity; NaN refused. */
function parsePythonFloat(text: string): number | undefined {
  const trimmed = text.trim();
  const special = /^([+-]?)(inf|infinity)$/i.exec(trimmed);
  if (special) return special[1] === '-' ? -Infinity : Infinity;
  const digits = String.raw`\d(?:_?\d)*`;
  const pattern = new RegExp(String.raw`^[+-]?(?:${digits}(?:\.(?:${digits})?)?|\.${digits})(?:[eE][+-]?${digits})?$`);
  if (!pattern.test(trimmed)) return undefined;
  return Number(trimmed.replace(/_/g, ''));
}

/** A likely intended combo value: the same text in another case, or the same file name in another folder. */
function closeComboValue(value: string, allowed: readonly string[]): string | undefined {
  const lower = value.toLowerCase();
  const base = (v: string) => v.split(/[\\/]/).pop()!.toLowerCase();
  return allowed.find((v) => v.toLowerCase() === lower) ?? allowed.find((v) => base(v) === base(value));
}

/** Runs the definition's `validate` hook on the converted constants. */
export async function runValidateHook(
  definition: AnyNodeDefinition,
  constants: Record<string, unknown>,
  context: ValidateContext,
): Promise<NodeError | undefined> {
  let result: unknown;
  try {
    result = await definition.validate!(constants, context);
  } catch (error) {
    if (error instanceof NodeInputError) {
      return {
        type: 'custom_validation_failed',
        message: error.message,
        details: error.inputName ? `${error.inputName} - ${error.message}` : error.message,
        extra_info: error.inputName ? { input_name: error.inputName } : {},
      };
    }
    return exceptionError(error, `the node's validate() threw`);
  }
  if (result === true) return undefined;
  const message = typeof result === 'string' ? result : `the node's validate() returned ${formatValue(result)} instead of true or a message`;
  return { type: 'custom_validation_failed', message, details: message, extra_info: {} };
}

export function exceptionError(error: unknown, what: string, inputName?: string): NodeError {
  const message = error instanceof Error ? error.message : String(error);
  return {
    type: 'exception_during_validation',
    message: `Validation failed unexpectedly: ${what}: ${message}`,
    details: message,
    extra_info: {
      ...(inputName ? { input_name: inputName } : {}),
      exception_message: message,
      exception_type: error instanceof Error ? error.name : typeof error,
      traceback: error instanceof Error && error.stack ? error.stack.split('\n').slice(1).map((l) => l.trim()) : [],
    },
  };
}

export function nodeLabel(id: string, classType: string): string {
  return `${classType} (node ${id})`;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A value as it appears in a message: strings quoted, everything else as JSON. */
export function formatValue(value: unknown): string {
  if (value === undefined) return 'undefined';
  try {
    const text = JSON.stringify(value);
    return text.length > 80 ? `${text.slice(0, 77)}...` : text;
  } catch {
    return String(value);
  }
}

export function article(word: string): string {
  return /^[aeiou]/i.test(word) ? 'an' : 'a';
}
