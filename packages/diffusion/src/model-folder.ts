/**
 * Opening a diffusers / optimum ONNX Stable Diffusion folder:
 *
 *   model_index.json
 *   scheduler/scheduler_config.json
 *   tokenizer/tokenizer.json, or CLIP's slow vocab.json + merges.txt [+ added_tokens.json] as published SD
 *     folders ship them (+ tokenizer_config.json, special_tokens_map.json)
 *   text_encoder/model.onnx   unet/model.onnx   vae_decoder/model.onnx   [vae_encoder/model.onnx]
 *   each optionally with external weights next to it (model.onnx_data, weights.pb) and a config.json
 *
 * `openModelFolder` opens every component's session once (through a SessionPool, so it is shared and
 * reference counted) to read what the ONNX graphs declare: input names and dtypes (timestep int64 or float,
 * input_ids int32 or int64), latent channels, fixed latent sizes, text sequence length and hidden size. It checks
 * that the parts fit together and fails with one sentence that names the folder and what is wrong. After
 * that the sessions may be closed (pool.freeAll) and reopen on their next use; the metadata stays.
 */
import { EXTERNAL_WEIGHT_FILES } from './weight-files.ts';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { SessionOpenError, getDefaultSessionPool, settingsForModel, type FeedValue, type SessionLease, type SessionPool, type SessionSettings } from './sessions.ts';
import { ClipTokenizer } from './tokenizer.ts';
import { missingTokenizerFiles } from './tokenizer-files.ts';
import { cpuFloat32ModelPath, cpuFloat32Needs, fusedAttentionModelPath, readDeclaredIo, type DeclaredIo } from '@gategraph/onnx-graph';
import { CHECKPOINT_FILE_EXTENSIONS, checkSupportedModel, UnsupportedModelError } from './model-family.ts';

export type ComponentName = 'text_encoder' | 'text_encoder_2' | 'unet' | 'vae_decoder' | 'vae_encoder';
const REQUIRED: readonly ComponentName[] = ['text_encoder', 'unet', 'vae_decoder'];

/** A dimension as ONNX declares it: a number when fixed, a name ("batch") when free. */
export type Dim = number | string;

export interface TensorInfo {
  name: string;
  /** ORT's dtype name: 'float32', 'int64', 'int32', 'float16', ... */
  type: string;
  /** Declared shape; [] is a scalar (or, rarely, an undeclared shape). */
  shape: Dim[];
}

/** Thrown for anything wrong with a model folder; the message names the folder and the problem. */
export class ModelFolderError extends Error {
  override name = 'ModelFolderError';
  constructor(readonly folder: string, readonly problem: string, readonly component?: ComponentName) {
    super(`Model folder ${folder}: ${problem}`);
  }
}

/**
 * What telling a component's io needs: its declared tensors and config.json. A ModelComponent is one (read
 * through its session); so is a file read without a session (declaredUnetAndVae).
 */
export interface ComponentDeclaration {
  readonly name: ComponentName;
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  readonly config: Readonly<Record<string, unknown>>;
}

/** One ONNX component: its session lease, declared inputs/outputs and config.json. */
export class ModelComponent implements ComponentDeclaration {
  constructor(
    readonly name: ComponentName,
    /** Absolute path of model.onnx. */
    readonly path: string,
    readonly lease: SessionLease,
    readonly inputs: readonly TensorInfo[],
    readonly outputs: readonly TensorInfo[],
    /** The component's config.json, {} when absent. */
    readonly config: Readonly<Record<string, unknown>>,
    /** File name of external weights next to model.onnx, when there are any. */
    readonly externalData: string | undefined,
  ) {}

  input(name: string): TensorInfo | undefined {
    return this.inputs.find((i) => i.name === name);
  }

  output(name: string): TensorInfo | undefined {
    return this.outputs.find((o) => o.name === name);
  }

  run(feeds: Record<string, FeedValue>, fetches?: readonly string[]): Promise<Record<string, ort.OnnxValue>> {
    return this.lease.run(feeds, fetches);
  }
}

/** How to call the UNet, from its declared inputs. */
export interface UnetIo {
  sample: string;
  timestep: string;
  encoderHiddenStates: string;
  outSample: string;
  /** dtype of the timestep input: int64 in older exports, float32 in newer ones. */
  timestepType: 'int64' | 'int32' | 'float32' | 'float64';
  /** 'scalar': shape []; 'single': shape [1] (one value for the whole batch); 'batch': one value per item. */
  timestepShape: 'scalar' | 'single' | 'batch';
  /** Channels of the latent the UNet denoises (out_sample's): 4 for SD. */
  latentChannels: number;
  /**
   * Channels of its `sample` input: latentChannels, or more for a UNet that takes extra channels beside the
   * latent (9 for an inpainting UNet: latent + mask + masked-image latent).
   */
  sampleChannels: number;
  /** An LCM UNet's guidance-scale embedding input (`timestep_cond`) and its width. */
  timestepCond?: { name: string; dim: number };
  /** [h, w] when the graph was exported for one latent size only (e.g. tiny-sd: [16, 16]). */
  fixedLatentSize?: [number, number];
  /** The batch size when the graph fixes it (e.g. 2 for some CFG-only exports). */
  fixedBatch?: number;
  sequenceLength?: number;
  crossAttentionDim: number;
  /**
   * SDXL's added conditioning (diffusers' addition_embed_type "text_time"): the pooled, projected text of the
   * second encoder (`text_embeds`, [B, dim]) and the size conditioning (`time_ids`, [B, count]: 6 for the base
   * model (original size, crop, target size), 5 for the refiner (original size, crop, aesthetic score)).
   */
  added?: { textEmbeds: string; textEmbedsDim: number; timeIds: string; timeIdsCount: number };
}

export interface TextEncoderIo {
  inputIds: string;
  inputIdsType: 'int32' | 'int64';
  sequenceLength: number;
  hiddenSize: number;
  lastHiddenState: string;
  /** pooler_output, or text_embeds (the projected pooled output of CLIPTextModelWithProjection, SDXL's second encoder). */
  pooled?: string;
  /**
   * SDXL's refiner conditions on its one encoder (OpenCLIP bigG) as the base model's second: the raw penultimate
   * layer and the projected pooled output. Set on a refiner's text encoder.
   */
  sdxlRefiner?: boolean;
}

export interface VaeIo {
  /** Pixels per latent cell: 2 ** (len(block_out_channels) - 1), 8 for SD. */
  scaleFactor: number;
  /** Latents are multiplied by this after encoding (divided before decoding). 0.18215 for SD-1.x. */
  scalingFactor: number;
  latentChannels: number;
  decoderInput: string;
  decoderOutput: string;
  encoderInput?: string;
  encoderOutput?: string;
  /** 'mean': the encoder returns the posterior mean; 'parameters': mean and logvar concatenated on channels. */
  encoderOutputKind?: 'mean' | 'parameters';
  /** [H, W] in pixels when the decoder's graph fixes the size. */
  fixedImageSize?: [number, number];
}

export interface DiffusionModel {
  /** Absolute folder path. */
  readonly dir: string;
  /** The folder's name (what the loader's combo shows). */
  readonly name: string;
  readonly index: Readonly<Record<string, unknown>>;
  readonly schedulerConfig: Readonly<Record<string, unknown>>;
  readonly tokenizer: ClipTokenizer;
  readonly textEncoder: ModelComponent;
  /** SDXL's second text encoder (OpenCLIP bigG with projection) and its tokenizer (padding with "!"). */
  readonly tokenizer2?: ClipTokenizer;
  readonly textEncoder2?: ModelComponent;
  readonly unet: ModelComponent;
  readonly vaeDecoder: ModelComponent;
  readonly vaeEncoder?: ModelComponent;
  readonly io: { text: TextEncoderIo; text2?: TextEncoderIo; unet: UnetIo; vae: VaeIo };
  /** Things that work but deserve a note (missing optional files, defaults used). */
  readonly warnings: readonly string[];
  /** Releases this model's session leases (the sessions close when no other model holds them). */
  release(): Promise<void>;
}

export interface OpenModelOptions {
  /** Where sessions come from; default: a process-wide pool with default settings. */
  pool?: SessionPool;
  /** Per-component session settings (e.g. fewer threads for the VAE). */
  sessionSettings?: Partial<Record<ComponentName, SessionSettings>>;
  /**
   * Run the UNet's and the VAE decoder's attention as onnxruntime's fused MultiHeadAttention kernel (a graph
   * derived once and cached next to the component; the same function, faster, and without the score matrices in
   * memory). Default true; false opens the components as exported (benchmarks compare the two).
   */
  fuseAttention?: boolean;
}

/** Components whose attention is fused (the text encoder's causal-masked attention is short and left as is). */
const FUSED_COMPONENTS: ReadonlySet<ComponentName> = new Set(['unet', 'vae_decoder']);

function readJsonFile(folder: string, path: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ModelFolderError(folder, `cannot read ${what}: ${(err as Error).message}`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('expected a JSON object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new ModelFolderError(folder, `${what} is not valid JSON (${(err as Error).message})`);
  }
}

function optionalJson(folder: string, path: string, what: string): Record<string, unknown> | undefined {
  return existsSync(path) ? readJsonFile(folder, path, what) : undefined;
}

function describe(list: readonly TensorInfo[]): string {
  return list.length ? list.map((t) => `${t.name} ${t.type} [${t.shape.join(', ')}]`).join('; ') : 'none';
}

function toInfo(meta: readonly ort.InferenceSession.ValueMetadata[]): TensorInfo[] {
  return meta.map((m) => (m.isTensor ? { name: m.name, type: m.type, shape: [...m.shape] } : { name: m.name, type: 'non-tensor', shape: [] }));
}

const num = (d: Dim | undefined): number | undefined => (typeof d === 'number' && d > 0 ? d : undefined);
const int = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined);

/**
 * True when `dir` is a diffusers / optimum model folder (it has model_index.json). Folders of pipelines this
 * engine does not run (SDXL, SD3...) count too, so a workflow naming one gets a sentence saying what it is.
 */
export function isModelFolder(dir: string): boolean {
  return existsSync(join(dir, 'model_index.json'));
}

/**
 * Names of what `modelsDir` holds that a loader may name, sorted ([] when the folder is missing): model
 * folders, and single-file checkpoints (`.safetensors`, `.ckpt`...), which are listed so that a ComfyUI
 * workflow naming one is told why it cannot run rather than that the name is unknown.
 */
export function listModelFolders(modelsDir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(modelsDir);
  } catch {
    return [];
  }
  return entries
    .filter((name) => {
      const full = join(modelsDir, name);
      try {
        const stat = statSync(full); // follows symlinks
        return stat.isDirectory() ? isModelFolder(full) : stat.isFile() && CHECKPOINT_FILE_EXTENSIONS.includes(extname(name).toLowerCase());
      } catch {
        return false;
      }
    })
    .sort((a, b) => a.localeCompare(b));
}

/**
 * Opens `<folder>/<subdir>/model.onnx` and reads what it declares. The lease is pushed to `leases` before the
 * session opens, so the caller releases it even when opening fails.
 */
async function openComponentIn(
  folder: string,
  subdir: string,
  name: ComponentName,
  pool: SessionPool,
  settings: SessionSettings | undefined,
  leases: SessionLease[],
  warnings: string[] = [],
  fuse = true,
): Promise<ModelComponent> {
  const dir = join(folder, subdir);
  const published = join(dir, 'model.onnx');
  const ready = await cpuReadyFile(folder, subdir, name, published, warnings);
  const { path, externalData } = fuse && FUSED_COMPONENTS.has(name) ? await withFusedAttention(ready, subdir, warnings) : ready;
  const lease = pool.acquire(path, settingsForModel(pool, path, settings, name.startsWith('vae') ? 'per-image' : 'per-step'));
  leases.push(lease);
  let session: ort.InferenceSession;
  try {
    session = await lease.session();
  } catch (err) {
    const msg = err instanceof SessionOpenError ? err.ortMessage : (err as Error).message;
    throw new ModelFolderError(folder, `${subdir}/model.onnx could not be loaded by onnxruntime (${msg.trim()}); the file may be truncated, corrupt or not an ONNX model: re-export or re-download it`, name);
  }
  const config = optionalJson(folder, join(dir, 'config.json'), `${subdir}/config.json`) ?? {};
  return new ModelComponent(name, path, lease, toInfo(session.inputMetadata), toInfo(session.outputMetadata), config, externalData);
}

/**
 * The file to open for a component: the published model.onnx, or its float32 / sampling-free conversion,
 * made once and cached next to it (`<component>/.gategraph-derived/`), keyed by the file's content. A
 * conversion is needed for float16 / bfloat16 weights or inputs (the engine feeds float32, and the CPU provider
 * has few float16 kernels) and for random sampling inside the graph (the VAE encoders of diffusers' old
 * converter and of optimum <= 1.22), read from the file's declarations without its weights.
 */
async function cpuReadyFile(
  folder: string,
  subdir: string,
  name: ComponentName,
  published: string,
  warnings: string[],
): Promise<{ path: string; externalData: string | undefined }> {
  const dir = dirname(published);
  const asPublished = { path: published, externalData: EXTERNAL_WEIGHT_FILES.find((f) => existsSync(join(dir, f))) };
  let io: DeclaredIo;
  try {
    io = readDeclaredIo(published);
  } catch {
    return asPublished; // unreadable: opening it reports the problem with the component's name
  }
  const needs = cpuFloat32Needs(io);
  if (!needs.upcast && !needs.sampling) return asPublished;
  try {
    const entry = await cpuFloat32ModelPath(published);
    const what = [needs.upcast ? 'converted from float16 to float32' : '', needs.sampling ? 'its random sampling replaced by the mean (deterministic)' : ''].filter(Boolean).join(', ');
    warnings.push(`${subdir}/model.onnx: ${what}, once, into ${subdir}/.gategraph-derived/`);
    return { path: entry.path, externalData: `${basename(entry.path)}_data` };
  } catch (err) {
    throw new ModelFolderError(folder, `${subdir}/model.onnx could not be converted to float32 for the CPU (${(err as Error).message})`, name);
  }
}

/**
 * The UNet file a model's UNet session was made from before its attention was fused: the published
 * unet/model.onnx, or its float32 conversion (cached). What graph tools that write a new UNet folder read (a
 * folder's unet/model.onnx must be a plain export, and it is fused again when opened).
 */
export async function unfusedUnetFile(model: Pick<DiffusionModel, 'dir'>): Promise<string> {
  return (await cpuReadyFile(model.dir, 'unet', 'unet', join(model.dir, 'unet', 'model.onnx'), [])).path;
}

/**
 * `ready` with its attention fused (see OpenModelOptions.fuseAttention), or as it is when the graph has none the
 * fusion can prove equal or its shapes cannot be followed (a warning says so; the model still runs, unfused).
 */
async function withFusedAttention(
  ready: { path: string; externalData: string | undefined },
  subdir: string,
  warnings: string[],
): Promise<{ path: string; externalData: string | undefined }> {
  try {
    const entry = await fusedAttentionModelPath(ready.path);
    // The fused graph keeps the weights where they were (referenced or hard-linked under the same name).
    return entry ? { path: entry.path, externalData: ready.externalData } : ready;
  } catch (err) {
    warnings.push(`${subdir}/model.onnx: attention left unfused (${(err as Error).message})`);
    return ready;
  }
}

/**
 * What runs a UNet alone: the sampling loop (OnnxUnetRunner.forModel) and TGATE/DeepCache's prepareCachedUnet
 * need no text encoder or VAE. A DiffusionModel is one; so is what openUnet returns.
 */
export type UnetModel = Pick<DiffusionModel, 'name' | 'unet'> & { readonly io: { readonly unet: UnetIo } };

/** A UNet opened on its own (openUnet): its folder, and release() for its session lease. */
export interface OpenedUnet extends UnetModel {
  /** Absolute path of the folder holding model.onnx. */
  readonly dir: string;
  release(): Promise<void>;
}

/**
 * Opens a UNet without the rest of a model: `dir` is the folder holding its model.onnx (+ external weights and
 * config.json), e.g. an export of the UNet alone (tools/sd15-unet writes `<out>/unet/`), or a model folder, whose
 * unet/ is then used. For graph tooling and benchmarks that feed their own text embeddings; the UNet's inputs
 * are checked as openModelFolder checks them. Its name is the folder's, or the parent's for a folder named "unet".
 */
export async function openUnet(dir: string, options: Pick<OpenModelOptions, 'pool' | 'fuseAttention'> & { sessionSettings?: SessionSettings } = {}): Promise<OpenedUnet> {
  let folder = resolve(dir);
  if (!existsSync(folder)) throw new ModelFolderError(folder, 'the folder does not exist');
  if (!statSync(folder).isDirectory()) throw new ModelFolderError(folder, 'this is a file, not a folder: give the folder that holds the UNet\'s model.onnx');
  if (!existsSync(join(folder, 'model.onnx')) && existsSync(join(folder, 'unet', 'model.onnx'))) folder = join(folder, 'unet');
  if (!existsSync(join(folder, 'model.onnx'))) {
    throw new ModelFolderError(folder, 'there is no model.onnx here (nor unet/model.onnx): give the folder of an exported UNet', 'unet');
  }
  const pool = options.pool ?? getDefaultSessionPool();
  const leases: SessionLease[] = [];
  try {
    // Messages name the parent folder and "<this folder>/model.onnx", as they do for a model folder's unet/.
    const parent = dirname(folder);
    const unet = await openComponentIn(parent, basename(folder), 'unet', pool, options.sessionSettings, leases, [], options.fuseAttention ?? true);
    const io = { unet: unetIoOf(parent, unet) };
    const name = basename(folder) === 'unet' ? basename(parent) : basename(folder);
    let released = false;
    return {
      dir: folder,
      name,
      unet,
      io,
      async release() {
        if (released) return;
        released = true;
        await Promise.all(leases.map((l) => l.release()));
      },
    };
  } catch (err) {
    await Promise.all(leases.map((l) => l.release()));
    throw err;
  }
}

/** Opens and checks a model folder. Sessions are opened to read their metadata and kept in the pool. */
export async function openModelFolder(dir: string, options: OpenModelOptions = {}): Promise<DiffusionModel> {
  const folder = resolve(dir);
  const pool = options.pool ?? getDefaultSessionPool();
  if (!existsSync(folder)) throw new ModelFolderError(folder, 'the folder does not exist');
  if (!statSync(folder).isDirectory()) {
    assertSupportedFolder(folder); // a checkpoint file: says what it is
    throw new ModelFolderError(folder, 'this is a file, not a model folder');
  }
  const indexPath = join(folder, 'model_index.json');
  if (!existsSync(indexPath)) {
    throw new ModelFolderError(folder, 'model_index.json is missing; this is not a diffusers/optimum ONNX model folder (export one with optimum-cli export onnx, or diffusers\' convert script)');
  }
  const index = readJsonFile(folder, indexPath, 'model_index.json');
  assertSupportedFolder(folder);

  // SDXL's refiner has only the second text encoder (text_encoder_2/, tokenizer_2/): it takes the first one's place.
  const refiner = !existsSync(join(folder, 'text_encoder')) && existsSync(join(folder, 'text_encoder_2', 'model.onnx'));
  const textDir = refiner ? 'text_encoder_2' : 'text_encoder';
  const tokenizerDir = refiner ? 'tokenizer_2' : 'tokenizer';
  const missing: string[] = REQUIRED.map((c) => (c === 'text_encoder' ? textDir : c)).filter((c) => !existsSync(join(folder, c, 'model.onnx')));
  const tokenizerGap = missingTokenizerFiles(join(folder, tokenizerDir));
  if (tokenizerGap !== undefined) missing.push(`${tokenizerDir}/${tokenizerGap}`);
  if (missing.length) {
    const names = missing.map((m) => (m.includes('/') ? m : `${m}/model.onnx`));
    throw new ModelFolderError(folder, `missing component${missing.length > 1 ? 's' : ''}: ${names.join(', ')}`);
  }

  const warnings: string[] = [];
  const schedPath = join(folder, 'scheduler', 'scheduler_config.json');
  const schedulerConfig = optionalJson(folder, schedPath, 'scheduler/scheduler_config.json') ?? {};
  if (!existsSync(schedPath)) warnings.push('scheduler/scheduler_config.json is missing: using the SD-1.x training schedule');

  let tokenizer: ClipTokenizer;
  try {
    tokenizer = ClipTokenizer.load(join(folder, tokenizerDir));
  } catch (err) {
    throw new ModelFolderError(folder, (err as Error).message);
  }

  const leases: SessionLease[] = [];
  const openComponent = (name: ComponentName) => openComponentIn(folder, name, name, pool, options.sessionSettings?.[name], leases, warnings, options.fuseAttention ?? true);

  try {
    const textEncoder = await openComponent(refiner ? 'text_encoder_2' : 'text_encoder');
    const unet = await openComponent('unet');
    const vaeDecoder = await openComponent('vae_decoder');
    const vaeEncoder = existsSync(join(folder, 'vae_encoder', 'model.onnx')) ? await openComponent('vae_encoder') : undefined;
    if (!vaeEncoder) warnings.push('vae_encoder/model.onnx is missing: VAE encoding (img2img) is not available');

    const unetIo = unetIoOf(folder, unet);
    const text = { ...textEncoderIo(folder, textEncoder, tokenizer), ...(refiner ? { sdxlRefiner: true } : {}) };
    if (refiner && unetIo.added && (text.pooled !== 'text_embeds' || unetIo.added.timeIdsCount !== 5)) {
      throw new ModelFolderError(folder, `an SDXL refiner folder (text_encoder_2/ only) needs a UNet taking 5 time_ids and an encoder with text_embeds; this one takes ${unetIo.added.timeIdsCount} time_ids`);
    }
    const vae = vaeIo(folder, vaeDecoder, vaeEncoder, warnings);
    const second = !refiner && (unetIo.added || existsSync(join(folder, 'text_encoder_2', 'model.onnx'))) ? await openSecondEncoder(folder, openComponent, unetIo) : undefined;

    const width = text.hiddenSize + (second?.io.hiddenSize ?? 0);
    if (unetIo.crossAttentionDim !== width) {
      const encoders = second ? `the text encoders' hidden sizes are ${text.hiddenSize} + ${second.io.hiddenSize} = ${width}` : `the text encoder's hidden size is ${text.hiddenSize}`;
      throw new ModelFolderError(folder, `${encoders} but the UNet's cross-attention dim is ${unetIo.crossAttentionDim}: ${second ? 'the text encoders' : 'text_encoder'} and unet come from different models`);
    }
    if (unetIo.sequenceLength !== undefined && unetIo.sequenceLength !== text.sequenceLength) {
      throw new ModelFolderError(folder, `the text encoder yields ${text.sequenceLength} tokens but the UNet expects ${unetIo.sequenceLength}: text_encoder and unet come from different models`);
    }
    if (unetIo.latentChannels !== vae.latentChannels) {
      throw new ModelFolderError(folder, `the UNet works on ${unetIo.latentChannels} latent channels but the VAE decoder takes ${vae.latentChannels}: unet and vae_decoder come from different models`);
    }

    let released = false;
    const model: DiffusionModel = {
      dir: folder,
      name: basename(folder),
      index,
      schedulerConfig,
      tokenizer,
      textEncoder,
      ...(second ? { tokenizer2: second.tokenizer, textEncoder2: second.component } : {}),
      unet,
      vaeDecoder,
      ...(vaeEncoder ? { vaeEncoder } : {}),
      io: { text, ...(second ? { text2: second.io } : {}), unet: unetIo, vae },
      warnings,
      async release() {
        if (released) return;
        released = true;
        await Promise.all(leases.map((l) => l.release()));
      },
    };
    return model;
  } catch (err) {
    await Promise.all(leases.map((l) => l.release()));
    throw err;
  }
}

/**
 * SDXL's second text encoder: text_encoder_2/ and tokenizer_2/, whose projected pooled output (`text_embeds`)
 * must have the width the UNet's `text_embeds` takes.
 */
async function openSecondEncoder(
  folder: string,
  open: (name: ComponentName) => Promise<ModelComponent>,
  unet: UnetIo,
): Promise<{ component: ModelComponent; tokenizer: ClipTokenizer; io: TextEncoderIo }> {
  const missing: string[] = [];
  if (!existsSync(join(folder, 'text_encoder_2', 'model.onnx'))) missing.push('text_encoder_2/model.onnx');
  const gap = missingTokenizerFiles(join(folder, 'tokenizer_2'));
  if (gap !== undefined) missing.push(`tokenizer_2/${gap}`);
  if (missing.length) {
    throw new ModelFolderError(folder, `an SDXL model needs its second text encoder: missing ${missing.join(', ')}`);
  }
  let tokenizer: ClipTokenizer;
  try {
    tokenizer = ClipTokenizer.load(join(folder, 'tokenizer_2'));
  } catch (err) {
    throw new ModelFolderError(folder, `tokenizer_2: ${(err as Error).message}`);
  }
  const component = await open('text_encoder_2');
  const io = textEncoderIo(folder, component, tokenizer);
  if (unet.added) {
    const pooled = io.pooled === undefined ? undefined : component.output(io.pooled);
    const dim = pooled ? num(pooled.shape[1]) : undefined;
    if (!pooled || io.pooled !== 'text_embeds') {
      throw new ModelFolderError(folder, `text_encoder_2/model.onnx has no "text_embeds" output (the projected pooled text the UNet's ${unet.added.textEmbeds} takes); export it as CLIPTextModelWithProjection`, 'text_encoder_2');
    }
    if (dim !== undefined && dim !== unet.added.textEmbedsDim) {
      throw new ModelFolderError(folder, `text_encoder_2's text_embeds are ${dim} wide but the UNet's ${unet.added.textEmbeds} takes ${unet.added.textEmbedsDim}: they come from different models`, 'text_encoder_2');
    }
  }
  return { component, tokenizer, io };
}

/**
 * What decodes and encodes latents: a DiffusionModel's VAE, or a VAE opened on its own (openVaeFolder, for
 * ComfyUI's VAELoader).
 */
export type OpenedVae = Pick<DiffusionModel, 'dir' | 'name' | 'vaeDecoder' | 'vaeEncoder' | 'warnings' | 'release'> & {
  readonly io: { readonly vae: VaeIo };
};

/**
 * Opens some of a folder's components with `open` and returns what `make` builds of them, with a release() for
 * their leases; on failure the leases taken so far are released. For the parts opened alone (a VAE, a text encoder).
 */
async function openPart<T>(
  folder: string,
  options: OpenModelOptions,
  make: (open: (name: ComponentName) => Promise<ModelComponent>, warnings: string[]) => Promise<T>,
): Promise<T & { warnings: string[]; release(): Promise<void> }> {
  const pool = options.pool ?? getDefaultSessionPool();
  const leases: SessionLease[] = [];
  const warnings: string[] = [];
  const open = (name: ComponentName) => openComponentIn(folder, name, name, pool, options.sessionSettings?.[name], leases, warnings, options.fuseAttention ?? true);
  try {
    const part = await make(open, warnings);
    let released = false;
    return {
      ...part,
      warnings,
      async release() {
        if (released) return;
        released = true;
        await Promise.all(leases.map((l) => l.release()));
      },
    };
  } catch (err) {
    await Promise.all(leases.map((l) => l.release()));
    throw err;
  }
}

/**
 * A VAE alone: a folder holding vae_decoder/model.onnx and optionally vae_encoder/model.onnx (an ONNX model
 * folder works too; its other components are not opened). Checked as openModelFolder checks a model's VAE.
 */
export async function openVaeFolder(dir: string, options: OpenModelOptions & { name?: string } = {}): Promise<OpenedVae> {
  const folder = resolve(dir);
  if (!existsSync(join(folder, 'vae_decoder', 'model.onnx'))) throw new ModelFolderError(folder, 'missing component: vae_decoder/model.onnx', 'vae_decoder');
  return openPart(folder, options, async (open, warnings) => {
    const vaeDecoder = await open('vae_decoder');
    const vaeEncoder = existsSync(join(folder, 'vae_encoder', 'model.onnx')) ? await open('vae_encoder') : undefined;
    const vae = vaeIo(folder, vaeDecoder, vaeEncoder, warnings);
    return { dir: folder, name: options.name ?? basename(folder), vaeDecoder, ...(vaeEncoder ? { vaeEncoder } : {}), io: { vae } };
  });
}

/**
 * What encodes prompts: a DiffusionModel's text side, or a text encoder opened on its own (openTextEncoderFolder,
 * for ComfyUI's CLIPLoader), which has no UNet to bound its prompt chunks.
 */
export type OpenedTextEncoder = Pick<DiffusionModel, 'dir' | 'name' | 'index' | 'tokenizer' | 'textEncoder' | 'tokenizer2' | 'textEncoder2' | 'warnings' | 'release'> & {
  readonly io: { readonly text: TextEncoderIo; readonly text2?: TextEncoderIo; readonly unet?: Pick<UnetIo, 'sequenceLength'> };
};

/**
 * A text encoder alone: a folder holding text_encoder/model.onnx and tokenizer/, and for SDXL also
 * text_encoder_2/ and tokenizer_2/ (DualCLIPLoader's pair; an ONNX model folder works too).
 */
export async function openTextEncoderFolder(dir: string, options: OpenModelOptions & { name?: string } = {}): Promise<OpenedTextEncoder> {
  const folder = resolve(dir);
  if (!existsSync(join(folder, 'text_encoder', 'model.onnx'))) throw new ModelFolderError(folder, 'missing component: text_encoder/model.onnx', 'text_encoder');
  const loadTokenizer = (name: string): ClipTokenizer => {
    try {
      return ClipTokenizer.load(join(folder, name));
    } catch (err) {
      throw new ModelFolderError(folder, `${name}: ${(err as Error).message}`);
    }
  };
  const tokenizer = loadTokenizer('tokenizer');
  const pair = existsSync(join(folder, 'text_encoder_2', 'model.onnx'));
  const tokenizer2 = pair ? loadTokenizer('tokenizer_2') : undefined;
  return openPart(folder, options, async (open) => {
    const textEncoder = await open('text_encoder');
    const textEncoder2 = pair ? await open('text_encoder_2') : undefined;
    const io2 = textEncoder2 && tokenizer2 ? textEncoderIo(folder, textEncoder2, tokenizer2) : undefined;
    if (io2 && io2.pooled !== 'text_embeds') {
      throw new ModelFolderError(folder, 'text_encoder_2/model.onnx has no "text_embeds" output (the projected pooled text SDXL conditions on); export it as CLIPTextModelWithProjection', 'text_encoder_2');
    }
    return {
      dir: folder,
      name: options.name ?? basename(folder),
      index: optionalJson(folder, join(folder, 'model_index.json'), 'model_index.json') ?? {},
      tokenizer,
      textEncoder,
      ...(textEncoder2 && tokenizer2 ? { tokenizer2, textEncoder2 } : {}),
      io: { text: textEncoderIo(folder, textEncoder, tokenizer), ...(io2 ? { text2: io2 } : {}) },
    };
  });
}

/** A component as its file declares it, read without a session or its weights. */
function declaredComponent(folder: string, name: ComponentName): ComponentDeclaration {
  const dir = join(folder, name);
  const path = join(dir, 'model.onnx');
  if (!existsSync(path)) throw new ModelFolderError(folder, `missing component: ${name}/model.onnx`, name);
  let io;
  try {
    io = readDeclaredIo(path);
  } catch (err) {
    throw new ModelFolderError(folder, `${name}/model.onnx cannot be read (${(err as Error).message})`, name);
  }
  const config = optionalJson(folder, join(dir, 'config.json'), `${name}/config.json`) ?? {};
  // A float16 export is run as its float32 conversion (cpuReadyFile): declare what that one takes.
  const upcast = cpuFloat32Needs(io).upcast;
  const asFloat32 = (t: TensorInfo): TensorInfo => (upcast && (t.type === 'float16' || t.type === 'bfloat16') ? { ...t, type: 'float32' } : t);
  return { name, inputs: io.inputs.map(asFloat32), outputs: io.outputs.map(asFloat32), config };
}

/** A folder of a kind this engine does not run (SDXL, SD3, GPU-optimized...) is refused with what it is. */
function assertSupportedFolder(folder: string): void {
  try {
    checkSupportedModel(folder);
  } catch (err) {
    if (err instanceof UnsupportedModelError) throw new ModelFolderError(folder, err.reason);
    throw err;
  }
}

/** What decides the sizes a model folder takes, as its files declare it (see declaredUnetAndVae). */
export interface DeclaredUnetAndVae {
  unet: UnetIo;
  vae: VaeIo;
  unetConfig: Readonly<Record<string, unknown>>;
  /** The VAE decoder's config.json, or the encoder's when the decoder has none. */
  vaeConfig: Readonly<Record<string, unknown>>;
}

/**
 * The UNet's and the VAE's io read from their files without opening sessions or reading weights: which
 * image sizes a folder takes, for checks made before anything runs (validation). Interpreted by the same code
 * as openModelFolder, so both agree; throws the same ModelFolderError for a folder that is not usable.
 */
export function declaredUnetAndVae(dir: string): DeclaredUnetAndVae {
  const folder = resolve(dir);
  assertSupportedFolder(folder);
  const unet = declaredComponent(folder, 'unet');
  const decoder = declaredComponent(folder, 'vae_decoder');
  const encoder = existsSync(join(folder, 'vae_encoder', 'model.onnx')) ? declaredComponent(folder, 'vae_encoder') : undefined;
  return {
    unet: unetIoOf(folder, unet),
    vae: vaeIo(folder, decoder, encoder, []),
    unetConfig: unet.config,
    vaeConfig: Object.keys(decoder.config).length ? decoder.config : (encoder?.config ?? {}),
  };
}

function requireInput(folder: string, c: ComponentDeclaration, name: string, what: string): TensorInfo {
  const t = c.inputs.find((i) => i.name === name);
  if (!t) {
    throw new ModelFolderError(folder, `${c.name}/model.onnx does not look like ${what}: it has no input "${name}" (its inputs: ${describe(c.inputs)}; outputs: ${describe(c.outputs)}). Is it another component's file?`, c.name);
  }
  return t;
}

function pickOutput(folder: string, c: ComponentDeclaration, preferred: readonly string[], what: string): TensorInfo {
  for (const p of preferred) {
    const o = c.outputs.find((t) => t.name === p);
    if (o) return o;
  }
  throw new ModelFolderError(folder, `${c.name}/model.onnx does not look like ${what}: it has no output ${preferred.map((p) => `"${p}"`).join(' or ')} (its outputs: ${describe(c.outputs)})`, c.name);
}

function requireFloat(folder: string, c: ComponentDeclaration, t: TensorInfo): void {
  // float16 files are run as their float32 conversion (cpuReadyFile), so anything else here is unexpected.
  if (t.type !== 'float32') {
    throw new ModelFolderError(folder, `${c.name}/model.onnx input/output "${t.name}" is ${t.type}, expected float32`, c.name);
  }
}

function textEncoderIo(folder: string, c: ModelComponent, tokenizer: ClipTokenizer): TextEncoderIo {
  const ids = requireInput(folder, c, 'input_ids', 'a text encoder');
  if (ids.type !== 'int32' && ids.type !== 'int64') {
    throw new ModelFolderError(folder, `text_encoder/model.onnx input "input_ids" is ${ids.type}; expected int32 or int64 token ids`, c.name);
  }
  const last = pickOutput(folder, c, ['last_hidden_state'], 'a text encoder');
  requireFloat(folder, c, last);
  const pooled = c.output('pooler_output') ?? c.output('text_embeds');
  const declaredLen = num(ids.shape[1]);
  const sequenceLength = declaredLen ?? tokenizer.maxLength;
  if (declaredLen !== undefined && declaredLen !== tokenizer.maxLength) {
    throw new ModelFolderError(folder, `the tokenizer pads to ${tokenizer.maxLength} tokens but text_encoder/model.onnx takes ${declaredLen}: check tokenizer/tokenizer_config.json model_max_length`, c.name);
  }
  const hiddenSize = num(last.shape[2]) ?? int(c.config.hidden_size);
  if (hiddenSize === undefined) {
    throw new ModelFolderError(folder, `cannot tell the text encoder's hidden size: last_hidden_state is [${last.shape.join(', ')}] and text_encoder/config.json has no hidden_size`, c.name);
  }
  return {
    inputIds: ids.name,
    inputIdsType: ids.type,
    sequenceLength,
    hiddenSize,
    lastHiddenState: last.name,
    ...(pooled ? { pooled: pooled.name } : {}),
  };
}

function unetIoOf(folder: string, c: ComponentDeclaration): UnetIo {
  const sample = requireInput(folder, c, 'sample', 'a UNet');
  const timestep = requireInput(folder, c, 'timestep', 'a UNet');
  const ehs = requireInput(folder, c, 'encoder_hidden_states', 'a UNet');
  const out = pickOutput(folder, c, ['out_sample'], 'a UNet');
  for (const t of [sample, ehs, out]) requireFloat(folder, c, t);
  if (!['int64', 'int32', 'float32', 'float64'].includes(timestep.type)) {
    throw new ModelFolderError(folder, `unet/model.onnx input "timestep" is ${timestep.type}; supported: int64, int32, float32, float64${timestep.type === 'float16' ? ' (float16 exports need float32 on CPU)' : ''}`, c.name);
  }
  if (sample.shape.length !== 4) {
    throw new ModelFolderError(folder, `unet/model.onnx input "sample" is declared [${sample.shape.join(', ')}]; expected 4 dimensions [batch, channels, height, width]`, c.name);
  }
  const timestepShape = timestep.shape.length === 0 ? 'scalar' : timestep.shape.length === 1 && timestep.shape[0] === 1 ? 'single' : 'batch';
  const sampleChannels = num(sample.shape[1]) ?? int(c.config.in_channels) ?? 4;
  const latentChannels = num(out.shape[1]) ?? int(c.config.out_channels) ?? Math.min(sampleChannels, 4);
  if (sampleChannels < latentChannels) {
    throw new ModelFolderError(folder, `unet/model.onnx takes ${sampleChannels} channels but returns ${latentChannels}: not a UNet this engine knows`, c.name);
  }
  const cond = c.inputs.find((i) => i.name === 'timestep_cond');
  let timestepCond: UnetIo['timestepCond'];
  if (cond) {
    const dim = num(cond.shape[1]) ?? int(c.config.time_cond_proj_dim);
    if (dim === undefined) {
      throw new ModelFolderError(folder, `cannot tell the width of unet/model.onnx's timestep_cond (an LCM UNet's guidance embedding): it is [${cond.shape.join(', ')}] and unet/config.json has no time_cond_proj_dim`, c.name);
    }
    requireFloat(folder, c, cond);
    timestepCond = { name: cond.name, dim };
  }
  const crossAttentionDim = num(ehs.shape[2]) ?? int(c.config.cross_attention_dim);
  if (crossAttentionDim === undefined) {
    throw new ModelFolderError(folder, `cannot tell the UNet's cross-attention dim: encoder_hidden_states is [${ehs.shape.join(', ')}] and unet/config.json has no cross_attention_dim`, c.name);
  }
  const added = addedConditioning(folder, c);
  const h = num(sample.shape[2]);
  const w = num(sample.shape[3]);
  const batch = num(sample.shape[0]);
  const seq = num(ehs.shape[1]);
  return {
    sample: sample.name,
    timestep: timestep.name,
    encoderHiddenStates: ehs.name,
    outSample: out.name,
    timestepType: timestep.type as UnetIo['timestepType'],
    timestepShape,
    latentChannels,
    sampleChannels,
    ...(timestepCond ? { timestepCond } : {}),
    crossAttentionDim,
    ...(h !== undefined && w !== undefined ? { fixedLatentSize: [h, w] as [number, number] } : {}),
    ...(batch !== undefined ? { fixedBatch: batch } : {}),
    ...(seq !== undefined ? { sequenceLength: seq } : {}),
    ...(added ? { added } : {}),
  };
}

/** An SDXL UNet's text_embeds / time_ids inputs and their widths (from the graph, else unet/config.json). */
function addedConditioning(folder: string, c: ComponentDeclaration): UnetIo['added'] {
  const textEmbeds = c.inputs.find((i) => i.name === 'text_embeds');
  const timeIds = c.inputs.find((i) => i.name === 'time_ids');
  if (!textEmbeds && !timeIds) return undefined;
  if (!textEmbeds || !timeIds) {
    throw new ModelFolderError(folder, `unet/model.onnx takes ${textEmbeds ? 'text_embeds' : 'time_ids'} but not ${textEmbeds ? 'time_ids' : 'text_embeds'}: SDXL's added conditioning needs both`, c.name);
  }
  requireFloat(folder, c, textEmbeds);
  requireFloat(folder, c, timeIds);
  // projection_class_embeddings_input_dim = text_embeds width + time_ids count * addition_time_embed_dim
  const projection = int(c.config.projection_class_embeddings_input_dim);
  const timeDim = int(c.config.addition_time_embed_dim);
  const timeIdsCount = num(timeIds.shape[1]);
  const textEmbedsDim = num(textEmbeds.shape[1]) ?? (projection !== undefined && timeDim !== undefined && timeIdsCount !== undefined ? projection - timeIdsCount * timeDim : undefined);
  const count = timeIdsCount ?? (projection !== undefined && timeDim !== undefined && textEmbedsDim !== undefined ? (projection - textEmbedsDim) / timeDim : undefined);
  if (textEmbedsDim === undefined || count === undefined || !Number.isInteger(count)) {
    throw new ModelFolderError(folder, `cannot tell the widths of unet/model.onnx's text_embeds [${textEmbeds.shape.join(', ')}] and time_ids [${timeIds.shape.join(', ')}] (unet/config.json has no projection_class_embeddings_input_dim / addition_time_embed_dim)`, c.name);
  }
  if (count !== 5 && count !== 6) {
    throw new ModelFolderError(folder, `unet/model.onnx takes ${count} time_ids; SDXL takes 6 (base) or 5 (refiner)`, c.name);
  }
  return { textEmbeds: textEmbeds.name, textEmbedsDim, timeIds: timeIds.name, timeIdsCount: count };
}

function vaeIo(folder: string, dec: ComponentDeclaration, enc: ComponentDeclaration | undefined, warnings: string[]): VaeIo {
  const decIn = requireInput(folder, dec, 'latent_sample', 'a VAE decoder');
  const decOut = pickOutput(folder, dec, ['sample'], 'a VAE decoder');
  requireFloat(folder, dec, decIn);
  requireFloat(folder, dec, decOut);
  const config = Object.keys(dec.config).length ? dec.config : (enc?.config ?? {});
  const blocks = Array.isArray(config.block_out_channels) ? config.block_out_channels.length : undefined;
  const lh = num(decIn.shape[2]);
  const ih = num(decOut.shape[2]);
  let scaleFactor: number;
  if (blocks !== undefined && blocks > 0) scaleFactor = 2 ** (blocks - 1);
  else if (lh !== undefined && ih !== undefined && ih % lh === 0) scaleFactor = ih / lh;
  else {
    scaleFactor = 8;
    warnings.push('the VAE config.json has no block_out_channels: assuming 8 pixels per latent cell (SD)');
  }
  const sf = config.scaling_factor;
  const scalingFactor = typeof sf === 'number' && sf > 0 ? sf : 0.18215;
  if (!(typeof sf === 'number' && sf > 0)) warnings.push('the VAE config.json has no scaling_factor: using SD-1.x\'s 0.18215');
  const latentChannels = num(decIn.shape[1]) ?? int(config.latent_channels) ?? 4;
  const fixedH = num(decOut.shape[2]);
  const fixedW = num(decOut.shape[3]);
  const io: VaeIo = {
    scaleFactor,
    scalingFactor,
    latentChannels,
    decoderInput: decIn.name,
    decoderOutput: decOut.name,
    ...(fixedH !== undefined && fixedW !== undefined ? { fixedImageSize: [fixedH, fixedW] as [number, number] } : {}),
  };
  if (enc) {
    const encIn = requireInput(folder, enc, 'sample', 'a VAE encoder');
    const encOut = pickOutput(folder, enc, ['latent_sample', 'latent_parameters'], 'a VAE encoder');
    requireFloat(folder, enc, encIn);
    io.encoderInput = encIn.name;
    io.encoderOutput = encOut.name;
    io.encoderOutputKind = encOut.name === 'latent_parameters' ? 'parameters' : 'mean';
  }
  return io;
}
