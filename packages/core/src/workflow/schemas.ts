/**
 * The published JSON Schemas (`packages/core/schemas/*.schema.json`) compiled with one shared Ajv instance,
 * and checkers that turn Ajv's errors into a list a person can act on:
 * `nodes[3].inputs[1].link: must be integer or null (got "5")`.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';

/** One schema violation: where (a JS-like path into the document) and what is wrong. */
export interface SchemaError {
  /** e.g. `nodes[3].inputs[1].link`, `4.inputs.model[1]`; `(top level)` for the document itself. */
  path: string;
  message: string;
}

export const SCHEMA_IDS = {
  apiPrompt: 'https://gategraph.dev/schemas/api-prompt.json',
  uiWorkflow04: 'https://gategraph.dev/schemas/ui-workflow-0.4.json',
  uiWorkflow1: 'https://gategraph.dev/schemas/ui-workflow-1.json',
  promptRequest: 'https://gategraph.dev/schemas/prompt-request.json',
} as const;

export type SchemaName = keyof typeof SCHEMA_IDS;

const SCHEMA_FILES: Record<SchemaName, string> = {
  apiPrompt: 'api-prompt.schema.json',
  uiWorkflow04: 'ui-workflow-0.4.schema.json',
  uiWorkflow1: 'ui-workflow-1.schema.json',
  promptRequest: 'prompt-request.schema.json',
};

/** The directory holding the published schema files (also exported by the package as `./schemas/*`). */
export const schemaDirectory = new URL('../../schemas/', import.meta.url);

/** The parsed schema document, e.g. for a server that publishes it. */
export function loadSchema(name: SchemaName): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(SCHEMA_FILES[name], schemaDirectory), 'utf8')) as Record<string, unknown>;
}

let ajv: Ajv2020 | undefined;
const compiled = new Map<SchemaName, ValidateFunction>();

function validatorFor(name: SchemaName): ValidateFunction {
  let validate = compiled.get(name);
  if (validate) return validate;
  if (!ajv) {
    // The schemas use union types (`["integer", "string"]`) and tuples without a closing `items` on purpose,
    // to stay permissive where ComfyUI files vary; strict mode's advisories about those are not errors.
    ajv = new Ajv2020({ allErrors: true, verbose: true, strictTypes: false, strictTuples: false });
    // All four are added before compiling so the cross-file `$ref`s resolve.
    for (const key of Object.keys(SCHEMA_FILES) as SchemaName[]) ajv.addSchema(loadSchema(key));
  }
  validate = ajv.getSchema(SCHEMA_IDS[name]);
  if (!validate) throw new Error(`Schema ${SCHEMA_IDS[name]} is not registered`);
  compiled.set(name, validate);
  return validate;
}

/** Validates `value` against one of the published schemas. Empty when valid. */
export function checkAgainstSchema(name: SchemaName, value: unknown): SchemaError[] {
  const validate = validatorFor(name);
  if (validate(value)) return [];
  return readableErrors(validate.errors ?? [], value);
}

/** An API-format prompt (`{ "3": { class_type, inputs } }`). */
export const checkApiPrompt = (value: unknown): SchemaError[] => checkAgainstSchema('apiPrompt', value);
/** A UI workflow of version 0.4 (links as arrays). */
export const checkUiWorkflow04 = (value: unknown): SchemaError[] => checkAgainstSchema('uiWorkflow04', value);
/** A UI workflow of version 1 (links as objects, `state`, subgraph definitions). */
export const checkUiWorkflow1 = (value: unknown): SchemaError[] => checkAgainstSchema('uiWorkflow1', value);
/** A POST /prompt request body. */
export const checkPromptRequest = (value: unknown): SchemaError[] => checkAgainstSchema('promptRequest', value);

/** `path: message`, one line. */
export function formatSchemaError(error: SchemaError): string {
  return `${error.path}: ${error.message}`;
}

// ---------------------------------------------------------------------------------------------------------
// Turning Ajv errors into readable ones

/** Slot indexes are integers or numeric strings (`"0"`, written by some old editors). */
const WHOLE_NUMBER_PATTERN = '^[0-9]+$';

function readableErrors(errors: ErrorObject[], root: unknown): SchemaError[] {
  const out: SchemaError[] = [];
  const seen = new Set<string>();
  for (const error of errors) {
    const readable = readableError(error, root);
    if (!readable) continue;
    const key = `${readable.path}\u0000${readable.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(readable);
  }
  return out;
}

function readableError(error: ErrorObject, root: unknown): SchemaError | undefined {
  const segments = pointerSegments(error.instancePath);
  const params = error.params as Record<string, unknown>;
  const description = (error.parentSchema as { description?: unknown } | undefined)?.description;
  const shapeHint = typeof description === 'string' && description.startsWith('[') ? `; expected ${description}` : '';
  // A bad key is reported twice: by the key's own subschema and by `propertyNames`; keep the latter.
  if (error.propertyName !== undefined && error.keyword !== 'propertyNames') return undefined;
  switch (error.keyword) {
    // `if`/`then` reports the failing `then` errors themselves plus a summary; the summary adds nothing.
    case 'if':
      return undefined;
    case 'required':
      return { path: formatPath(root, [...segments, String(params.missingProperty)]), message: 'is required' };
    case 'type': {
      const parent = error.parentSchema as { pattern?: unknown } | undefined;
      if (parent?.pattern === WHOLE_NUMBER_PATTERN) {
        return { path: formatPath(root, segments), message: `must be a whole number${got(error.data)}` };
      }
      const types = String(params.type).split(',');
      return { path: formatPath(root, segments), message: `must be ${listOr(types)}${got(error.data)}` };
    }
    case 'const':
      return {
        path: formatPath(root, segments),
        message: `must be ${JSON.stringify(params.allowedValue)}${got(error.data)}`,
      };
    case 'enum':
      return {
        path: formatPath(root, segments),
        message: `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}${got(error.data)}`,
      };
    case 'minItems':
      return {
        path: formatPath(root, segments),
        message: `must have at least ${String(params.limit)} items${got(error.data)}${shapeHint}`,
      };
    case 'maxItems':
      return {
        path: formatPath(root, segments),
        message: `must have at most ${String(params.limit)} items${got(error.data)}${shapeHint}`,
      };
    case 'minimum':
      return { path: formatPath(root, segments), message: `must be at least ${String(params.limit)}${got(error.data)}` };
    case 'minLength':
      return { path: formatPath(root, segments), message: `must not be empty${got(error.data)}` };
    case 'pattern':
      if (params.pattern === WHOLE_NUMBER_PATTERN) {
        return { path: formatPath(root, segments), message: `must be a whole number${got(error.data)}` };
      }
      return { path: formatPath(root, segments), message: `must match ${String(params.pattern)}${got(error.data)}` };
    case 'propertyNames':
      return {
        path: formatPath(root, segments),
        message: `has an invalid key ${JSON.stringify(params.propertyName)} (keys must not be empty)`,
      };
    default:
      return { path: formatPath(root, segments), message: `${error.message ?? 'is invalid'}${got(error.data)}` };
  }
}

function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** Renders a path the way a JS programmer reads it: `nodes[3].inputs[1].link`, `4.inputs.model[1]`. */
function formatPath(root: unknown, segments: string[]): string {
  if (segments.length === 0) return '(top level)';
  let text = '';
  let current: unknown = root;
  for (const segment of segments) {
    if (Array.isArray(current)) {
      text += `[${segment}]`;
      current = current[Number(segment)];
    } else {
      const plain = /^[A-Za-z0-9_$]+$/.test(segment);
      text += plain ? (text === '' ? segment : `.${segment}`) : `[${JSON.stringify(segment)}]`;
      current =
        current !== null && typeof current === 'object' ? (current as Record<string, unknown>)[segment] : undefined;
    }
  }
  return text;
}

function listOr(items: string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}

/** ` (got 1.5)`, ` (got an array)`: the received value, short. */
function got(data: unknown): string {
  if (data === undefined) return '';
  if (data === null) return ' (got null)';
  if (Array.isArray(data)) {
    const text = JSON.stringify(data);
    return text.length <= 40 ? ` (got ${text})` : ' (got an array)';
  }
  if (typeof data === 'object') return ' (got an object)';
  const text = JSON.stringify(data);
  return ` (got ${text.length > 40 ? `${text.slice(0, 37)}...` : text})`;
}
