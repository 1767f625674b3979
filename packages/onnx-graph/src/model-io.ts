// Reading and writing .onnx files whose weights may live in external data files.
// The graph protobuf itself is small (SD-1.5's UNet graph is ~1 MB; a protobuf cannot exceed 2 GiB anyway), so
// it is read whole; external weights are never read in bulk: derived models keep pointing at the same data file,
// and only the few small tensors that shape inference needs (Reshape shapes, Slice bounds) are read, each by
// offset and length.
import { closeSync, linkSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, writeSync, existsSync, unlinkSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { OnnxGraphError } from './errors.ts';
import {
  cloneModel,
  create,
  decodeModel,
  encodeModel,
  PROTOBUF_LIMIT,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  tensorByteSize,
  type ModelProto,
  type TensorProto,
} from './proto.ts';

export interface ModelFile {
  proto: ModelProto;
  /** Absolute path of the .onnx file. */
  path: string;
  /** Folder that external data locations are relative to (the model's folder). */
  baseDir: string;
}

export function loadModel(path: string): ModelFile {
  const abs = resolve(path);
  const size = statSync(abs).size;
  if (size > PROTOBUF_LIMIT) {
    throw new OnnxGraphError(
      `${abs} is ${size} bytes: an ONNX protobuf cannot exceed 2 GiB. Re-export it with external data (torch.onnx.export does this for models over 2 GB; onnx.save_model(..., save_as_external_data=True)).`,
      'too_large',
    );
  }
  return { proto: decodeModel(readFileSync(abs), abs), path: abs, baseDir: dirname(abs) };
}

export interface ExternalRef {
  location: string;
  offset: number;
  length?: number;
}

export function isExternal(t: TensorProto): boolean {
  return t.dataLocation === TensorProto_DataLocation.EXTERNAL;
}

export function externalRef(t: TensorProto): ExternalRef {
  const get = (k: string) => t.externalData.find((e) => e.key === k)?.value;
  const location = get('location');
  if (!location) throw new OnnxGraphError(`initializer ${t.name} is marked EXTERNAL but has no location`, 'external_data');
  const length = get('length');
  return { location, offset: Number(get('offset') ?? 0), ...(length !== undefined ? { length: Number(length) } : {}) };
}

function setExternalRef(t: TensorProto, ref: ExternalRef): void {
  const rest = t.externalData.filter((e) => !['location', 'offset', 'length'].includes(e.key));
  t.externalData = [
    create(StringStringEntryProtoSchema, { key: 'location', value: ref.location }),
    create(StringStringEntryProtoSchema, { key: 'offset', value: String(ref.offset) }),
    ...(ref.length !== undefined ? [create(StringStringEntryProtoSchema, { key: 'length', value: String(ref.length) })] : []),
    ...rest,
  ];
  t.dataLocation = TensorProto_DataLocation.EXTERNAL;
}

/** Absolute paths of the external data files a model references. */
export function externalDataFiles(proto: ModelProto, baseDir: string): string[] {
  const files = new Set<string>();
  for (const t of proto.graph?.initializer ?? []) if (isExternal(t)) files.add(resolve(baseDir, externalRef(t).location));
  return [...files].sort();
}

/**
 * The bytes of one initializer (embedded raw_data, typed fields, or external data read by offset). For shape
 * inference on small tensors; never call it on a large weight you do not need.
 */
export function readTensorBytes(t: TensorProto, baseDir: string): Uint8Array {
  if (!isExternal(t)) {
    if (t.rawData.byteLength > 0) return t.rawData;
    return typedFieldBytes(t);
  }
  const ref = externalRef(t);
  const file = resolve(baseDir, ref.location);
  const length = ref.length ?? tensorByteSize(t);
  const out = Buffer.alloc(length);
  const fd = openSync(file, 'r');
  try {
    let done = 0;
    while (done < length) {
      const n = readSync(fd, out, done, length - done, ref.offset + done);
      if (n === 0) throw new OnnxGraphError(`external data of ${t.name} runs past the end of ${file}`, 'external_data');
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

function typedFieldBytes(t: TensorProto): Uint8Array {
  if (t.floatData.length) return new Uint8Array(Float32Array.from(t.floatData).buffer);
  if (t.int64Data.length) return new Uint8Array(BigInt64Array.from(t.int64Data).buffer);
  if (t.int32Data.length) {
    // int32_data also carries bool/int8/uint8/int16/uint16/float16 values, one per entry.
    const bytes = { 9: 1, 2: 1, 3: 1, 4: 2, 5: 2, 10: 2, 16: 2 }[t.dataType as 9] ?? 4;
    if (bytes === 1) return Uint8Array.from(t.int32Data);
    if (bytes === 2) return new Uint8Array(Uint16Array.from(t.int32Data).buffer);
    return new Uint8Array(Int32Array.from(t.int32Data).buffer);
  }
  if (t.doubleData.length) return new Uint8Array(Float64Array.from(t.doubleData).buffer);
  if (t.uint64Data.length) return new Uint8Array(BigUint64Array.from(t.uint64Data).buffer);
  return new Uint8Array(0);
}

export type ExternalDataMode =
  /**
   * 'relative' when the data file is inside the new model's folder, else 'link', else (another filesystem)
   * 'copy'. The default.
   */
  | 'auto'
  /**
   * Point at the original data file by a relative path from the new model's folder (no disk cost). ORT 1.30
   * refuses locations that leave the model's folder ("External data path escapes model directory"), so this
   * only works for a model written in (or above) the data file's folder.
   */
  | 'relative'
  /** Hard-link the data file into the new model's folder (no disk cost; same filesystem only). */
  | 'link'
  /** Copy only the tensors the new model still uses into `<model>.onnx_data` next to it. */
  | 'copy';

export interface SaveOptions {
  /** Folder the model's current external locations are relative to (ModelFile.baseDir). Required if any. */
  baseDir?: string;
  externalData?: ExternalDataMode;
  /**
   * Move embedded initializers of at least `threshold` bytes (default 1024) into this data file, named
   * relative to the output folder. Needed for models whose protobuf would pass 2 GiB.
   */
  externalize?: { location: string; threshold?: number };
}

export interface SaveReport {
  path: string;
  bytes: number;
  dataFiles: string[];
  /** Bytes written to data files by this save (0 for 'relative' and 'link'). */
  dataBytesWritten: number;
}

/** Writes a model atomically (temp file + rename), rewriting external data references for its new folder. */
export function saveModel(proto: ModelProto, outPath: string, options: SaveOptions = {}): SaveReport {
  const out = resolve(outPath);
  const outDir = dirname(out);
  mkdirSync(outDir, { recursive: true });
  const model = cloneModel(proto);
  const inits = model.graph?.initializer ?? [];
  let mode = options.externalData ?? 'auto';
  const dataFiles = new Set<string>();
  let dataBytesWritten = 0;

  const external = inits.filter(isExternal);
  if (external.length > 0 && !options.baseDir) {
    throw new OnnxGraphError('saveModel: this model has external data; pass baseDir (the folder its data file locations are relative to)', 'external_data');
  }
  if (mode === 'auto' && external.length > 0) mode = chooseAutoMode(external, options.baseDir!, outDir);
  if (mode === 'copy' && external.length > 0) {
    const location = `${basename(out)}_data`;
    dataBytesWritten += writeDataFile(join(outDir, location), external, (t) => readTensorBytes(t, options.baseDir!), location);
    dataFiles.add(join(outDir, location));
  } else {
    for (const t of external) {
      const ref = externalRef(t);
      const source = resolve(options.baseDir!, ref.location);
      let target: string;
      if (mode === 'link') {
        target = linkInto(source, outDir);
      } else {
        target = source;
      }
      const rel = relative(outDir, target).split(sep).join('/');
      setExternalRef(t, { ...ref, location: rel });
      dataFiles.add(target);
    }
  }
  if (options.externalize) {
    const threshold = options.externalize.threshold ?? 1024;
    const big = inits.filter((t) => !isExternal(t) && t.rawData.byteLength >= threshold);
    if (big.length > 0) {
      const location = options.externalize.location;
      if (isAbsolute(location) || location.includes('..')) {
        throw new OnnxGraphError(`externalize.location must be a file name inside the model folder, got ${location}`, 'external_data');
      }
      dataBytesWritten += writeDataFile(join(outDir, location), big, (t) => t.rawData, location);
      dataFiles.add(join(outDir, location));
    }
  }
  const bytes = encodeModel(model, out);
  atomicWrite(out, bytes);
  return { path: out, bytes: bytes.byteLength, dataFiles: [...dataFiles], dataBytesWritten };
}

function chooseAutoMode(external: TensorProto[], baseDir: string, outDir: string): ExternalDataMode {
  const sources = new Set(external.map((t) => resolve(baseDir, externalRef(t).location)));
  if ([...sources].every((f) => !relative(outDir, f).startsWith('..'))) return 'relative';
  // A hard link costs no disk space; it fails across filesystems (EXDEV) or where links are not allowed.
  try {
    for (const f of sources) linkInto(f, outDir);
    return 'link';
  } catch {
    return 'copy';
  }
}

/** Hard-links `source` into `dir` under its own name (idempotent) and returns the link's path. */
function linkInto(source: string, dir: string): string {
  const target = join(dir, basename(source));
  if (target === source) return target;
  if (existsSync(target) && statSync(target).ino !== statSync(source).ino) {
    // A link to an older version of the data file (the model was re-exported): derived models that used it are
    // keyed by the old content and are stale anyway, so re-point the name at the current file.
    unlinkSync(target);
  }
  if (!existsSync(target)) linkSync(source, target);
  return target;
}

/** Streams tensors into one data file (page-aligned, so ORT can memory-map them) and points them at it. */
function writeDataFile(file: string, tensors: TensorProto[], bytesOf: (t: TensorProto) => Uint8Array, location: string): number {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  let pos = 0;
  try {
    for (const t of tensors) {
      const pad = (4096 - (pos % 4096)) % 4096;
      if (pad) pos += writeSync(fd, new Uint8Array(pad), 0, pad, pos);
      const data = bytesOf(t);
      const offset = pos;
      pos += writeSync(fd, data, 0, data.byteLength, pos);
      t.rawData = new Uint8Array(0);
      setExternalRef(t, { location, offset, length: data.byteLength });
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  return pos;
}

export function atomicWrite(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const fd = openSync(tmp, 'w');
  try {
    let done = 0;
    while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done);
  } catch (err) {
    closeSync(fd);
    if (existsSync(tmp)) unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
}
