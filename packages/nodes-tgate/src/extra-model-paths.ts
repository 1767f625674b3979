/**
 * ComfyUI's `extra_model_paths.yaml`: more folders to find models in, typically another ComfyUI install or an
 * AUTOMATIC1111 webui. The format and its meaning are ComfyUI's (`utils/extra_config.py`):
 *
 * ```yaml
 * comfyui:                        # a section; any name
 *   base_path: ~/ComfyUI/         # relative to this file's folder; ~ and $VARS expanded
 *   is_default: true              # its folders go in front of the others
 *   checkpoints: models/checkpoints/
 *   text_encoders: |              # several folders: one per line
 *     models/text_encoders/
 *     models/clip/
 * ```
 *
 * Every other key of a section is a folder kind (`checkpoints`, `vae`, `loras`, `embeddings`, `diffusers`,
 * `text_encoders`, ComfyUI's legacy `clip` and `unet` ...) whose value is one path or several, one a line,
 * relative to `base_path` (to the file's folder when a section has none). Without `is_default` a section's
 * folders come after the built-in ones, in file order; with it each one is put in front, as ComfyUI does.
 *
 * Which files are read, in this order (ComfyUI reads the file next to main.py, then each
 * `--extra-model-paths-config`): `extra_model_paths.yaml` in the workspace root when there is one, then the files
 * in `GATEGRAPH_EXTRA_MODEL_PATHS` (separated by the path delimiter, `:` on Linux), which is where the hosts'
 * `--extra-model-paths-config` options put theirs. The files are read again when they change.
 *
 * Where we differ from ComfyUI on purpose: a broken file is reported once (file, line, what is wrong) and skipped
 * instead of stopping the program; a value that is not text (empty, a number) is skipped with a warning; a
 * YAML list of paths is taken like the multi-line text; and a ` # comment` at the end of a line of a multi-line
 * value is dropped (inside `|` YAML keeps it, and ComfyUI's own example file has one there).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { consoleLogger, type Logger } from '@gategraph/core';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';

/** The environment variable listing extra_model_paths.yaml files (as `--extra-model-paths-config` does). */
export const EXTRA_MODEL_PATHS_ENV = 'GATEGRAPH_EXTRA_MODEL_PATHS';
/** The file read from the workspace root when it is there (ComfyUI reads it next to main.py). */
export const EXTRA_MODEL_PATHS_FILE = 'extra_model_paths.yaml';

/** One folder an extra_model_paths.yaml adds. */
export interface ExtraModelPath {
  /** The key as written (`checkpoints`, `clip`, `loras` ...); model-paths.ts maps legacy names. */
  kind: string;
  /** Absolute, normalized. */
  path: string;
  isDefault: boolean;
  /** Where it was said, for messages: the file, the section, the line. */
  file: string;
  section: string;
  line: number;
}

/** A file that cannot be used: missing, unreadable, or not YAML of the expected shape. The message is for people. */
export class ExtraModelPathsError extends Error {
  override name = 'ExtraModelPathsError';
  constructor(
    readonly file: string,
    message: string,
    readonly line?: number,
  ) {
    super(message);
  }
}

export interface ParsedExtraModelPaths {
  paths: ExtraModelPath[];
  /** Parts skipped (a value that is not text ...), each a sentence naming the file and line. */
  warnings: string[];
}

let logger: Logger = consoleLogger('info', 'models');
const said = new Set<string>();

/** Where model-path messages go (default: the console); tests and hosts may redirect them. */
export function setModelPathsLogger(next: Logger): void {
  logger = next;
}

/** Logs `message` as a warning once per process (model listings run on every object_info and validation). */
export function warnOnce(message: string): void {
  if (said.has(message)) return;
  said.add(message);
  logger.warn(message);
}

/** Forgets which warnings were given (tests). */
export function resetModelPathsWarnings(): void {
  said.clear();
}

/**
 * Parses the text of an extra_model_paths.yaml that lives at `file` (relative paths are taken from its folder).
 * Throws ExtraModelPathsError when the text is not YAML or not a mapping of sections.
 */
export function parseExtraModelPaths(text: string, file: string, env: NodeJS.ProcessEnv = process.env): ParsedExtraModelPaths {
  file = resolve(file);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, version: '1.1', uniqueKeys: false, prettyErrors: false });
  const lineOf = (node: YamlNode | null | undefined) => (node?.range ? lines.linePos(node.range[0]).line : 1);
  const error = doc.errors[0];
  if (error) {
    const { line, col } = lines.linePos(error.pos[0]);
    throw new ExtraModelPathsError(file, `${file} is not valid YAML: line ${line}, column ${col}: ${firstLine(error.message)}`, line);
  }
  const out: ParsedExtraModelPaths = { paths: [], warnings: [] };
  const root = doc.contents;
  if (root === null || (isScalar(root) && (root.value === null || root.value === ''))) return out; // an empty file adds nothing
  if (!isMap(root)) {
    throw new ExtraModelPathsError(
      file,
      `${file} line ${lineOf(root)}: expected sections such as "comfyui:" with base_path and folder kinds under them, found ${describe(root)}`,
      lineOf(root),
    );
  }
  const yamlDir = dirname(file);
  for (const sectionPair of root.items) {
    if (!isPair(sectionPair)) continue;
    const section = String(isScalar(sectionPair.key) ? sectionPair.key.value : sectionPair.key);
    const body = sectionPair.value as YamlNode | null;
    if (body === null || (isScalar(body) && body.value === null)) continue; // an empty section, as ComfyUI skips it
    if (!isMap(body)) {
      out.warnings.push(`${file} line ${lineOf(body)}: section "${section}" should hold base_path and folder kinds, found ${describe(body)}; skipped`);
      continue;
    }
    let basePath: string | undefined;
    let isDefault = false;
    for (const pair of body.items) {
      if (!isPair(pair) || !isScalar(pair.key)) continue;
      const key = String(pair.key.value);
      const value = pair.value as YamlNode | null;
      if (key === 'base_path') {
        if (isScalar(value) && typeof value.value === 'string' && value.value.trim() !== '') {
          const expanded = expandVars(expandHome(value.value.trim()), env);
          basePath = isAbsolute(expanded) ? resolve(expanded) : resolve(yamlDir, expanded);
        } else {
          out.warnings.push(`${file} line ${lineOf(value ?? pair.key as YamlNode)}: section "${section}": base_path should be a folder, found ${describe(value)}; paths are taken from the file's folder`);
        }
      } else if (key === 'is_default') {
        isDefault = isScalar(value) ? truthy(value.value) : false;
      }
    }
    for (const pair of body.items) {
      if (!isPair(pair) || !isScalar(pair.key)) continue;
      const kind = String(pair.key.value);
      if (kind === 'base_path' || kind === 'is_default') continue;
      const value = pair.value as YamlNode | null;
      const line = lineOf(value ?? (pair.key as YamlNode));
      let entries: string[];
      if (isScalar(value) && typeof value.value === 'string') entries = value.value.split('\n');
      else if (isSeq(value) && value.items.every((item) => isScalar(item) && typeof item.value === 'string')) {
        entries = value.items.map((item) => String((item as { value: string }).value));
      } else {
        out.warnings.push(`${file} line ${line}: section "${section}", ${kind}: expected a folder or several (one a line), found ${describe(value)}; skipped`);
        continue;
      }
      for (const entry of entries) {
        const folder = entry.replace(/\s+#.*$/, '').trim();
        if (!folder) continue;
        const full = basePath ? resolve(basePath, folder) : resolve(yamlDir, folder);
        out.paths.push({ kind, path: full, isDefault, file, section, line });
      }
    }
  }
  return out;
}

interface CachedFile {
  stamp: string;
  parsed?: ParsedExtraModelPaths;
  error?: ExtraModelPathsError;
}
const cache = new Map<string, CachedFile>();

/**
 * Reads and parses one extra_model_paths.yaml (cached until the file changes). Throws ExtraModelPathsError when
 * it is missing, unreadable or broken.
 */
export function readExtraModelPathsFile(file: string): ParsedExtraModelPaths {
  file = resolve(file);
  let stamp: string;
  try {
    const stat = statSync(file);
    if (!stat.isFile()) throw new ExtraModelPathsError(file, `${file} is a folder, not an extra_model_paths.yaml file`);
    stamp = `${stat.mtimeMs}:${stat.size}:${stat.ino}`;
  } catch (error) {
    if (error instanceof ExtraModelPathsError) throw error;
    throw new ExtraModelPathsError(file, `${file} (an extra_model_paths.yaml) does not exist`);
  }
  const cached = cache.get(file);
  if (cached?.stamp === stamp) {
    if (cached.error) throw cached.error;
    return cached.parsed!;
  }
  const entry: CachedFile = { stamp };
  cache.set(file, entry);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    entry.error = new ExtraModelPathsError(file, `${file} cannot be read: ${(error as Error).message}`);
    throw entry.error;
  }
  try {
    entry.parsed = parseExtraModelPaths(text, file);
  } catch (error) {
    if (error instanceof ExtraModelPathsError) entry.error = error;
    throw error;
  }
  return entry.parsed;
}

/**
 * Checks that `file` exists and parses, for hosts to refuse a bad `--extra-model-paths-config` when they start.
 * Returns the problem as one sentence, or undefined when the file is usable.
 */
export function extraModelPathsProblem(file: string): string | undefined {
  try {
    readExtraModelPathsFile(file);
    return undefined;
  } catch (error) {
    if (error instanceof ExtraModelPathsError) return error.message;
    throw error;
  }
}

/** The files named in GATEGRAPH_EXTRA_MODEL_PATHS, absolute, in order. */
export function extraModelPathsFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  const value = env[EXTRA_MODEL_PATHS_ENV];
  if (!value) return [];
  return value
    .split(delimiter)
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => resolve(p));
}

/**
 * The extra_model_paths.yaml files in force, in the order they are read: `extra_model_paths.yaml` of each
 * workspace root that has one, then GATEGRAPH_EXTRA_MODEL_PATHS.
 */
export function extraModelPathsFiles(workspaceRoots: readonly string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const files = workspaceRoots.map((root) => join(root, EXTRA_MODEL_PATHS_FILE)).filter((file) => existsSync(file));
  return [...new Set([...files, ...extraModelPathsFromEnv(env)])];
}

/**
 * Every folder the given files add, in file order. A file that cannot be used is skipped and reported once
 * (so a broken file never breaks object_info or validation); so are its skipped parts.
 */
export function loadExtraModelPaths(files: readonly string[]): ExtraModelPath[] {
  const paths: ExtraModelPath[] = [];
  for (const file of files) {
    let parsed: ParsedExtraModelPaths;
    try {
      parsed = readExtraModelPathsFile(file);
    } catch (error) {
      if (!(error instanceof ExtraModelPathsError)) throw error;
      warnOnce(`${error.message}; its model folders are not searched`);
      continue;
    }
    for (const warning of parsed.warnings) warnOnce(warning);
    paths.push(...parsed.paths);
  }
  return paths;
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '').trim();
}

function describe(node: unknown): string {
  if (node === null || node === undefined) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    if (node.value === null) return 'nothing';
    return typeof node.value === 'string' ? `"${node.value}"` : `${typeof node.value} ${String(node.value)}`;
  }
  return 'something else';
}

/** Python truthiness of a YAML 1.1 scalar (is_default: true / yes / 1). */
function truthy(value: unknown): boolean {
  if (typeof value === 'string') return value !== '' && !/^(false|no|off)$/i.test(value);
  return Boolean(value);
}

/** `~` and `~/...` to the home folder (os.path.expanduser; `~user` is left as it is). */
function expandHome(path: string): string {
  if (path === '~') return homedir();
  if (path.startsWith('~/') || path.startsWith('~\\')) return join(homedir(), path.slice(2));
  return path;
}

/** `$NAME` and `${NAME}` from the environment; unknown ones stay as written (os.path.expandvars). */
function expandVars(path: string, env: NodeJS.ProcessEnv): string {
  return path.replace(/\$(\w+)|\$\{([^}]+)\}/g, (whole, bare: string | undefined, braced: string | undefined) => {
    const value = env[(bare ?? braced)!];
    return value === undefined ? whole : value;
  });
}
