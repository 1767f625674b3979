/**
 * The checks of a loader input naming one model file (vae_name, lora_name, clip_name): the file's kind refused
 * when the prompt is queued (a LoRA where VAEs go, a pickle), a fingerprint that changes when the file does, and
 * the file found at run time or a NodeInputError naming the folders searched.
 */
import { NodeInputError, type FingerprintContext, type ValidateContext } from '@gategraph/core';
import { statSync } from 'node:fs';
import { resolveModelFile, type ModelKind } from './folders.ts';

/** Size and time of a file: a file replaced under the same name loads again. */
export function fileStamp(path: string): string {
  try {
    const st = statSync(path);
    return `${st.size}:${st.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

export interface ModelFileInput {
  validate(name: string | undefined, context: ValidateContext): true | string;
  fingerprint(name: string | undefined, context: FingerprintContext): string;
  /** The file `name` stands for in the host's folders; throws NodeInputError when there is none. */
  resolve(name: string, hostModels: string | undefined): string;
}

/** `input` names a file of `kind`; `problem` says why a file cannot be used (undefined when it can). */
export function modelFileInput(kind: ModelKind, input: string, problem: (file: string) => string | undefined): ModelFileInput {
  return {
    validate(name, context) {
      if (name === undefined) return true;
      const { file } = resolveModelFile(kind, name, context.paths?.models);
      if (!file) return true; // the combo check named it
      const why = problem(file);
      return why ? `${input} "${name}": ${why}` : true;
    },
    fingerprint(name, context) {
      const file = name === undefined ? undefined : resolveModelFile(kind, name, context.paths?.models).file;
      return file ? `${file}|${fileStamp(file)}` : 'missing';
    },
    resolve(name, hostModels) {
      const { file, searched } = resolveModelFile(kind, name, hostModels);
      if (!file) throw new NodeInputError(`${input} "${name}": no such file in ${searched.join(', ')}`, input);
      const why = problem(file);
      if (why) throw new NodeInputError(`${input} "${name}": ${why}`, input);
      return file;
    },
  };
}
