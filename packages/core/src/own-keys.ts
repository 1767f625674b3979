/**
 * Objects keyed by ids that come from users (node ids, prompt ids): an id such as "__proto__" must become an
 * ordinary key. `obj[id] = value` with that id would set the object's prototype instead, and a read of
 * `obj["constructor"]` finds Object's constructor; so ids are written with setOwn and read with ownValue.
 */
export function setOwn<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** `target[key]` when it is the object's own property, else undefined (never an inherited one). */
export function ownValue<T>(target: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(target, key) ? target[key] : undefined;
}
