// Where a built graph's weights come from: checkpoint tensors by key, each possibly a row slice (OpenCLIP's fused
// in_proj_weight holds q, k, v stacked), transposed (nn.Linear's [out, in] for MatMul's [in, out]) or given new
// dims of the same size (GroupNorm's [C] as [C, 1, 1]). A WeightSource records every key a builder takes, so the
// keys nobody took can be reported: no checkpoint tensor is dropped silently. A missing key is a CheckpointError
// naming it. Patches (LoRAs, lora.ts) change a tensor's float32 values when they are read for writing, before any
// transform.
import { CheckpointError, FLOAT_DTYPES, toFloat32, type CheckpointReader, type CheckpointTensorInfo } from './checkpoint.ts';

export interface WeightTransform {
  /** Rows [start, end) of dim 0, taken before any other transform. */
  rows?: readonly [number, number];
  /** Swap the two dims of a 2-D tensor, or of a 1x1 convolution's [out, in, 1, 1] (giving [in, out]). */
  transpose?: boolean;
  /** Final dims (same element count). */
  reshape?: readonly number[];
}

/** One initializer's provenance: the checkpoint tensor, what is done to it, and the resulting dims. */
export interface WeightRef {
  key: string;
  info: CheckpointTensorInfo;
  transform: WeightTransform;
  dims: number[];
}

/**
 * A change to one tensor's values (a LoRA's update, lora.ts), applied in place to a float32 copy of the whole tensor
 * as stored (before rows / transpose / reshape).
 */
export interface WeightPatch {
  /** Rows [start, end) of dim 0 the patch changes (all rows when absent): skipped when a builder takes other rows. */
  readonly rows?: readonly [number, number];
  apply(values: Float32Array, shape: readonly number[], key: string): void;
}

/** Read access to a checkpoint's tensors with every taken key recorded. */
export class WeightSource {
  readonly reader: CheckpointReader;
  readonly #byName: Map<string, CheckpointTensorInfo>;
  readonly #taken = new Set<string>();
  #patches: ReadonlyMap<string, readonly WeightPatch[]> | undefined;

  constructor(reader: CheckpointReader, options: { patches?: ReadonlyMap<string, readonly WeightPatch[]> } = {}) {
    this.reader = reader;
    this.#byName = new Map(reader.tensors().map((t) => [t.name, t]));
    this.#patches = options.patches;
  }

  /** Patches applied, in order, to a key's values when they are read (`values`); replaces any set before. */
  setPatches(patches: ReadonlyMap<string, readonly WeightPatch[]> | undefined): void {
    this.#patches = patches;
  }

  get patches(): ReadonlyMap<string, readonly WeightPatch[]> | undefined {
    return this.#patches;
  }

  get path(): string {
    return this.reader.path;
  }

  keys(): string[] {
    return [...this.#byName.keys()];
  }

  has(key: string): boolean {
    return this.#byName.has(key);
  }

  /** The tensor's header entry; a CheckpointError naming the key when it is absent. */
  info(key: string, why?: string): CheckpointTensorInfo {
    const info = this.#byName.get(key);
    if (!info) {
      throw new CheckpointError(`the checkpoint ${this.reader.path} has no tensor "${key}"${why ? ` (${why})` : ''}: it is not a complete checkpoint of the architecture being built, or not that architecture`, 'missing_key', key);
    }
    return info;
  }

  shape(key: string): number[] {
    return [...this.info(key).shape];
  }

  /** Takes a float tensor as a weight (recording the key); `expect` checks its shape first. */
  take(key: string, transform: WeightTransform = {}, expect?: readonly number[]): WeightRef {
    const info = this.info(key);
    if (!FLOAT_DTYPES.includes(info.dtype)) {
      throw new CheckpointError(`tensor "${key}" is ${info.dtype}; a weight must be one of ${FLOAT_DTYPES.join(', ')}`, 'bad_tensor', key);
    }
    if (expect && (expect.length !== info.shape.length || expect.some((d, i) => d !== info.shape[i]))) {
      throw new CheckpointError(`tensor "${key}" is [${info.shape.join(', ')}]; this architecture needs [${expect.join(', ')}] there`, 'bad_tensor', key);
    }
    let dims = [...info.shape];
    if (transform.rows) {
      const [start, end] = transform.rows;
      if (!(start >= 0 && end > start && end <= dims[0]!)) throw new CheckpointError(`rows [${start}, ${end}) of "${key}" [${dims.join(', ')}] do not exist`, 'bad_tensor', key);
      dims[0] = end - start;
    }
    if (transform.transpose) {
      // A 1x1 convolution is a matrix with two unit dims (LDM's VAE attention stores its q/k/v/proj_out so).
      const matrix = dims.length === 2 || (dims.length === 4 && dims[2] === 1 && dims[3] === 1);
      if (!matrix) throw new CheckpointError(`"${key}" is [${dims.join(', ')}]: only a 2-D tensor or a 1x1 convolution weight is transposed`, 'bad_tensor', key);
      dims = [dims[1]!, dims[0]!];
    }
    if (transform.reshape) {
      const n = (d: readonly number[]) => d.reduce((a, b) => a * b, 1);
      if (n(transform.reshape) !== n(dims)) throw new CheckpointError(`"${key}" [${dims.join(', ')}] cannot be viewed as [${transform.reshape.join(', ')}]`, 'bad_tensor', key);
      dims = [...transform.reshape];
    }
    this.#taken.add(key);
    return { key, info, transform, dims };
  }

  /** Marks keys as used without making weights of them (a builder that reads a value to configure itself). */
  markUsed(...keys: string[]): void {
    for (const k of keys) {
      this.info(k);
      this.#taken.add(k);
    }
  }

  taken(): ReadonlySet<string> {
    return this.#taken;
  }

  /** The float32 values of a weight, patches and transform applied: one tensor in memory at a time. */
  values(ref: WeightRef): Float32Array {
    const bytes = this.reader.readBytes(ref.key);
    let data = toFloat32(bytes, ref.info.dtype, ref.key);
    let dims = [...ref.info.shape];
    const rows = ref.transform.rows;
    const patches = this.#patches?.get(ref.key)?.filter((p) => !rows || !p.rows || (p.rows[0] < rows[1] && rows[0] < p.rows[1]));
    if (patches?.length) {
      // F32 comes back as a view of the reader's bytes: patch a copy, never a buffer the reader may hand out again.
      if (ref.info.dtype === 'F32') data = data.slice();
      for (const p of patches) p.apply(data, ref.info.shape, ref.key);
    }
    if (ref.transform.rows) {
      const [start, end] = ref.transform.rows;
      const row = dims.slice(1).reduce((a, b) => a * b, 1);
      data = data.subarray(start * row, end * row);
      dims[0] = end - start;
    }
    if (ref.transform.transpose) {
      const [r, c] = dims as [number, number];
      const out = new Float32Array(r * c);
      // Blocked, so both sides stay in cache for large matrices.
      const B = 64;
      for (let i0 = 0; i0 < r; i0 += B) {
        for (let j0 = 0; j0 < c; j0 += B) {
          const iEnd = Math.min(i0 + B, r);
          const jEnd = Math.min(j0 + B, c);
          for (let i = i0; i < iEnd; i++) for (let j = j0; j < jEnd; j++) out[j * r + i] = data[i * c + j]!;
        }
      }
      data = out;
      dims = [c, r];
    }
    return data;
  }
}

/** A view of a WeightSource under a key prefix ("model.diffusion_model."): keys are given without it. */
export class WeightView {
  constructor(
    readonly source: WeightSource,
    readonly prefix: string,
  ) {}

  key(short: string): string {
    return this.prefix + short;
  }

  has(short: string): boolean {
    return this.source.has(this.prefix + short);
  }

  shape(short: string): number[] {
    return this.source.shape(this.prefix + short);
  }

  take(short: string, transform?: WeightTransform, expect?: readonly number[]): WeightRef {
    return this.source.take(this.prefix + short, transform, expect);
  }

  /** Short keys (prefix removed) of every tensor under the prefix. */
  keys(): string[] {
    return this.source
      .keys()
      .filter((k) => k.startsWith(this.prefix))
      .map((k) => k.slice(this.prefix.length));
  }

  under(prefix: string): WeightView {
    return new WeightView(this.source, this.prefix + prefix);
  }
}
