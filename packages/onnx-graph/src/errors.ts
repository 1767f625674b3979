// One error class for everything this package refuses to do, so callers (the engine, tools/bench) can tell a
// graph problem from a bug. Messages say what is wrong, where (node, tensor, file) and what to do.
export class OnnxGraphError extends Error {
  override readonly name = 'OnnxGraphError';
  constructor(
    message: string,
    readonly code: OnnxGraphErrorCode,
  ) {
    super(message);
  }
}

export type OnnxGraphErrorCode =
  | 'decode_failed'
  | 'too_large'
  | 'external_data'
  | 'no_attention_scopes'
  | 'fused_attention'
  | 'unknown_module'
  | 'unknown_tensor'
  | 'shape_inference'
  | 'bad_spec'
  /** Two models that were to be merged are not one architecture (or not exported the same way). */
  | 'incompatible_models';
