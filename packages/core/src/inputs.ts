/**
 * Builders for input specs. Each returns a spec whose literal options (`optional: true`, `lazy: true`, combo
 * values) are kept in its type, so `execute` gets precise input types.
 *
 * ```ts
 * inputs: {
 *   model: socket('MODEL'),
 *   seed: int({ default: 0, min: 0, max: 2 ** 53 - 1, controlAfterGenerate: true }),
 *   sampler_name: combo(['euler', 'ddim'], { default: 'euler' }),
 * }
 * ```
 */
import type {
  BooleanInput,
  ComboInput,
  ComboOptions,
  FloatInput,
  IntInput,
  SocketInput,
  SocketTypes,
  StringInput,
} from './node-definition.ts';

type Options<T> = Omit<T, 'kind'>;

export function int<const O extends Options<IntInput>>(options: O = {} as O): IntInput & O {
  return { kind: 'INT', ...options };
}

export function float<const O extends Options<FloatInput>>(options: O = {} as O): FloatInput & O {
  return { kind: 'FLOAT', ...options };
}

export function string<const O extends Options<StringInput>>(options: O = {} as O): StringInput & O {
  return { kind: 'STRING', ...options };
}

export function boolean<const O extends Options<BooleanInput>>(options: O = {} as O): BooleanInput & O {
  return { kind: 'BOOLEAN', ...options };
}

export function combo<const T extends string, const O extends Omit<Options<ComboInput<T>>, 'options'>>(
  options: ComboOptions<T>,
  rest: O = {} as O,
): ComboInput<T> & O {
  return { kind: 'COMBO', options, ...rest };
}

/** A link-only input. The value type comes from `SocketTypes` for known names, or from the type argument. */
type SocketOptions = Omit<SocketInput, 'kind' | 'type' | '__value'>;

export function socket<const K extends keyof SocketTypes, const O extends SocketOptions = {}>(
  type: K,
  options?: O,
): SocketInput<SocketTypes[K]> & O;
export function socket<T, const O extends SocketOptions = {}>(type: string, options?: O): SocketInput<T> & O;
export function socket(type: string, options: SocketOptions = {}): SocketInput<unknown> {
  return { kind: 'SOCKET', ...options, type };
}
