/**
 * UnetRunner: runs one of a model's UNet *variants* by key. The plain UNet is the variant 'full'; TGATE and
 * DeepCache add derived graphs (a capture form that also returns attention outputs, a reuse form that takes
 * them as inputs, a shallow DeepCache form...) under keys of their choosing. The sampling loop asks a
 * StepPlanner which variant to run at each step and hands the feeds here.
 */
import * as ort from 'onnxruntime-node';
import { fromOrtTensor, type FeedValue, type SessionLease } from './sessions.ts';
import type { Tensor } from './tensor.ts';
import type { ModelComponent, UnetIo, UnetModel } from './model-folder.ts';

export const FULL_VARIANT = 'full';

export interface UnetRunner {
  /** Names, dtypes and sizes of the standard UNet inputs (those of the 'full' variant). */
  readonly io: UnetIo;
  /** The keys run() accepts; always includes 'full'. */
  readonly variants: readonly string[];
  /**
   * Runs `variant` and returns the outputs named in `fetches` as float32 tensors.
   *
   * `feeds` holds the standard inputs (io.sample, io.timestep, io.encoderHiddenStates) plus any extra inputs
   * the variant declares (cached attention outputs...). A standard input the variant does not declare is left
   * out (a reuse graph whose cross-attention no longer reads the text has no encoder_hidden_states); any other
   * feed the variant does not declare, or a declared input without a feed, is an error naming both lists.
   */
  run(variant: string, feeds: Record<string, FeedValue>, fetches: readonly string[]): Promise<Record<string, Tensor>>;
}

type VariantSource = ModelComponent | SessionLease;

/** A UnetRunner over ONNX sessions: 'full' = the model's unet/model.onnx, others added with addVariant(). */
export class OnnxUnetRunner implements UnetRunner {
  readonly io: UnetIo;
  readonly #variants = new Map<string, SessionLease>();
  readonly #inputNames = new Map<string, Set<string>>();

  constructor(io: UnetIo, full: VariantSource) {
    this.io = io;
    this.addVariant(FULL_VARIANT, full);
  }

  static forModel(model: Pick<UnetModel, 'unet' | 'io'>): OnnxUnetRunner {
    return new OnnxUnetRunner(model.io.unet, model.unet);
  }

  get variants(): readonly string[] {
    return [...this.#variants.keys()];
  }

  /** The session lease behind a variant (its file, its settings), or undefined for an unknown key. */
  leaseOf(variant: string): SessionLease | undefined {
    return this.#variants.get(variant);
  }

  /** Registers a variant (a lease from the same SessionPool, typically on a derived ONNX file). */
  addVariant(key: string, source: VariantSource): this {
    if (this.#variants.has(key)) throw new Error(`UNet variant "${key}" is already registered`);
    this.#variants.set(key, 'lease' in source ? source.lease : source);
    return this;
  }

  async run(variant: string, feeds: Record<string, FeedValue>, fetches: readonly string[]): Promise<Record<string, Tensor>> {
    const lease = this.#variants.get(variant);
    if (!lease) throw new Error(`Unknown UNet variant "${variant}"; this runner has: ${this.variants.join(', ')}`);
    let declared = this.#inputNames.get(variant);
    if (!declared) {
      declared = new Set((await lease.session()).inputNames);
      this.#inputNames.set(variant, declared);
    }
    const standard = new Set([
      this.io.sample,
      this.io.timestep,
      this.io.encoderHiddenStates,
      ...(this.io.timestepCond ? [this.io.timestepCond.name] : []),
      ...(this.io.added ? [this.io.added.textEmbeds, this.io.added.timeIds] : []),
    ]);
    const used: Record<string, FeedValue> = {};
    const unknown: string[] = [];
    for (const [name, value] of Object.entries(feeds)) {
      if (declared.has(name)) used[name] = value;
      else if (!standard.has(name)) unknown.push(name);
    }
    const missing = [...declared].filter((n) => !(n in used));
    if (unknown.length || missing.length) {
      const parts = [];
      if (missing.length) parts.push(`missing input${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
      if (unknown.length) parts.push(`feed${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} not declared by the graph`);
      throw new Error(`UNet variant "${variant}" (${lease.path}): ${parts.join('; ')}. It declares: ${[...declared].join(', ')}`);
    }
    const out = await lease.run(used, fetches);
    const result: Record<string, Tensor> = {};
    for (const name of fetches) {
      const v = out[name];
      if (!v) throw new Error(`UNet variant "${variant}" (${lease.path}) returned no output "${name}"`);
      result[name] = fromOrtTensor(name, v);
    }
    return result;
  }
}

/** The timestep feed in the dtype and shape the UNet declares (int64 or float; scalar, [1] or [batch]). */
export function timestepTensor(io: Pick<UnetIo, 'timestepType' | 'timestepShape'>, t: number, batch: number): ort.Tensor {
  const n = io.timestepShape === 'batch' ? batch : 1;
  const dims = io.timestepShape === 'scalar' ? [] : [n];
  switch (io.timestepType) {
    case 'int64':
      return new ort.Tensor('int64', new BigInt64Array(n).fill(BigInt(Math.round(t))), dims);
    case 'int32':
      return new ort.Tensor('int32', new Int32Array(n).fill(Math.round(t)), dims);
    case 'float64':
      return new ort.Tensor('float64', new Float64Array(n).fill(t), dims);
    case 'float32':
      return new ort.Tensor('float32', new Float32Array(n).fill(t), dims);
  }
}
