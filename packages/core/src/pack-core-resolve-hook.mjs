// A module resolution hook that `loadPacks` registers (node:module `register`) before importing any pack.
// Every import of `@gategraph/core` (or a subpath) is resolved as if written inside this package, which Node
// allows by package self-reference. So a pack in custom_nodes/ imports the host's own core even when no
// node_modules above it holds one, and a pack that ships its own copy still shares the host's registry
// types, `NodeInputError` class and socket types instead of a second, incompatible instance.
const insideCore = new URL('./index.ts', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  if (specifier === '@gategraph/core' || specifier.startsWith('@gategraph/core/')) {
    return nextResolve(specifier, { ...context, parentURL: insideCore });
  }
  return nextResolve(specifier, context);
}
