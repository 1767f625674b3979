/**
 * Loading a workflow file of any of the formats users have: an API prompt, a UI workflow (0.4 or 1), or a saved
 * POST /prompt body. The format is detected, checked against its published schema, and UI workflows are
 * converted to the API prompt that is executed.
 */
import { parseJsonKeepingNumberKinds } from './number-literals.ts';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { ApiPrompt } from './api-format.ts';
import { checkApiPrompt, checkPromptRequest, checkUiWorkflow04, checkUiWorkflow1, formatSchemaError, type SchemaError } from './schemas.ts';
import { uiWorkflowVersion, type UiWorkflow } from './ui-format.ts';
import { uiToApi, type NodeLookup } from './ui-to-api.ts';

export type WorkflowFormat = 'api' | 'ui-0.4' | 'ui-1' | 'prompt-request';

const FORMAT_NAMES: Record<WorkflowFormat, string> = {
  api: 'API prompt',
  'ui-0.4': 'UI workflow (version 0.4)',
  'ui-1': 'UI workflow (version 1)',
  'prompt-request': 'POST /prompt request body',
};

export interface LoadedWorkflow {
  format: WorkflowFormat;
  /** The prompt to validate and execute. */
  prompt: ApiPrompt;
  /** The UI graph as given (for embedding into PNGs); absent for API prompts that did not carry one. */
  workflow?: UiWorkflow;
  /** From the UI conversion: unknown node types, dropped links, defaults filled in. */
  warnings: string[];
}

/** A workflow that cannot be read: not JSON, not a known format, or not valid against its schema. */
export class WorkflowFormatError extends Error {
  override name = 'WorkflowFormatError';
  constructor(
    message: string,
    /** The schema violations, when that is the reason. */
    readonly errors: SchemaError[] = [],
    /** The format the input was taken for, when it got that far. */
    readonly format?: WorkflowFormat,
  ) {
    super(message);
  }
}

/** How many schema errors the exception message lists; all of them are in `errors`. */
const LISTED_ERRORS = 20;

/** The format a parsed JSON value looks like, without validating it. */
export function detectWorkflowFormat(json: unknown): WorkflowFormat | undefined {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return undefined;
  const ui = uiWorkflowVersion(json);
  if (ui) return ui === '1' ? 'ui-1' : 'ui-0.4';
  const prompt = (json as Record<string, unknown>).prompt;
  // A node could be called "prompt" in an API prompt; it would have a class_type.
  if (prompt !== null && typeof prompt === 'object' && !Array.isArray(prompt) && !('class_type' in prompt)) {
    return 'prompt-request';
  }
  return 'api';
}

/**
 * Detects the format of a parsed workflow, validates it, and converts UI workflows to an API prompt with the
 * given node definitions. Throws `WorkflowFormatError` listing what is wrong.
 * `source` names the input in messages (a file name, "request body").
 */
export function loadWorkflow(json: unknown, nodes: NodeLookup, source = 'workflow'): LoadedWorkflow {
  const format = detectWorkflowFormat(json);
  if (!format) {
    throw new WorkflowFormatError(
      `${source}: expected a JSON object (an API prompt or a UI workflow), got ${describeValue(json)}`,
    );
  }
  switch (format) {
    case 'api':
      ensureValid(checkApiPrompt(json), format, source);
      return { format, prompt: json as ApiPrompt, warnings: [] };
    case 'prompt-request': {
      ensureValid(checkPromptRequest(json), format, source);
      const body = json as { prompt: ApiPrompt; extra_data?: { extra_pnginfo?: { workflow?: unknown } } };
      const embedded = body.extra_data?.extra_pnginfo?.workflow;
      const workflow = uiWorkflowVersion(embedded) ? (embedded as UiWorkflow) : undefined;
      return { format, prompt: body.prompt, ...(workflow ? { workflow } : {}), warnings: [] };
    }
    case 'ui-0.4':
    case 'ui-1': {
      const errors = format === 'ui-1' ? checkUiWorkflow1(json) : checkUiWorkflow04(json);
      const version = (json as { version?: unknown }).version;
      if (format === 'ui-0.4' && version !== 0.4 && version !== undefined) {
        const header = `${source}: unsupported UI workflow version ${JSON.stringify(version)}; gategraph reads versions 0.4 and 1`;
        throw new WorkflowFormatError(withErrorList(header, errors), errors, format);
      }
      ensureValid(errors, format, source);
      const workflow = json as UiWorkflow;
      const { prompt, warnings } = uiToApi(workflow, nodes);
      return { format, prompt, workflow, warnings };
    }
  }
}

export interface ParseWorkflowFileOptions {
  /**
   * Reads the workflow out of a PNG's text chunks (`prompt` / `workflow`), returning undefined when the image
   * has none. PNG reading lives in another package; without this option PNG files are refused clearly.
   */
  extractFromPng?: (bytes: Uint8Array) => unknown;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Reads a workflow file and parses its JSON, with messages that say which file and where it is broken. */
export async function parseWorkflowFile(path: string, options: ParseWorkflowFileOptions = {}): Promise<unknown> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (error as Error).message;
    throw new WorkflowFormatError(`Cannot read workflow ${path}: ${why}`);
  }
  if (PNG_SIGNATURE.every((b, i) => bytes[i] === b)) {
    if (!options.extractFromPng) {
      throw new WorkflowFormatError(
        `${path} is a PNG image; reading workflows from PNG files is not available here. Pass the workflow's JSON file instead.`,
      );
    }
    const embedded = options.extractFromPng(bytes);
    if (embedded === undefined) {
      throw new WorkflowFormatError(
        `${path} is a PNG image without an embedded workflow (no "prompt" or "workflow" text chunk). Only images saved by ComfyUI or gategraph carry one.`,
      );
    }
    return embedded;
  }
  const text = new TextDecoder('utf-8').decode(bytes).replace(/^\uFEFF/, '');
  if (text.trim() === '') throw new WorkflowFormatError(`${path} is empty; expected a workflow in JSON`);
  try {
    return parseJsonKeepingNumberKinds(text);
  } catch (error) {
    throw new WorkflowFormatError(`${path} is not valid JSON: ${jsonErrorWithLocation((error as Error).message, text)}`);
  }
}

/** Reads, detects, validates and converts a workflow file. */
export async function loadWorkflowFile(
  path: string,
  nodes: NodeLookup,
  options: ParseWorkflowFileOptions = {},
): Promise<LoadedWorkflow> {
  return loadWorkflow(await parseWorkflowFile(path, options), nodes, basename(path));
}

function ensureValid(errors: SchemaError[], format: WorkflowFormat, source: string): void {
  if (errors.length === 0) return;
  const header = `${source} is not a valid ${FORMAT_NAMES[format]} (${errors.length} problem${errors.length === 1 ? '' : 's'}):`;
  throw new WorkflowFormatError(withErrorList(header, errors), errors, format);
}

function withErrorList(header: string, errors: SchemaError[]): string {
  const lines = errors.slice(0, LISTED_ERRORS).map((e) => `  - ${formatSchemaError(e)}`);
  if (errors.length > LISTED_ERRORS) lines.push(`  ... and ${errors.length - LISTED_ERRORS} more`);
  return [header, ...lines].join('\n');
}

/** Adds `line L, column C` to V8's JSON error when it only gives a character position. */
function jsonErrorWithLocation(message: string, text: string): string {
  if (/line \d+/.test(message)) return message;
  const match = /at position (\d+)/.exec(message);
  if (!match) return message;
  const position = Number(match[1]);
  const before = text.slice(0, position);
  const line = before.split('\n').length;
  const column = position - before.lastIndexOf('\n');
  return `${message} (line ${line}, column ${column})`;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return 'a string';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
