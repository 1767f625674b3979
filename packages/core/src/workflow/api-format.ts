/**
 * ComfyUI's API ("prompt") format: what is executed.
 * `{ "<node id>": { class_type, inputs: { name: constant | [sourceId, outputIndex] }, _meta?: { title } } }`
 */

/** A link: `[source node id, output slot index]`. */
export type ApiLink = [string, number];

export interface ApiNode {
  class_type: string;
  inputs: Record<string, unknown>;
  _meta?: { title?: string; [key: string]: unknown };
}

export type ApiPrompt = Record<string, ApiNode>;

/** True when an API input value is a link rather than a constant. */
export function isLink(value: unknown): value is ApiLink {
  return (
    Array.isArray(value) &&
    value.length === 2 &&
    (typeof value[0] === 'string' || typeof value[0] === 'number') &&
    typeof value[1] === 'number' &&
    Number.isInteger(value[1])
  );
}
