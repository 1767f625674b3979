/**
 * The sampling loop, with per-step planning hooks.
 *
 * Plain path (no planner): every step runs the UNet variant 'full' once. With cfg != 1 the batch is
 * [uncond, cond] (the latent twice, the negative and the positive embeddings: one UNet call of batch 2B, as
 * ComfyUI and diffusers do) and the two halves are mixed: uncond + cfg * (cond - uncond). With cfg == 1 only the
 * cond branch runs (batch B), since the mix would return it unchanged.
 *
 * Planned path: a StepPlanner decides, before each step, which variant runs, on which branch(es), with which
 * extra inputs, and which extra outputs to bring back; after the step it receives those outputs. This is the
 * extension point for TGATE and DeepCache, which keep their caches in the planner:
 *
 *   TGATE, step < gate - 1:  { variant: 'capture', batch: 'cfg' }                 (cross-attn computed)
 *   TGATE, step == gate - 1: { variant: 'capture', batch: 'cfg', captureOutputs: [attn2 outputs...] }
 *                            afterStep: cache = meanOfHalves(output) for each captured tensor
 *   TGATE, step >= gate:     { variant: 'reuse', batch: 'uncond' (paper) or 'cond' (ComfyUI port),
 *                              extraInputs: { <attn2 output name>: cached, ... } }   (no CFG mix: raw output)
 *   DeepCache:               full steps capture the deep feature, shallow steps feed it to a 'shallow' variant.
 *
 * The loop itself knows nothing about attention: it builds the standard feeds for the chosen batch, adds the
 * planner's extra inputs verbatim (they must match the batch the plan chose: 2B rows for 'cfg', B otherwise),
 * and applies CFG only when the batch is 'cfg'.
 *
 * Wrappers (wrappers/types.ts) chain around the whole run, each UNet call, each CFG mix and each step's
 * prediction; with none, every call is made directly, so unwrapped sampling is unchanged bit for bit.
 */
import { concatBatch, guidance, splitBatch, zeros, type Tensor } from './tensor.ts';
import { canShareCall, concatCrossAttn, runHalvesSeparately } from './cross-attn-batch.ts';
import { blendMasked, concatChannels } from './inpaint.ts';
import type { Scheduler, StepNoise } from './schedulers/types.ts';
import type { FeedValue } from './sessions.ts';
import { FULL_VARIANT, timestepTensor, type UnetRunner } from './unet-runner.ts';
import { composeWrappers } from './wrappers/chain.ts';
import { isPatchError, PatchError } from './wrappers/extensions.ts';
import { activeEntries, cropArea, dualGuidance, entryWeights, groupCalls, WeightedSum, type RegionalConditioning, type Side } from './regional-conditioning.ts';
import { isKDiffusionSampling, runKDiffusion, type KDiffusionSampling } from './k-sampling-loop.ts';
import { wrappersAt, type StepValues, type CfgCall, type PredictionCall, type SamplingWrappers, type UnetCall, type UnetOutputs } from './wrappers/types.ts';

/**
 * Which branches one UNet call computes:
 * - 'cfg':    [uncond, cond], batch 2B; the prediction is the CFG mix of the halves.
 * - 'cond':   the positive prompt only, batch B; the prediction is the raw output.
 * - 'uncond': the negative prompt only, batch B; the prediction is the raw output.
 */
export type CfgBatch = 'cfg' | 'cond' | 'uncond';
const BATCHES: readonly CfgBatch[] = ['cfg', 'cond', 'uncond'];

/** What a planner knows when it plans step i. */
export interface StepContext {
  /** 0-based step index (TGATE's `cur`). */
  readonly step: number;
  readonly totalSteps: number;
  /** The UNet timestep of this step (integer training timestep). */
  readonly timestep: number;
  /** Noise level sigma at the start of this step. */
  readonly sigma: number;
  readonly cfg: number;
  /** What the plain loop would run: 'cfg' when cfg != 1, else 'cond'. */
  readonly defaultBatch: CfgBatch;
  /** True when a negative conditioning was given (needed by 'cfg' and 'uncond'). */
  readonly hasNegative: boolean;
  /** The latent batch B (a 'cfg' call has 2B rows). */
  readonly batchSize: number;
  /** [B, C, h, w] */
  readonly latentShape: readonly number[];
  /** Keys the UnetRunner can run. */
  readonly variants: readonly string[];
}

/** A planner's decision for one step. */
export interface StepPlan {
  /** Key of a UNet variant of the runner ('full' is the plain UNet). */
  variant: string;
  batch: CfgBatch;
  /**
   * Inputs beyond sample / timestep / encoder_hidden_states (cached attention outputs, DeepCache's deep
   * feature). Their batch dimension must match the plan's batch: 2B rows for 'cfg' ([uncond, cond]), B else.
   */
  extraInputs?: Record<string, FeedValue>;
  /** Outputs of the variant to fetch besides the noise prediction; handed to afterStep(). */
  captureOutputs?: readonly string[];
}

/**
 * One model evaluation as the loops ask for it: the step's plan and context, the UNet input (`input`, the scaled
 * form of `modelSample`, what the model sees: an inpainting run's kept region already blended in), its timestep
 * and noise level, and the conversions between predictions and clean-latent estimates at that level.
 * `firstCall`: the first call of its step, whose captured outputs fill the planners' caches.
 */
export interface ModelEvaluation {
  readonly plan: StepPlan;
  readonly context: StepContext;
  readonly input: Tensor;
  readonly timestep: number;
  readonly convert: Pick<StepValues, 'toDenoised' | 'fromDenoised'>;
  readonly modelSample: Tensor;
  readonly sigma: number;
  readonly firstCall: boolean;
}

/** Its result: the guided prediction (model units), the negative's own prediction when it ran, the captures. */
export interface Evaluated {
  modelOutput: Tensor;
  uncond?: Tensor;
  captured: Record<string, Tensor>;
}

/** What afterStep receives. */
export interface StepOutcome {
  readonly plan: StepPlan;
  /** The captured outputs, by name, with the batch rows of the plan's batch (2B for 'cfg'). */
  readonly outputs: Readonly<Record<string, Tensor>>;
  /** The prediction the scheduler used (after the CFG mix for 'cfg'), [B, C, h, w]. */
  readonly modelOutput: Tensor;
  readonly context: StepContext;
}

/**
 * Per-step hooks. Create one planner per sampling run (it may keep caches between steps). planStep is
 * called before step i; afterStep after the UNet ran and before the scheduler advances. Either may be async.
 * Errors thrown here stop sampling and propagate to the caller.
 */
export interface StepPlanner {
  planStep(step: number, context: StepContext): StepPlan | Promise<StepPlan>;
  afterStep?(step: number, outcome: StepOutcome): void | Promise<void>;
  /**
   * For runs with several conditionings per side (SampleOptions.regions), whose UNet calls are groups of
   * conditioning entries rather than one [uncond, cond] batch: a planner with caches of its own for the call
   * group `key`, asked for each of that group's calls. A planner without it cannot steer such runs (refused).
   */
  callPlanner?(key: string): CallPlanner;
}

/** One call group's planner (StepPlanner.callPlanner): the plan of step i for a call of `rows` rows. */
export interface CallPlanner {
  planCall(step: number, rows: number, totalSteps: number): { variant: string; extraInputs: Record<string, FeedValue>; captureOutputs: string[] };
  /** The captured outputs of the group's first call of step i. */
  afterCall(step: number, outputs: Readonly<Record<string, Tensor>>): void;
}

/** Thrown when sampling stops on request. Its `name` is 'InterruptedError', like @gategraph/core's. */
export class SamplingInterruptedError extends Error {
  override name = 'InterruptedError';
  constructor(readonly step: number, readonly totalSteps: number) {
    super(`Sampling was interrupted before step ${step + 1} of ${totalSteps}`);
  }
}

export interface SampleOptions {
  unet: UnetRunner;
  /**
   * Created for this run (schedulers keep per-run state): a one-call-per-step Scheduler, or a k-diffusion
   * sampler function with its noise levels (k-sampling-loop.ts), which may call the model several times a step.
   */
  scheduler: Scheduler | KDiffusionSampling;
  /** Positive text embedding [1 or B, L, D]. */
  positive: Tensor;
  /**
   * Negative text embedding [1 or B, L', D]; required when cfg != 1 (or a plan asks for 'uncond'). L' may differ
   * from the positive's L (prompts of several 77-token chunks): see cross-attn-batch.ts.
   */
  negative?: Tensor;
  /**
   * Several conditionings per side (ComfyUI's conditioning lists: ConditioningCombine, areas, masks, strengths,
   * timestep ranges), evaluated as regional-conditioning.ts says. When given, every model call uses them instead
   * of positive / negative, which still give the shapes the checks read (pass the first entries' contexts).
   * Step planners (TGATE, DeepCache) do not run with them: such a run is refused.
   */
  regions?: RegionalConditioning;
  /** Classifier-free guidance scale; 1 = no guidance (cond branch only). */
  cfg: number;
  /** Starting latent [B, C, h, w]: zeros for txt2img, the encoded image for img2img (denoise < 1). */
  latent: Tensor;
  /** Initial Gaussian noise shaped like the latent (e.g. randn(shape, seed) from noise.ts). */
  noise: Tensor;
  /** Noise for stochastic samplers' steps (euler_ancestral, lcm, ddim with eta > 0): createAncestralNoiseGenerator(seed). */
  stepNoise?: StepNoise;
  planner?: StepPlanner;
  /**
   * Inpainting with ComfyUI's noise mask (its KSamplerX0Inpaint): [1 or B, 1 or C, h, w] in 0..1 at the
   * latent's size, 1 = denoise here, 0 = keep `latent`. Before each UNet call the kept region is `latent`
   * noised to the step's level (with `noise`); after it, the kept region's clean-latent estimate is `latent`.
   */
  denoiseMask?: Tensor;
  /**
   * Channels appended to the sample at every UNet call (ComfyUI's c_concat): an inpainting UNet's mask and
   * masked-image latent, [1 or B, C', h, w]. The UNet's `sample` input then has C + C' channels.
   */
  concatLatent?: Tensor;
  /** An LCM UNet's `timestep_cond` (guidanceScaleEmbedding), [1, D]: fed to every call, one row per batch row. */
  timestepCond?: Tensor;
  /**
   * SDXL's added conditioning of each prompt (the UNet's text_embeds [1, P] and time_ids [1, 5 or 6]): fed with
   * the rows of its prompt, as encoder_hidden_states is. Required when the UNet takes them.
   */
  added?: { positive: AddedConditioning; negative?: AddedConditioning };
  /**
   * Called after every step. `preview` is the model's current estimate of the clean latent (scaled latent
   * space, [B, C, h, w]), only when `previews` is true; turn it into RGB with latentPreviewRgb().
   */
  onProgress?: (step: number, total: number, preview?: Tensor) => void;
  previews?: boolean;
  /** Checked before every step: an aborted signal stops the run with SamplingInterruptedError. */
  signal?: AbortSignal;
  /** Same as signal, as a callback (for executors with their own interruption flag). */
  shouldInterrupt?: () => boolean;
  /**
   * Wrappers of the run, its UNet calls, CFG mixes and predictions, one set per extension, the first
   * outermost (samplingExtensions().wrappersFor makes them from a MODEL's patches). The step-level chains are
   * taken from this list as given to sample(), whatever a `sample` wrapper passes on.
   */
  wrappers?: readonly SamplingWrappers[];
}

/** One prompt's SDXL added conditioning (sdxl.ts). */
export interface AddedConditioning {
  textEmbeds: Tensor;
  timeIds: Tensor;
}

export interface SampleResult {
  /** The final latent [B, C, h, w]. */
  latent: Tensor;
  /** The plans that ran, one per step (the plain path records { variant: 'full', batch }). */
  plans: StepPlan[];
  /** Wall time of each UNet call, ms (one per step, except for samplers that call the model more often). */
  unetMs: number[];
}

function checkShape(t: Tensor, name: string, rank: number): void {
  if (t.shape.length !== rank) throw new RangeError(`sample: ${name} should have ${rank} dimensions; got [${t.shape.join(', ')}]`);
}

/** [1, L, D] -> [B, L, D] by repetition; [B, L, D] unchanged. */
function expandBatch(t: Tensor, batch: number, name: string): Tensor {
  const b = t.shape[0]!;
  if (b === batch) return t;
  if (b === 1) return concatBatch(new Array<Tensor>(batch).fill(t));
  throw new RangeError(`sample: ${name} has batch ${b} but the latent has batch ${batch}; give one embedding or one per latent`);
}

export function sample(options: SampleOptions): Promise<SampleResult> {
  const outer = wrappersAt(options.wrappers, 'sample');
  const loop = (o: SampleOptions) => runLoop(o, options.wrappers);
  return outer.length ? composeWrappers(loop, outer)(options) : loop(options);
}

async function runLoop(options: SampleOptions, wrappers: readonly SamplingWrappers[] | undefined): Promise<SampleResult> {
  const { unet, scheduler, cfg, planner } = options;
  const io = unet.io;
  checkShape(options.latent, 'latent', 4);
  checkShape(options.positive, 'positive', 3);
  if (options.negative) checkShape(options.negative, 'negative', 3);
  const [B, C, h, w] = options.latent.shape as [number, number, number, number];
  if (options.noise.data.length !== options.latent.data.length) {
    throw new RangeError(`sample: noise [${options.noise.shape.join(', ')}] must have the latent's shape [${options.latent.shape.join(', ')}]`);
  }
  if (C !== io.latentChannels) {
    throw new RangeError(`sample: the latent has ${C} channels but the UNet works on ${io.latentChannels}`);
  }
  const extraChannels = options.concatLatent?.shape[1] ?? 0;
  if (C + extraChannels !== io.sampleChannels) {
    throw new RangeError(
      io.sampleChannels > io.latentChannels
        ? `sample: this UNet takes ${io.sampleChannels - io.latentChannels} channels beside the latent's ${io.latentChannels} (an inpainting UNet: mask and masked-image latent); give them as concatLatent`
        : `sample: the UNet's sample input has ${io.sampleChannels} channels, not ${C} + ${extraChannels}`,
    );
  }
  if (io.added && (!options.added || (cfg !== 1 && !options.added.negative))) {
    throw new RangeError(`sample: this UNet takes ${io.added.textEmbeds} and ${io.added.timeIds} (SDXL's pooled text and size conditioning): give them for ${options.added ? 'the negative prompt too' : 'each prompt'} (added)`);
  }
  if (io.timestepCond && !options.timestepCond) {
    throw new RangeError(`sample: this UNet takes ${io.timestepCond.name} (an LCM UNet's guidance embedding): give timestepCond (guidanceScaleEmbedding)`);
  }
  if (io.fixedLatentSize && (io.fixedLatentSize[0] !== h || io.fixedLatentSize[1] !== w)) {
    const [fh, fw] = io.fixedLatentSize;
    throw new RangeError(`sample: this UNet was exported for ${fw}x${fh} latents only; got a ${w}x${h} latent. Use the model's native size`);
  }
  if (!(Number.isFinite(cfg) && cfg >= 0)) throw new RangeError(`sample: cfg must be a number >= 0 (got ${cfg})`);
  if (!isKDiffusionSampling(scheduler) && scheduler.stochastic && options.stepNoise === undefined) {
    throw new Error(`sample: the ${scheduler.sampler} sampler draws fresh noise at each step: pass stepNoise (e.g. createAncestralNoiseGenerator(seed))`);
  }
  // cfg 1 needs only the positive prompt, unless a cfg++ sampler reads the negative's own estimate.
  const needsUncond = isKDiffusionSampling(scheduler) && scheduler.needsUncond === true;
  const defaultBatch: CfgBatch = cfg === 1 && !needsUncond ? 'cond' : 'cfg';
  if (defaultBatch === 'cfg' && !options.negative) {
    throw new Error(`sample: cfg ${cfg} needs a negative conditioning (use cfg 1 to sample without one)`);
  }
  const pos = expandBatch(options.positive, B, 'positive');
  const neg = options.negative ? expandBatch(options.negative, B, 'negative') : undefined;
  if (neg && neg.shape[2] !== pos.shape[2]) {
    throw new RangeError(`sample: positive [${pos.shape.join(', ')}] and negative [${neg.shape.join(', ')}] embeddings differ in width`);
  }
  // Prompts of different lengths (77 vs 154 tokens) share a 'cfg' call as ComfyUI's CONDCrossAttn decides, else
  // that step runs as two calls (cross-attn-batch.ts).
  const cfgShared = !neg || canShareCall(neg.shape, pos.shape);
  // The encoder_hidden_states of each batch kind, built once and reused every step.
  const context: Partial<Record<CfgBatch, Tensor>> = {};
  const contextFor = (batch: CfgBatch): Tensor => {
    const cached = context[batch];
    if (cached) return cached;
    if (batch !== 'cond' && !neg) throw new Error(`sample: a "${batch}" step needs a negative conditioning, and none was given`);
    const t = batch === 'cond' ? pos : batch === 'uncond' ? neg! : concatCrossAttn([neg!, pos]);
    context[batch] = t;
    return t;
  };

  // SDXL's text_embeds and time_ids of each batch kind, rows as encoder_hidden_states', built once.
  const addedFeeds: Partial<Record<CfgBatch, Record<string, Tensor>>> = {};
  const addedFor = (batch: CfgBatch): Record<string, Tensor> => {
    const added = io.added!;
    const cached = addedFeeds[batch];
    if (cached) return cached;
    const of = (c: AddedConditioning | undefined, which: string): AddedConditioning => {
      if (!c) throw new Error(`sample: a "${batch}" step needs the ${which} prompt's added conditioning, and none was given`);
      return { textEmbeds: expandBatch(c.textEmbeds, B, `${which} text_embeds`), timeIds: expandBatch(c.timeIds, B, `${which} time_ids`) };
    };
    const parts = batch === 'cond' ? [of(options.added!.positive, 'positive')] : batch === 'uncond' ? [of(options.added!.negative, 'negative')] : [of(options.added!.negative, 'negative'), of(options.added!.positive, 'positive')];
    const feedsOf = { [added.textEmbeds]: concatBatch(parts.map((p) => p.textEmbeds)), [added.timeIds]: concatBatch(parts.map((p) => p.timeIds)) };
    addedFeeds[batch] = feedsOf;
    return feedsOf;
  };

  // An LCM UNet's guidance embedding, one row per batch row: built once per row count (the same every step).
  const timestepConds = new Map<number, Tensor>();
  const timestepCondFor = (embedding: Tensor, rows: number): Tensor => {
    let t = timestepConds.get(rows);
    if (!t) timestepConds.set(rows, (t = expandBatch(embedding, rows, 'timestepCond')));
    return t;
  };
  const mask = options.denoiseMask;
  // The step-level chains, built once; undefined where nothing wraps that point (the direct call is made).
  const unetWrappers = wrappersAt(wrappers, 'unet');
  const cfgWrappers = wrappersAt(wrappers, 'cfg');
  const predictionWrappers = wrappersAt(wrappers, 'prediction');
  const callUnet = unetWrappers.length
    ? composeWrappers((call: UnetCall): Promise<UnetOutputs> => unetCall(unet, call, { contextName: io.encoderHiddenStates, contexts: [neg!, pos] }), unetWrappers)
    : undefined;
  const mixCfg = cfgWrappers.length ? composeWrappers((call: CfgCall) => Promise.resolve(guidance(call.uncond, call.cond, call.cfg)), cfgWrappers) : undefined;
  const finishPrediction = predictionWrappers.length ? composeWrappers((call: PredictionCall) => Promise.resolve(call.prediction), predictionWrappers) : undefined;
  const plans: StepPlan[] = [];
  const unetMs: number[] = [];

  /**
   * One model evaluation with a step's plan: the feeds of its batch, the UNet call (wrapped), the CFG mix and
   * the prediction wrappers. `modelSample` is what the model sees (the kept region already blended in for
   * inpainting), `input` its scaled form; `convert` turns predictions into clean-latent estimates and back.
   */
  const evaluate = async (call: ModelEvaluation): Promise<Evaluated> => {
    const { plan, context: ctx, input, timestep, convert, modelSample } = call;
    const i = ctx.step;
    const total = ctx.totalSteps;
    if (options.regions) return evaluateRegions(call);
    if (!BATCHES.includes(plan.batch)) {
      throw new Error(`Sampling step ${i + 1} of ${total}: the planner chose batch "${String(plan.batch)}"; valid: ${BATCHES.join(', ')}`);
    }
    const withConcat = options.concatLatent ? concatChannels(input, options.concatLatent) : input;
    const rows = plan.batch === 'cfg' ? 2 * B : B;
    // A CFG step whose prompts cannot share one call runs as two calls of B rows each.
    const separate = plan.batch === 'cfg' && !cfgShared;
    const rowsPerCall = separate ? B : rows;
    if (io.fixedBatch !== undefined && io.fixedBatch !== rowsPerCall) {
      throw new Error(`Sampling step ${i + 1} of ${total}: this UNet was exported for batch ${io.fixedBatch} only, and a "${plan.batch}" step of a latent batch of ${B} runs ${rowsPerCall} rows; re-export the UNet with a dynamic batch dimension`);
    }
    const feeds: Record<string, FeedValue> = {
      [io.sample]: plan.batch === 'cfg' ? concatBatch([withConcat, withConcat]) : withConcat,
      [io.timestep]: timestepTensor(io, timestep, rows),
    };
    if (!separate) feeds[io.encoderHiddenStates] = contextFor(plan.batch);
    if (io.timestepCond && options.timestepCond) feeds[io.timestepCond.name] = timestepCondFor(options.timestepCond, rows);
    if (io.added) Object.assign(feeds, addedFor(plan.batch));
    for (const [name, value] of Object.entries(plan.extraInputs ?? {})) {
      if (name in feeds) throw new Error(`Sampling step ${i + 1} of ${total}: the planner's extra input "${name}" would replace a standard UNet input`);
      feeds[name] = value;
    }
    const capture = (plan.captureOutputs ?? []).filter((n) => n !== io.outSample);
    const started = performance.now();
    let out: Record<string, Tensor>;
    try {
      const fetches = [io.outSample, ...capture];
      out = callUnet
        ? await callUnet({ variant: plan.variant, feeds, fetches, rows, plan, context: ctx })
        : separate
          ? await runHalvesSeparately(unet, plan.variant, feeds, { rows, contextName: io.encoderHiddenStates, contexts: [neg!, pos] }, fetches)
          : await unet.run(plan.variant, feeds, fetches);
    } catch (err) {
      // A wrapper's PatchError is the user's (a setting that cannot run): it stays as it is.
      if (isPatchError(err)) throw err;
      // say which step and plan failed (ORT's own messages name only a node deep in the graph)
      const msg = err instanceof Error ? err.message : String(err);
      throw new Error(`Sampling step ${i + 1} of ${total} (UNet variant "${plan.variant}", batch "${plan.batch}", ${rows} rows) failed: ${msg}`, { cause: err });
    }
    unetMs.push(performance.now() - started);
    const raw = out[io.outSample]!;
    if (raw.shape[0] !== rows) {
      throw new Error(`Sampling step ${i + 1} of ${total}: UNet variant "${plan.variant}" returned batch ${raw.shape[0]} for a "${plan.batch}" step of ${rows} rows`);
    }
    const stepValues = mixCfg || finishPrediction ? { plan, context: ctx, sample: modelSample, ...convert } : undefined;
    let modelOutput: Tensor;
    let uncond: Tensor | undefined;
    if (plan.batch === 'cfg') {
      const [u, cond] = splitBatch(raw, 2) as [Tensor, Tensor];
      uncond = u;
      modelOutput = mixCfg ? await mixCfg({ ...stepValues!, uncond: u, cond, cfg }) : guidance(u, cond, cfg);
    } else {
      modelOutput = raw;
      if (plan.batch === 'uncond') uncond = raw;
    }
    if (finishPrediction) modelOutput = await finishPrediction({ ...stepValues!, prediction: modelOutput });
    const captured: Record<string, Tensor> = {};
    for (const n of capture) captured[n] = out[n]!;
    return { modelOutput, ...(uncond ? { uncond } : {}), captured };
  };

  if (options.regions && planner && !planner.callPlanner) {
    throw new PatchError(
      'the step planner of this run does not run with several conditionings per prompt (ConditioningCombine, ConditioningSetArea / SetMask, ' +
        'strengths, timestep ranges, DualCFGGuider): sample this graph without it, or give each sampler one conditioning',
    );
  }

  // Call groups are named by their entries (their place in the lists) and crop, so a group keeps its caches.
  const entryIds = new Map<unknown, string>();
  if (options.regions) {
    const { positive, negative, dual } = options.regions;
    for (const [side, list] of [['p', positive], ['n', negative ?? []], ['m', dual?.middle ?? []]] as const) list.forEach((e, k) => entryIds.set(e, `${side}${k}`));
  }
  const callPlanners = new Map<string, CallPlanner>();

  /** One model evaluation with several conditionings per side (see regional-conditioning.ts). */
  const evaluateRegions = async ({ plan, context: ctx, input, timestep, convert, modelSample, sigma, firstCall }: ModelEvaluation): Promise<Evaluated> => {
    const regions = options.regions!;
    const sides: Side[] = regions.dual
      ? ['negative', 'middle', 'positive']
      : plan.batch === 'cfg' ? ['negative', 'positive'] : plan.batch === 'uncond' ? ['negative'] : ['positive'];
    const active = activeEntries(regions, sides, sigma, h, w);
    if (io.fixedLatentSize && active.some((a) => a.area.height !== h || a.area.width !== w)) {
      throw new Error('sample: this UNet was exported for one latent size only, and a conditioning area needs it to run on a part of the latent; re-export the UNet with dynamic sizes');
    }
    if (io.fixedBatch !== undefined && io.fixedBatch % B !== 0) {
      throw new Error(`sample: this UNet was exported for batch ${io.fixedBatch} only, which does not hold whole copies of a latent batch of ${B}`);
    }
    const maxBlocks = io.fixedBatch !== undefined ? io.fixedBatch / B : Infinity;
    const sums: Record<Side, WeightedSum> = { positive: new WeightedSum([B, C, h, w]), negative: new WeightedSum([B, C, h, w]), middle: new WeightedSum([B, C, h, w]) };
    const withConcat = options.concatLatent ? concatChannels(input, options.concatLatent) : input;
    for (const group of groupCalls(active, maxBlocks)) {
      const rows = group.length * B;
      // Each group of entries keeps its own caches (TGATE's attention, DeepCache's deep feature).
      const key = `${group.map((g) => entryIds.get(g.entry)).join('+')}@${group[0]!.area.y},${group[0]!.area.x}`;
      let callPlanner = callPlanners.get(key);
      if (!callPlanner && planner?.callPlanner) callPlanners.set(key, (callPlanner = planner.callPlanner(key)));
      const callPlan = callPlanner?.planCall(ctx.step, rows, ctx.totalSteps);
      const feeds: Record<string, FeedValue> = {
        [io.sample]: concatBatch(group.map((g) => cropArea(withConcat, g.area))),
        [io.timestep]: timestepTensor(io, timestep, rows),
        [io.encoderHiddenStates]: concatCrossAttn(group.map((g) => expandBatch(g.entry.context, B, `${g.side} conditioning`))),
      };
      if (io.timestepCond && options.timestepCond) feeds[io.timestepCond.name] = timestepCondFor(options.timestepCond, rows);
      if (io.added) {
        const added = group.map((g) => {
          if (!g.entry.added) throw new RangeError(`sample: a ${g.side} conditioning has no SDXL text_embeds / time_ids, which this UNet takes`);
          return { textEmbeds: expandBatch(g.entry.added.textEmbeds, B, 'text_embeds'), timeIds: expandBatch(g.entry.added.timeIds, B, 'time_ids') };
        });
        feeds[io.added.textEmbeds] = concatBatch(added.map((a) => a.textEmbeds));
        feeds[io.added.timeIds] = concatBatch(added.map((a) => a.timeIds));
      }
      const variant = callPlan?.variant ?? plan.variant;
      Object.assign(feeds, callPlan?.extraInputs);
      const fetches = [io.outSample, ...(callPlan?.captureOutputs ?? []).filter((n) => n !== io.outSample)];
      const unetPlan: StepPlan = { variant, batch: 'cond', ...(callPlan ? { extraInputs: callPlan.extraInputs, captureOutputs: callPlan.captureOutputs } : {}) };
      const started = performance.now();
      let out: Record<string, Tensor>;
      try {
        out = callUnet
          ? await callUnet({ variant, feeds, fetches, rows, plan: unetPlan, context: ctx })
          : await unet.run(variant, feeds, fetches);
      } catch (err) {
        if (isPatchError(err)) throw err;
        const msg = err instanceof Error ? err.message : String(err);
        throw new Error(`Sampling step ${ctx.step + 1} of ${ctx.totalSteps} (${group.length} conditioning${group.length > 1 ? 's' : ''}, ${rows} rows) failed: ${msg}`, { cause: err });
      }
      unetMs.push(performance.now() - started);
      if (callPlanner && firstCall) callPlanner.afterCall(ctx.step, Object.fromEntries(fetches.slice(1).map((n) => [n, out[n]!])));
      const predictions = splitBatch(out[io.outSample]!, group.length);
      group.forEach((g, k) => sums[g.side].add(predictions[k]!, entryWeights(g, B, h, w), g.area));
    }
    // Where no entry has weight ComfyUI's clean-latent estimate is 0.
    const uncovered = () => convert.fromDenoised(zeros([B, C, h, w]));
    const cond = sides.includes('positive') ? sums.positive.mean(uncovered) : undefined;
    const uncond = sides.includes('negative') ? sums.negative.mean(uncovered) : undefined;
    const stepValues = mixCfg || finishPrediction ? { plan, context: ctx, sample: modelSample, ...convert } : undefined;
    let modelOutput: Tensor;
    if (regions.dual) modelOutput = dualGuidance(uncond!, sums.middle.mean(uncovered), cond!, regions.dual);
    else if (plan.batch === 'cfg') modelOutput = mixCfg ? await mixCfg({ ...stepValues!, uncond: uncond!, cond: cond!, cfg }) : guidance(uncond!, cond!, cfg);
    else modelOutput = (cond ?? uncond)!;
    if (finishPrediction) modelOutput = await finishPrediction({ ...stepValues!, prediction: modelOutput });
    return { modelOutput, ...(uncond ? { uncond } : {}), captured: {} };
  };

  const stepContext = (i: number, total: number, timestep: number, sigma: number): StepContext => ({
    step: i,
    totalSteps: total,
    timestep,
    sigma,
    cfg,
    defaultBatch,
    hasNegative: neg !== undefined,
    batchSize: B,
    latentShape: [B, C, h, w],
    variants: unet.variants,
  });
  const planFor = async (i: number, ctx: StepContext): Promise<StepPlan> => {
    // With several conditionings the call groups are planned one by one (callPlanner), not the step.
    const plan: StepPlan = planner && !options.regions ? await planner.planStep(i, ctx) : { variant: FULL_VARIANT, batch: defaultBatch };
    plans.push(plan);
    return plan;
  };

  if (isKDiffusionSampling(scheduler)) {
    const latent = await runKDiffusion(scheduler, options, { stepContext, planFor, evaluate, interrupted: (i, total) => new SamplingInterruptedError(i, total) });
    return { latent, plans, unetMs };
  }

  const total = scheduler.timesteps.length;
  let x = scheduler.addNoise(options.latent, options.noise);
  for (let i = 0; i < total; i++) {
    if (options.signal?.aborted || options.shouldInterrupt?.()) throw new SamplingInterruptedError(i, total);
    const ctx = stepContext(i, total, scheduler.timesteps[i]!, scheduler.sigmas[i]!);
    const plan = await planFor(i, ctx);
    // Inpainting: outside the mask the model sees the original latent at this step's noise level.
    const modelSample = mask ? blendMasked(x, scheduler.noised(options.latent, options.noise, i), mask) : x;
    const scaled = scheduler.scaleModelInput(modelSample, i);
    const sampleAtStep = x;
    const convert = {
      toDenoised: (prediction: Tensor) => scheduler.denoised(prediction, i, sampleAtStep),
      fromDenoised: (denoised: Tensor) => scheduler.modelOutputFor(denoised, i, sampleAtStep),
    };
    const evaluated = await evaluate({ plan, context: ctx, input: scaled, timestep: ctx.timestep, convert, modelSample: x, sigma: ctx.sigma, firstCall: true });
    let modelOutput = evaluated.modelOutput;
    if (planner?.afterStep) await planner.afterStep(i, { plan, outputs: evaluated.captured, modelOutput, context: ctx });
    if (mask) {
      // Outside the mask the clean-latent estimate is the original latent: the step then moves x toward it.
      const kept = blendMasked(scheduler.denoised(modelOutput, i, modelSample), options.latent, mask);
      modelOutput = scheduler.modelOutputFor(kept, i, x);
    }
    const preview = options.previews ? scheduler.denoised(modelOutput, i, x) : undefined;
    x = scheduler.step(modelOutput, i, x, options.stepNoise);
    options.onProgress?.(i + 1, total, preview);
  }
  return { latent: scheduler.finalLatent(x), plans, unetMs };
}

/** A UNet call as the loop makes it: one call, or the halves apart when the prompts cannot share one (no context fed). */
function unetCall(unet: UnetRunner, call: UnetCall, halves: { contextName: string; contexts: [Tensor, Tensor] }): Promise<UnetOutputs> {
  const separate = call.plan.batch === 'cfg' && !(halves.contextName in call.feeds);
  return separate
    ? runHalvesSeparately(unet, call.variant, { ...call.feeds }, { rows: call.rows, ...halves }, call.fetches)
    : unet.run(call.variant, { ...call.feeds }, call.fetches);
}
