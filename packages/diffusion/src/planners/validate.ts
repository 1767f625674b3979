import { PlanError } from './types.ts';

/** Throws a PlanError unless `value` is a whole number >= `min`. `what` explains the setting to a person. */
export function requireWholeNumber(setting: string, value: unknown, min: number, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new PlanError(`${setting} must be a whole number (got ${describe(value)}): ${what}.`, setting);
  }
  if (value < min) {
    throw new PlanError(`${setting} must be at least ${min} (got ${value}): ${what}.`, setting);
  }
  return value;
}

export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) {
    return String(value);
  }
  return typeof value;
}
