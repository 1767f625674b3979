/** Thrown (or used as the abort reason) when a run is interrupted by the user. */
export class InterruptedError extends Error {
  override name = 'InterruptedError';
  constructor(message = 'Execution was interrupted') {
    super(message);
  }
}

/**
 * An error a node raises on purpose, with a message meant for the user (bad model file, bad size...).
 * Hosts show `message` without a stack trace; other errors are shown with their stack for debugging.
 */
export class NodeInputError extends Error {
  override name = 'NodeInputError';
  constructor(
    message: string,
    /** The input the problem is about, when there is one. */
    readonly inputName?: string,
  ) {
    super(message);
  }
}
