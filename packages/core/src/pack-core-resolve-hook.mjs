// A module resolution hook that `loadPacks` registers (node:module `register`) before importing any pack.
// Every import of `@gategraph/core` (or a subpath) is resolved as if written inside this package, which Node
// allows by package self-reference. So a pack in custom_nodes/ imports the host's own core even when no
// node_modules above it holds one, and a pack that ships its own copy still shares the host's registry
// types, `NodeInputError` class and socket types instead of a second, incompatible instance.
//
// The host's other `@gategraph/*` packages (`@gategraph/diffusion`: tensors, the sampling-extension service)
// are resolved the same way, as if imported from inside the host's own packs: `initialize` receives the
// folders of the workspace packs the host loads (core cannot depend on them), and the first of them that
// resolves the name gives the host's copy. A name none of them resolves falls back to the pack's own lookup.
const insideCore = new URL('./index.ts', import.meta.url).href;

/** URLs of files inside the host's packs, in the order the host loads them; grows with each registration. */
const anchors = [];

export function initialize(data) {
  for (const anchor of data?.anchors ?? []) if (!anchors.includes(anchor)) anchors.push(anchor);
}

export async function resolve(specifier, context, nextResolve) {
  if (specifier === '@gategraph/core' || specifier.startsWith('@gategraph/core/')) {
    return nextResolve(specifier, { ...context, parentURL: insideCore });
  }
  if (specifier.startsWith('@gategraph/')) {
    for (const parentURL of anchors) {
      try {
        return await nextResolve(specifier, { ...context, parentURL });
      } catch {
        // Not a dependency of this pack of the host's: try the next one.
      }
    }
  }
  return nextResolve(specifier, context);
}
