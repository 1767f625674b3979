/**
 * A chain of wrappers around one function, the shape of ComfyUI's WrapperExecutor: each wrapper receives the
 * next function of the chain and the call's arguments, and decides whether and how to call it (change the
 * arguments, change or observe the result, call it twice, or not at all).
 *
 * The first wrapper of the list is the outermost: it is called first and its `next` is the second wrapper,
 * ..., and the last wrapper's `next` is the original function. An empty list composes to the original function
 * itself, so code that wraps nothing runs exactly as before (no extra call, no extra promise).
 */

/** A wrapper of `(args: A) => R`. */
export type Wrapper<A, R> = (next: (args: A) => R, args: A) => R;

/** `original` inside `wrappers`, the first outermost. */
export function composeWrappers<A, R>(original: (args: A) => R, wrappers: readonly Wrapper<A, R>[]): (args: A) => R {
  let fn = original;
  // Built from the inside out, so the first wrapper ends up outermost.
  for (let i = wrappers.length - 1; i >= 0; i--) {
    const wrapper = wrappers[i]!;
    const next = fn;
    fn = (args: A) => wrapper(next, args);
  }
  return fn;
}
