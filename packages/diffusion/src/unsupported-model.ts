// The error every refusal of a model (folder or file) is: its own module, so that model-family.ts, which tells
// folders apart, and checkpoint-family.ts / pickle-files.ts, which tell files apart, can all use it without an
// import cycle.
import { basename } from 'node:path';

/** Why a model cannot be run here: one sentence for people, and a short code for tests and tools. */
export class UnsupportedModelError extends Error {
  override name = 'UnsupportedModelError';
  constructor(
    readonly path: string,
    readonly kind: UnsupportedKind,
    readonly reason: string,
  ) {
    super(`${basename(path)}: ${reason}`);
  }
}

export type UnsupportedKind = 'sdxl' | 'sd3' | 'pixart' | 'flux' | 'transformer' | 'pipeline' | 'gpu-optimized' | 'pickle' | 'single-file';

