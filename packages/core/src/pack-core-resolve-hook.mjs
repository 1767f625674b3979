// A module resolution hook that `loadPacks` registers (node:module `register`) before importing any pack.
// Every import of `@gategraph/core` (or a subpath) is resolved as if written inside this package, which Node
// allows by package self-reference. So a pack in custom_nodes/ imports the host's own core even when no
// node_modules above it holds one, and a pack that ships its own copy still shares the host's registry
// types, `NodeInputError` class and socket types instead of a second, incompatible instance.
//
// The host's other `@gategraph/*` packages (`@gategraph/diffusion`: tensors, the sampling-extension service)
// are resolved the same way, each from inside itself: `initialize` receives their names and the URLs of their
// package.json files (loadPacks finds them among the host's own packs and their dependencies, which core
// cannot depend on). Names not in that list resolve as usual.
const insideCore = new URL('./index.ts', import.meta.url).href;

/** Package name -> URL of its package.json, for the host's packages; the first registration of a name wins. */
const shared = new Map();

export function initialize(data) {
  for (const [name, url] of Object.entries(data?.packages ?? {})) if (!shared.has(name)) shared.set(name, url);
}

/** `@gategraph/name` of a specifier (`@gategraph/name` or `@gategraph/name/sub/path`). */
function packageName(specifier) {
  const [scope, name] = specifier.split('/', 2);
  return `${scope}/${name}`;
}

export async function resolve(specifier, context, nextResolve) {
  if (specifier === '@gategraph/core' || specifier.startsWith('@gategraph/core/')) {
    return nextResolve(specifier, { ...context, parentURL: insideCore });
  }
  const inside = specifier.startsWith('@gategraph/') ? shared.get(packageName(specifier)) : undefined;
  return nextResolve(specifier, inside ? { ...context, parentURL: inside } : context);
}
