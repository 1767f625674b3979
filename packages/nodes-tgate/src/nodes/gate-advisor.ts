/**
 * GateAdvisor: runs the prompt once (the plain sampler, same image as KSampler), records every cross-attention
 * (attn2) output at every step, and measures how much it still changes:
 *
 *   change(t) = mean over the attn2 modules of ||a_t - a_{t-1}|| / ||a_{t-1}||      (L2 norms, t = 1 .. T-1)
 *
 * Recommendation rule: the smallest gate step g (1 <= g <= T-1) such that change(t) < threshold for EVERY
 * t >= g. TGATE computes cross-attention up to step g - 1 (the gate, whose output is cached) and reuses it
 * from step g on; the rule asks that from there on no step would have changed the output by more than the
 * threshold relative to the step before. It bounds the per-step change, not the drift accumulated over
 * many steps, so treat it as a starting point and compare images. When the last change is still above the
 * threshold there is no such g: the advisor returns the step count (TGATE off) and says so.
 *
 * The recording is a `sample` wrapper handed to the sampler directly (no patch on the MODEL): it runs the
 * gated UNet variant with every module computed, so the run is the plain run, and collects the attn2 outputs.
 */
import { combo, defineNode, float, int, socket } from '@gategraph/core';
import {
  SAMPLER_NAMES,
  SCHEDULER_NAMES,
  captureAttentionStepper,
  prepareCachedUnet,
  type DiffusionModel,
  type SamplingWrappers,
  type Tensor,
} from '@gategraph/diffusion';
import { ModelRef } from '../types.ts';
import { drawLineChart } from '../tgate/plot.ts';
import { runSampler } from './ksampler.ts';
import { isModelSamplingPatch, stepPatches } from '../model-sampling.ts';

/** Collects the per-step relative change of the attn2 outputs. */
export class AttentionChangeProbe {
  #previous: Readonly<Record<string, Tensor>> | undefined;
  /** changes[t - 1] = change(t), t = 1 .. T-1. */
  readonly changes: number[] = [];
  modules = 0;

  record(outputs: Readonly<Record<string, Tensor>>): void {
    const names = Object.keys(outputs);
    this.modules = names.length;
    if (this.#previous) {
      let sum = 0;
      for (const name of names) sum += relativeChange(outputs[name]!, this.#previous[name]!);
      this.changes.push(sum / Math.max(1, names.length));
    }
    this.#previous = outputs;
  }
}

export function relativeChange(current: Tensor, previous: Tensor): number {
  let diff = 0;
  let base = 0;
  for (let i = 0; i < previous.data.length; i++) {
    const p = previous.data[i]!;
    const d = current.data[i]! - p;
    diff += d * d;
    base += p * p;
  }
  return base > 0 ? Math.sqrt(diff / base) : diff > 0 ? Infinity : 0;
}

/** The rule above: the first gate step from which every change stays under the threshold; undefined if none. */
export function recommendGate(changes: readonly number[], threshold: number): number | undefined {
  // changes[t - 1] is change(t); scan back from the last step while the change stays under the threshold.
  let g: number | undefined;
  for (let t = changes.length; t >= 1; t--) {
    if (changes[t - 1]! < threshold) g = t;
    else break;
  }
  return g;
}

/** Runs the sampling on the attn2-gated variant, every module computed, handing each step's attn2 outputs to `probe`. */
export function attentionProbeWrapper(model: DiffusionModel, probe: AttentionChangeProbe): SamplingWrappers {
  return {
    async sample(next, options) {
      const cached = await prepareCachedUnet(model, { attn2: true, attn1: false });
      try {
        const planner = captureAttentionStepper(cached.layout, 'attn2', (_step, outputs) => probe.record(outputs));
        return await next({ ...options, planner, unet: cached.runner });
      } finally {
        await cached.release();
      }
    },
  };
}

export const GateAdvisor = defineNode({
  id: 'GateAdvisor',
  displayName: 'TGATE Gate Advisor',
  category: 'sampling/tgate',
  description:
    'Helps choose TGATE\'s gate step for a prompt and sampler: runs the sampling once, measures after each step how much ' +
    'the cross-attention output still changed (relative to the step before, averaged over all cross-attention layers), ' +
    'plots it, and recommends the first step from which the change stays under the threshold. Cross-attention can be ' +
    'cached from there on with little effect on the image. Use the same settings as your KSampler.',
  inputs: {
    model: socket('MODEL', { tooltip: 'The model to measure (TGATE / DeepCache patches on it are ignored: the plain model is measured).' }),
    positive: socket('CONDITIONING', { tooltip: 'The prompt, as for the KSampler.' }),
    negative: socket('CONDITIONING', { tooltip: 'The negative prompt, as for the KSampler.' }),
    latent_image: socket('LATENT', { tooltip: 'The latent, as for the KSampler.' }),
    seed: int({ default: 0, min: 0, max: Number.MAX_SAFE_INTEGER, tooltip: 'Seed of the starting noise (use the KSampler\'s).' }),
    steps: int({ default: 25, min: 2, max: 10000, tooltip: 'Number of denoising steps (use the KSampler\'s: the gate is a step number).' }),
    cfg: float({ default: 8.0, min: 0.0, max: 100.0, step: 0.1, round: 0.01, tooltip: 'Guidance scale (use the KSampler\'s).' }),
    sampler_name: combo(SAMPLER_NAMES, { tooltip: 'Sampler (use the KSampler\'s).' }),
    scheduler: combo(SCHEDULER_NAMES, { tooltip: 'Scheduler (use the KSampler\'s).' }),
    threshold: float({
      default: 0.05,
      min: 0.001,
      max: 1.0,
      step: 0.005,
      round: 0.001,
      tooltip: 'Largest relative change per step (0.05 = 5%) that counts as settled. Lower = a later, safer gate; higher = an earlier, faster one.',
    }),
  },
  outputs: [
    { type: 'IMAGE', name: 'plot', tooltip: 'The change per step (blue), the threshold (dashed red) and the recommended gate (green). Connect to PreviewImage.' },
    { type: 'INT', name: 'gate_step', tooltip: 'The recommended gate step (the step count when the change never settles: TGATE off).' },
    { type: 'STRING', name: 'summary', tooltip: 'The measured changes and the recommendation, in words.' },
  ],
  async execute(inputs, ctx) {
    const probe = new AttentionChangeProbe();
    if (stepPatches(inputs.model).length) ctx.log.info('GateAdvisor measures the plain model: the patches on its MODEL input are not applied.');
    await runSampler(
      {
        // ModelSamplingDiscrete's override is how the model samples, not a speed-up: it stays.
        model: new ModelRef(inputs.model.model, inputs.model.patches.filter(isModelSamplingPatch)),
        seed: inputs.seed,
        steps: inputs.steps,
        cfg: inputs.cfg,
        sampler_name: inputs.sampler_name,
        scheduler: inputs.scheduler,
        positive: inputs.positive,
        negative: inputs.negative,
        latent_image: inputs.latent_image,
        denoise: 1,
      },
      ctx,
      { wrappers: [attentionProbeWrapper(inputs.model.model, probe)] },
    );
    const total = probe.changes.length + 1;
    const gate = recommendGate(probe.changes, inputs.threshold);
    const recommended = gate ?? total;
    const plot = drawLineChart({ values: probe.changes, firstX: 1, threshold: inputs.threshold, ...(gate !== undefined ? { marker: gate } : {}) });
    const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
    const table = probe.changes.map((c, i) => `${i + 1}: ${pct(c)}`).join(', ');
    const verdict =
      gate !== undefined
        ? `Recommended gate_step: ${gate} (of ${total} steps): from step ${gate} on the change stays under ${pct(inputs.threshold)}, ` +
          `so cross-attention is computed on steps 0..${gate - 1} and reused on ${total - gate} steps.`
        : `No gate recommended: the change is still ${pct(probe.changes[probe.changes.length - 1] ?? NaN)} at the last step, above ${pct(inputs.threshold)}. ` +
          `gate_step ${total} turns TGATE off; raise the threshold or the number of steps.`;
    const summary = `Cross-attention change per step (mean over ${probe.modules} layers), step: change — ${table}. ${verdict}`;
    ctx.log.info(verdict);
    return [plot, recommended, summary];
  },
});
