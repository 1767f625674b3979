/**
 * Refusing a tensor a node is asked to make before allocating it: an IMAGE of 16384 x 16384 x 4096 or a latent
 * upscaled eight times over would take more memory than the machine has, and the process would die with no
 * word to the user. The limit is the activation budget the samplers use (memory.ts).
 */
import { NodeInputError } from '@gategraph/core';
import { activationLimit, formatBytes } from './memory.ts';

const FLOAT32 = 4;

export interface FitOptions {
  /** How many tensors of this size the node holds at once (a result and a work buffer: 2). Default 1. */
  copies?: number;
  /** What to lower, for the message; default the input's name. */
  advice?: string;
}

/**
 * Throws a NodeInputError naming `input` when `shape` float32 values (times `copies`) do not fit the limit.
 * `what` says what the tensor is ("the upscaled latent").
 */
export function checkTensorFits(shape: readonly number[], input: string, what: string, options: FitOptions = {}): void {
  const copies = options.copies ?? 1;
  const elements = shape.reduce((n, d) => n * d, 1);
  const bytes = elements * FLOAT32 * copies;
  const limit = activationLimit();
  if (bytes <= limit.bytes) return;
  throw new NodeInputError(
    `${what} would be [${shape.join(', ')}]: ${formatBytes(bytes)} of memory, above the limit of ${formatBytes(limit.bytes)} (${limit.source}); lower ${options.advice ?? input}`,
    input,
  );
}
