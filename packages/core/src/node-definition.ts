/**
 * The node definition API: what a node author writes.
 *
 * A node is a plain object made with `defineNode({...})`. Inputs are declared with the builders in
 * `inputs.ts` (`int()`, `float()`, `combo()`, `socket()`...), which carry their value type, so `execute`
 * receives correctly typed inputs without annotations. The same object is turned into ComfyUI's
 * `object_info` entry by `object-info.ts`, validated by `validation.ts` and run by `executor.ts`.
 *
 * Longer than the other core files on purpose: this is the whole API a node author reads (types, each with its
 * documentation at the point of use); split, it would scatter one reference over several files.
 */
import type { Logger } from './logger.ts';

declare global {
  /** Global namespace of gategraph's extensible types (global, so every pack's declarations merge). */
  namespace GateGraph {
    /**
     * Maps socket type names to the TypeScript type of the values on such links. Packs extend it:
     *
     * ```ts
     * declare global { namespace GateGraph { interface SocketTypes { MODEL: ModelHandle } } }
     * ```
     * A global namespace rather than `declare module '@gategraph/core'`: augmenting a module whose index
     * re-exports with `export *` does not merge reliably once two packs augment it.
     */
    interface SocketTypes {
      INT: number;
      FLOAT: number;
      STRING: string;
      BOOLEAN: boolean;
      /** ComfyUI's wildcard type: accepts any link. */
      '*': unknown;
    }
  }
}

/**
 * Socket type names and their value types (see `GateGraph.SocketTypes`). Unknown type names are typed
 * `unknown` unless the author passes a type argument to `socket<T>()`.
 */
export type SocketTypes = GateGraph.SocketTypes;

/** Options every input kind accepts. */
export interface CommonInputOptions {
  /** Shown as a tooltip in the editor and in object_info. */
  tooltip?: string;
  /** An optional input may be left unconnected / unset; `execute` then receives `undefined`. */
  optional?: boolean;
  /**
   * A lazy input is evaluated only when the node asks for it: `execute` receives a function returning a
   * promise of the value (`await inputs.x()`), and upstream nodes run only if it is called.
   */
  lazy?: boolean;
  /** Widgets only: show the input as a socket instead of a widget (ComfyUI's `forceInput`). */
  forceInput?: boolean;
  /** Hide the input from the add-node UI but keep it in the definition (ComfyUI's `advanced`). */
  advanced?: boolean;
}

export interface IntInput extends CommonInputOptions {
  readonly kind: 'INT';
  default?: number;
  min?: number;
  max?: number;
  step?: number;
  /** Adds the editor's "control after generate" widget (fixed/increment/decrement/randomize), for seeds. */
  controlAfterGenerate?: boolean;
  display?: 'number' | 'slider';
}

export interface FloatInput extends CommonInputOptions {
  readonly kind: 'FLOAT';
  default?: number;
  min?: number;
  max?: number;
  step?: number;
  /** Values are rounded to a multiple of this (ComfyUI's `round`); `false` disables rounding. */
  round?: number | false;
  display?: 'number' | 'slider';
}

export interface StringInput extends CommonInputOptions {
  readonly kind: 'STRING';
  default?: string;
  multiline?: boolean;
  placeholder?: string;
}

export interface BooleanInput extends CommonInputOptions {
  readonly kind: 'BOOLEAN';
  default?: boolean;
  labelOn?: string;
  labelOff?: string;
}

/** What a combo options function is told about the host asking (object_info, validation). */
export interface ComboContext {
  /** The host's folders, when a host asks: list files from `paths.models` / `paths.input`, not a fixed path. */
  paths?: HostPaths;
}

/**
 * The options of a combo may be computed each time object_info is built or a prompt validated (e.g. the model
 * folders in the host's models folder), so new files show up without a restart.
 */
export type ComboOptions<T extends string = string> = readonly T[] | ((context: ComboContext) => readonly T[]);

export interface ComboInput<T extends string = string> extends CommonInputOptions {
  readonly kind: 'COMBO';
  options: ComboOptions<T>;
  default?: T;
  /** Allow image upload into the input folder from the editor (ComfyUI's `image_upload`). */
  imageUpload?: boolean;
}

/** A link-only input of a named type (`MODEL`, `LATENT`, ...). `T` is the value type. */
export interface SocketInput<T = unknown> extends CommonInputOptions {
  readonly kind: 'SOCKET';
  type: string;
  /**
   * ComfyUI's `("BOOL", {"default": False})`: a socket of a pack's own type with a default also takes a JSON
   * constant in the prompt, passed to the node as it is (and the default is in object_info for the editor).
   */
  default?: T;
  /**
   * The socket takes a JSON constant in the prompt, passed as it is, as ComfyUI passes constants to any
   * non-primitive input. Off by default: a constant where a MODEL or LATENT must be linked is refused.
   */
  acceptsConstant?: boolean;
  /**
   * ComfyUI's `rawLink`: `execute` receives the link itself (`[sourceId, outputSlot]`), not the value. The
   * source still runs first. For nodes that build graphs from the prompt (a loop's closing node finding its
   * opening node).
   */
  rawLink?: boolean;
  /** Phantom field carrying the value type; never set at run time. */
  readonly __value?: T;
}

export type InputSpec = IntInput | FloatInput | StringInput | BooleanInput | ComboInput<string> | SocketInput<unknown>;

export type WidgetInputSpec = Exclude<InputSpec, SocketInput<unknown>>;

/** What the executor injects for hidden inputs (ComfyUI's `hidden`). */
export interface HiddenValues {
  /** The whole API-format prompt being executed. */
  PROMPT: ApiPromptLike;
  /** `extra_data.extra_pnginfo`: the UI workflow and anything else the client wants stored in images. */
  EXTRA_PNGINFO: Record<string, unknown> | undefined;
  /** The id of the node being executed. */
  UNIQUE_ID: string;
  /** The live prompt: the submitted nodes and those expansions added so far (ComfyUI's `DYNPROMPT`). */
  DYNPROMPT: PromptView;
}

/** A node as the live prompt shows it. */
export interface PromptViewNode {
  readonly class_type: string;
  readonly inputs: Readonly<Record<string, unknown>>;
}

/**
 * Read access to the prompt being run, expansions included (ComfyUI's DynamicPrompt): a node that expands into
 * a copy of part of the graph (a loop body) reads it here.
 */
export interface PromptView {
  get(id: string): PromptViewNode | undefined;
  has(id: string): boolean;
  /** Every node id, submitted ones first, then expanded ones in the order they were added. */
  ids(): string[];
  /** The node the editor shows `id` on: itself, or the node whose expansion made it (or its override). */
  displayId(id: string): string | undefined;
  /** The node whose expansion made `id`; null for a submitted node, undefined for an unknown id. */
  parentId(id: string): string | null | undefined;
  /** The submitted node `id` descends from (itself for a submitted node). */
  realId(id: string): string | undefined;
}

/** A link in an API prompt: `[source node id, output slot]`. */
export type PromptLink = [string, number];

/** A node of an expansion: an API node, optionally shown on another node in the editor. */
export interface ExpandedNode {
  class_type: string;
  inputs: Record<string, unknown>;
  /** The node its progress and errors are shown on (ComfyUI's `override_display_id`); default: the parent's. */
  override_display_id?: string;
}

/**
 * What `execute` returns to expand into a sub-graph (ComfyUI's `{"result": ..., "expand": graph}`): the
 * nodes to add (ids made unique by a GraphBuilder from `ctx.graph()`), and the node's outputs, each a value or
 * a link to an output of a node in the expansion (`builderNode.out(slot)`), resolved once that node has run.
 */
export interface ExpansionResult {
  outputs: readonly unknown[];
  expand: Record<string, ExpandedNode>;
  ui?: UiOutput;
}
export type HiddenKind = keyof HiddenValues;

/** Minimal structural type of an API prompt, to avoid a cycle with workflow types. */
export type ApiPromptLike = Record<string, { class_type: string; inputs: Record<string, unknown> }>;

export interface OutputSpec {
  /** Socket type name, e.g. `LATENT`. */
  type: string;
  /** Display name of the output; defaults to the type. */
  name?: string;
  tooltip?: string;
  /** The node returns an array for this output; downstream nodes run once per element. */
  isList?: boolean;
}

/** What `checkLazyStatus` receives: every input as a value, `undefined` where not available yet. */
export type LazyStatusInputs<I extends InputsShape, H extends HiddenShape = {}> = { [K in keyof I]?: ValueOf<I[K]> } & {
  [K in keyof H]: HiddenValues[H[K]];
};

/** A lazily evaluated input value. */
export type Lazy<T> = () => Promise<T>;

/** The value type an input spec produces. */
export type ValueOf<S> = S extends SocketInput<infer T>
  ? T
  : S extends IntInput | FloatInput
    ? number
    : S extends StringInput
      ? string
      : S extends BooleanInput
        ? boolean
        : S extends ComboInput<infer T>
          ? T
          : never;

type Wrap<S, V> = S extends { lazy: true } ? Lazy<V> : V;
type Opt<S, V> = S extends { optional: true } ? V | undefined : V;

export type InputsShape = Record<string, InputSpec>;
export type HiddenShape = Record<string, HiddenKind>;

/** The `inputs` argument of `execute`, derived from the declared input specs. */
export type InputValues<I extends InputsShape, H extends HiddenShape = {}, L extends boolean = false> = {
  [K in keyof I]: L extends true ? Opt<I[K], ValueOf<I[K]>[]> : Wrap<I[K], Opt<I[K], ValueOf<I[K]>>>;
} & { [K in keyof H]: HiddenValues[H[K]] };

/** Value types of the outputs. Authors get `unknown` per slot unless they type the socket via SocketTypes. */
export type OutputValue<O extends OutputSpec> = O['type'] extends keyof SocketTypes ? SocketTypes[O['type']] : unknown;
export type OutputValues<O extends readonly OutputSpec[]> = {
  [K in keyof O]: O[K] extends OutputSpec ? (O[K]['isList'] extends true ? Array<OutputValue<O[K]> | ExecutionBlocker> : OutputValue<O[K]> | ExecutionBlocker) : never;
};

/** What a node shows in the UI after running (e.g. `{ images: [{filename, subfolder, type}] }`). */
export type UiOutput = Record<string, unknown[]>;

/** The full return form of `execute`; a node without UI output may return the outputs array directly. */
export interface NodeResult<O extends readonly OutputSpec[]> {
  outputs?: OutputValues<O>;
  ui?: UiOutput;
}

/** A preview shown while a node runs (e.g. a decoded latent), forwarded by the server as a binary frame. */
export interface PreviewImage {
  format: 'JPEG' | 'PNG';
  data: Uint8Array;
  /**
   * The image is the node's result, not a glimpse of work in progress (SaveImageWebsocket sends its images as
   * preview frames, as ComfyUI's does): hosts must deliver it, where they may drop a preview for a slow client.
   */
  result?: boolean;
}

/** Folders a node may read from and write to; set by the host (CLI or server). */
export interface HostPaths {
  output: string;
  input: string;
  temp: string;
  models: string;
}

export interface ExecutionContext {
  /** The id of this node in the prompt. */
  nodeId: string;
  /** Id of the prompt being executed. */
  promptId: string;
  /** Aborted when the user interrupts. Long nodes must check it (or call `throwIfAborted`) regularly. */
  signal: AbortSignal;
  /** Throws an `InterruptedError` if the run was interrupted. Call it inside long loops. */
  throwIfAborted(): void;
  /**
   * Reports progress (`value` of `max`, e.g. sampler steps); optionally with a preview image. Throws
   * `InterruptedError` once the run has been interrupted, so a loop that reports every step stops there.
   */
  progress(value: number, max: number, preview?: PreviewImage): void;
  /** Messages go to the host's log with the node id attached. */
  log: Logger;
  paths: HostPaths;
  /**
   * A builder for an expansion: node ids it makes are prefixed with `<this node>.<call>.<n>.`, so they are
   * unique and the same on every run (ComfyUI's GraphBuilder with its default prefix).
   */
  graph(): GraphBuilderLike;
}

/** What `ctx.graph()` returns; the class is `GraphBuilder` in `graph-builder.ts`. */
export interface GraphBuilderLike {
  readonly prefix: string;
  node(classType: string, inputs?: Record<string, unknown>, id?: string): GraphBuilderNodeLike;
  lookup(id: string): GraphBuilderNodeLike | undefined;
  finalize(): Record<string, ExpandedNode>;
}

export interface GraphBuilderNodeLike {
  /** The full (prefixed) id. */
  readonly id: string;
  out(slot: number): PromptLink;
  set(input: string, value: unknown): this;
  overrideDisplayId(id: string): this;
}

/** What `validate` receives: the constant (widget) inputs; linked inputs are absent (not known yet). */
export type ValidateInputs<I extends InputsShape> = { [K in keyof I]?: ValueOf<I[K]> };

/**
 * A node feeding the one being validated, as validation knows it before anything runs: its class and its
 * constant inputs. Only nodes whose own checks passed are shown (so their constants are converted and in range),
 * which also means a walk upstream never goes round a cycle.
 */
export interface UpstreamNode {
  readonly id: string;
  readonly classType: string;
  /** Which of its outputs the link reads. */
  readonly output: number;
  /** Its constant inputs, converted as `validate` receives them. */
  readonly constants: Readonly<Record<string, unknown>>;
  /** The node feeding one of its inputs (undefined: a constant, not connected, or a node with errors). */
  linked(input: string): UpstreamNode | undefined;
}

/**
 * What `validate` is told besides its constants: where it runs, and read access to the nodes upstream, so a
 * check that needs two nodes' settings (a sampler's latent size and its model) can refuse a prompt when it is
 * queued rather than when it runs. Checks that cannot be decided statically (a value computed by a node) must
 * pass and leave the refusal to `execute`.
 */
export interface ValidateContext extends ComboContext {
  /** The id of the node being validated. */
  nodeId: string;
  /** The node feeding one of this node's inputs (undefined: a constant, not connected, or a node with errors). */
  linked(input: string): UpstreamNode | undefined;
  /** The type each linked input receives (its source output's type): ComfyUI's `input_types`. */
  inputTypes: Readonly<Record<string, string>>;
  /**
   * How each number constant was written in the prompt's JSON: 'int' (`1`) or 'float' (`1.0`, `1.5`), as
   * Python's json tells them apart (a prompt built in-process: by its value). For hooks that take inputs over.
   */
  numberKinds: Readonly<Record<string, 'int' | 'float'>>;
}

/**
 * What `fingerprint` is told besides its constants: the node, and the folders of the host that will run it, so a
 * node reading a file looks at the file it will load (the host's input or models folder first), not another.
 */
export interface FingerprintContext extends ComboContext {
  /** The id of the node being fingerprinted. */
  nodeId: string;
}

export interface NodeDefinition<
  I extends InputsShape = InputsShape,
  O extends readonly OutputSpec[] = readonly OutputSpec[],
  H extends HiddenShape = HiddenShape,
  L extends boolean = boolean,
> {
  /** The class type used in workflows; unique across all loaded packs. */
  id: string;
  displayName?: string;
  /** Slash-separated menu path, e.g. `sampling/tgate`. */
  category?: string;
  description?: string;
  inputs: I;
  hidden?: H;
  outputs: O;
  /** An output node is what a prompt is run for (SaveImage, PreviewImage). */
  outputNode?: boolean;
  /** Every input arrives as an array of all values (ComfyUI's `INPUT_IS_LIST`): no per-element mapping. */
  inputIsList?: L;
  /**
   * The node takes inputs it does not declare (ComfyUI's `**kwargs` with an any-key INPUT_TYPES, or V3's
   * `accept_all_inputs`): every key of its prompt entry reaches `execute`, constants as they are and links
   * resolved (their sources planned and run like any other link). Their types are not checked.
   */
  acceptsUndeclaredInputs?: boolean;
  /**
   * The node waits rather than computes (network, a timer, another process): it may run while other nodes run
   * (ComfyUI runs `async def` nodes so). Other nodes run one at a time.
   */
  concurrent?: boolean;
  /**
   * Its output must not be shared with another node with the same inputs (ComfyUI's `NOT_IDEMPOTENT`): the node
   * id is part of its cache key, as for a node taking `UNIQUE_ID`.
   */
  notIdempotent?: boolean;
  deprecated?: boolean;
  experimental?: boolean;
  /**
   * Checks constant inputs before anything runs. Return `true` when valid, or a message saying what is
   * wrong (or throw a NodeInputError naming the input); it is reported as `custom_validation_failed`. Runs
   * only when the node's own inputs passed the built-in checks; `context.linked` shows the nodes upstream.
   */
  validate?(inputs: ValidateInputs<I>, context: ValidateContext): true | string | Promise<true | string>;
  /**
   * ComfyUI's VALIDATE_INPUTS taking an input as an argument: the inputs `validate` checks itself. For them the
   * built-in checks are skipped (a constant reaches the hook as the prompt has it: no conversion, no min/max or
   * combo check; a link of any type is accepted, its type in `context.inputTypes`). `'all'`: every input.
   */
  validatesInputs?: readonly string[] | 'all';
  /**
   * Extra cache key. When the node's output depends on something outside its inputs (a file on disk, the
   * clock), return a value that changes when that does: the node re-runs whenever it differs from last time.
   * Return `NaN` to run every time (ComfyUI's convention). Receives the resolved non-lazy constant inputs.
   */
  fingerprint?(inputs: ValidateInputs<I>, context: FingerprintContext): unknown | Promise<unknown>;
  /**
   * ComfyUI's `check_lazy_status`: called before `execute` with the values available now (a lazy input not yet
   * evaluated is `undefined`; one already available, e.g. cached, is passed as its value); returns the names of
   * the lazy inputs it needs. Those are evaluated and the hook is asked again, until it asks for nothing new.
   * `execute` then reads lazy inputs as usual (`await inputs.x()`), at once for the evaluated ones.
   */
  checkLazyStatus?(inputs: LazyStatusInputs<I, H>, ctx: ExecutionContext): readonly string[] | Promise<readonly string[]>;
  execute(
    inputs: InputValues<I, H, L>,
    ctx: ExecutionContext,
  ): Promise<OutputValues<O> | NodeResult<O> | ExpansionResult> | OutputValues<O> | NodeResult<O> | ExpansionResult;
}

/** A definition with its generic parameters erased, as stored in the registry. */
export type AnyNodeDefinition = NodeDefinition<InputsShape, readonly OutputSpec[], HiddenShape, boolean>;

/**
 * Declares a node. Only an identity function: it exists so TypeScript infers the input and output types
 * from the literal and checks `execute` against them.
 */
export function defineNode<
  const I extends InputsShape,
  const O extends readonly OutputSpec[],
  const H extends HiddenShape = {},
  const L extends boolean = false,
>(definition: NodeDefinition<I, O, H, L>): AnyNodeDefinition {
  return definition as unknown as AnyNodeDefinition;
}

/** True if a value returned by `execute` is the `{ outputs, ui }` form rather than a bare outputs array. */
export function isNodeResult(value: unknown): value is NodeResult<readonly OutputSpec[]> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** True if a value returned by `execute` expands the node into a sub-graph. */
export function isExpansionResult(value: unknown): value is ExpansionResult {
  return isNodeResult(value) && 'expand' in value && (value as { expand?: unknown }).expand != null;
}

/**
 * ComfyUI's ExecutionBlocker: returned as an output value, it stops the nodes that consume it (for that list
 * element) from running; their outputs are blockers too, so everything downstream is skipped. With a message,
 * the first node it stops reports an `execution_error` ("Execution Blocked: <message>") and the rest of the
 * prompt runs on; without one, it blocks silently (an output switched off).
 */
export class ExecutionBlocker {
  constructor(readonly message: string | null = null) {}
}
