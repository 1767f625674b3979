/**
 * The one rule for which socket types may be linked, used by validation (the server's verdict) and by the
 * editor (which links it lets the user draw), so the editor never draws a link the server then refuses.
 * ComfyUI's `validate_node_input`: equal names (case-sensitive), `*` on either side, or comma-separated unions
 * (spaces around the commas ignored) that share a type.
 */
export function isTypeCompatible(received: string, expected: string): boolean {
  if (received === expected || received === '*' || expected === '*') return true;
  const receivedTypes = new Set(received.split(',').map((t) => t.trim()));
  const expectedTypes = expected.split(',').map((t) => t.trim());
  if (receivedTypes.has('*') || expectedTypes.includes('*')) return true;
  return expectedTypes.some((t) => receivedTypes.has(t));
}
