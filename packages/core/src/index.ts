// Public API of @gategraph/core. Node authors need `defineNode` and the input builders; hosts (CLI, server)
// need the registry, workflow loading, validation and the executor.
export * from './node-definition.ts';
export * from './inputs.ts';
export * from './logger.ts';
export * from './errors.ts';
export * from './registry.ts';
export * from './events.ts';
export * from './graph.ts';
export * from './prompt-graph.ts';
export * from './graph-builder.ts';
export * from './workflow/api-format.ts';
export * from './packs.ts';
export * from './check-node-definition.ts';
export * from './web-extensions.ts';
export * from './object-info.ts';
export * from './validation.ts';
export * from './signature.ts';
export * from './cache.ts';
export * from './cache-flags.ts';
export * from './executor.ts';
export * from './workflow/schemas.ts';
export * from './workflow/ui-format.ts';
export * from './workflow/ui-to-api.ts';
export * from './workflow/load.ts';
export * from './workflow/number-literals.ts';
export * from './host.ts';
export * from './own-keys.ts';
