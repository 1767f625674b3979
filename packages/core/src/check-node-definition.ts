/**
 * A light structural check of a node definition, for definitions that come from outside the type checker:
 * packs written in JavaScript, packs built against another version of core, objects assembled at run time.
 * It catches what would otherwise fail later and far from the cause (at validation, in the editor, in the
 * middle of a run): a missing id or `execute`, outputs that are not an array, an input spec of unknown kind.
 * It does not check values against each other beyond the obvious (a default outside min..max).
 */
import type { HiddenKind } from './node-definition.ts';

const INPUT_KINDS = ['INT', 'FLOAT', 'STRING', 'BOOLEAN', 'COMBO', 'SOCKET'] as const;
const HIDDEN_KINDS: readonly HiddenKind[] = ['PROMPT', 'EXTRA_PNGINFO', 'UNIQUE_ID', 'DYNPROMPT'];
const BUILDER_OF: Record<(typeof INPUT_KINDS)[number], string> = {
  INT: 'int()',
  FLOAT: 'float()',
  STRING: 'string()',
  BOOLEAN: 'boolean()',
  COMBO: 'combo()',
  SOCKET: 'socket()',
};

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const describe = (value: unknown): string =>
  value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value === 'string' ? `"${value}"` : typeof value;

/**
 * Returns the problems found in `definition`, each a sentence naming the field at fault (without the node id,
 * so callers can prefix it); an empty array means the definition looks usable.
 */
export function checkNodeDefinition(definition: unknown): string[] {
  if (!isRecord(definition)) return [`a node definition must be an object made with defineNode(), got ${describe(definition)}`];
  const problems: string[] = [];
  const { id, inputs, hidden, outputs, execute, validate, fingerprint, validatesInputs, checkLazyStatus } = definition;

  if (typeof id !== 'string' || id.trim() === '') problems.push(`"id" must be a non-empty string, got ${describe(id)}`);
  if (typeof execute !== 'function') problems.push(`has no execute function ("execute" is ${describe(execute)})`);
  if (validate !== undefined && typeof validate !== 'function') problems.push(`"validate" must be a function, got ${describe(validate)}`);
  if (fingerprint !== undefined && typeof fingerprint !== 'function') {
    problems.push(`"fingerprint" must be a function, got ${describe(fingerprint)}`);
  }
  if (checkLazyStatus !== undefined && typeof checkLazyStatus !== 'function') {
    problems.push(`"checkLazyStatus" must be a function, got ${describe(checkLazyStatus)}`);
  }
  for (const flag of ['acceptsUndeclaredInputs', 'concurrent', 'notIdempotent'] as const) {
    const value = definition[flag];
    if (value !== undefined && typeof value !== 'boolean') problems.push(`"${flag}" must be true or false, got ${describe(value)}`);
  }

  if (!isRecord(inputs)) problems.push(`"inputs" must be an object of input specs (use {} for none), got ${describe(inputs)}`);
  else for (const [name, spec] of Object.entries(inputs)) problems.push(...checkInputSpec(name, spec));

  if (validatesInputs !== undefined) {
    if (validatesInputs !== 'all' && !(Array.isArray(validatesInputs) && validatesInputs.every((n) => typeof n === 'string'))) {
      problems.push(`"validatesInputs" must be 'all' or a list of input names, got ${describe(validatesInputs)}`);
    } else if (validate === undefined) {
      problems.push('"validatesInputs" names inputs the validate hook checks, but the node has no validate hook');
    } else if (Array.isArray(validatesInputs) && isRecord(inputs)) {
      for (const name of validatesInputs) if (!(name in inputs)) problems.push(`"validatesInputs" names "${name}", which is not an input`);
    }
  }

  if (hidden !== undefined) {
    if (!isRecord(hidden)) problems.push(`"hidden" must be an object like { prompt: 'PROMPT' }, got ${describe(hidden)}`);
    else {
      for (const [name, kind] of Object.entries(hidden)) {
        if (!HIDDEN_KINDS.includes(kind as HiddenKind)) {
          problems.push(`hidden input "${name}" has unknown kind ${describe(kind)} (expected one of ${HIDDEN_KINDS.join(', ')})`);
        }
        if (isRecord(inputs) && name in inputs) problems.push(`"${name}" is declared both as an input and as a hidden input`);
      }
    }
  }

  if (!Array.isArray(outputs)) problems.push(`"outputs" must be an array of { type } (use [] for none), got ${describe(outputs)}`);
  else {
    outputs.forEach((output: unknown, index) => {
      if (!isRecord(output) || typeof output.type !== 'string' || output.type === '') {
        problems.push(`output ${index} must be an object with a non-empty "type" such as 'LATENT', got ${describe(output)}`);
      }
    });
  }
  return problems;
}

function checkInputSpec(name: string, spec: unknown): string[] {
  const where = `input "${name}"`;
  if (!isRecord(spec)) return [`${where} must be an input spec made with a builder such as int() or socket(), got ${describe(spec)}`];
  const kind = spec.kind;
  if (!INPUT_KINDS.includes(kind as (typeof INPUT_KINDS)[number])) {
    return [
      `${where} has unknown kind ${describe(kind)} (expected one of ${INPUT_KINDS.join(', ')}; ` +
        `make specs with the builders ${Object.values(BUILDER_OF).join(', ')})`,
    ];
  }
  const problems: string[] = [];
  const def = spec.default;
  switch (kind as (typeof INPUT_KINDS)[number]) {
    case 'INT':
    case 'FLOAT': {
      const { min, max } = spec;
      for (const [key, value] of [['default', def], ['min', min], ['max', max], ['step', spec.step]] as const) {
        if (value !== undefined && (typeof value !== 'number' || Number.isNaN(value))) {
          problems.push(`${where}: "${key}" must be a number, got ${describe(value)}`);
        }
      }
      if (kind === 'INT' && typeof def === 'number' && !Number.isInteger(def)) problems.push(`${where}: default ${def} is not an integer`);
      if (typeof min === 'number' && typeof max === 'number' && min > max) problems.push(`${where}: min ${min} is greater than max ${max}`);
      if (typeof def === 'number' && ((typeof min === 'number' && def < min) || (typeof max === 'number' && def > max))) {
        problems.push(`${where}: default ${def} is outside min..max (${String(min ?? '-inf')}..${String(max ?? 'inf')})`);
      }
      break;
    }
    case 'STRING':
      if (def !== undefined && typeof def !== 'string') problems.push(`${where}: "default" must be a string, got ${describe(def)}`);
      break;
    case 'BOOLEAN':
      if (def !== undefined && typeof def !== 'boolean') problems.push(`${where}: "default" must be a boolean, got ${describe(def)}`);
      break;
    case 'COMBO': {
      const options = spec.options;
      if (typeof options === 'function') break; // computed when object_info is built; nothing to check yet
      if (!Array.isArray(options) || options.some((o) => typeof o !== 'string')) {
        problems.push(`${where}: "options" must be an array of strings or a function returning one, got ${describe(options)}`);
      } else if (def !== undefined && !options.includes(def)) {
        problems.push(`${where}: default ${describe(def)} is not one of the options (${options.join(', ')})`);
      }
      break;
    }
    case 'SOCKET':
      if (typeof spec.type !== 'string' || spec.type === '') {
        problems.push(`${where}: a socket needs a non-empty "type" such as 'MODEL', got ${describe(spec.type)}`);
      }
      break;
  }
  return problems;
}
