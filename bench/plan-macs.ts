/**
 * MACs per image of an ExecutionPlan, counted from the graphs its steps run (shared by bench/tgate.ts and
 * bench/tgate-sd15.ts). Each step runs one graph *form*: the UNet, or the UNet with cross-attention outputs
 * reused, self-attention outputs reused, DeepCache's shallow branch, or a mix. The form's graph is derived in
 * memory from the UNet (onnx-graph deriveModel, the same cut prepareCachedUnet makes) and counted by countMacs
 * at the step's batch (2 rows for a CFG step, 1 otherwise); forms and counts are cached.
 */
import {
  attentionOutputs,
  countMacs,
  deepFeature,
  deriveModel,
  discoverUNet,
  type ModelFile,
  type ModelProto,
  type UNetSizes,
  type UNetStructure,
} from '../packages/onnx-graph/src/index.ts';
import type { ExecutionPlan, PlannedStep } from '../packages/diffusion/src/index.ts';

export interface PlanMacs {
  /** Conv/linear MACs: what the papers' counters count. */
  weight: number;
  /** With the attention products (Q·Kᵀ, P·V). */
  total: number;
  /** Steps run as a guided [uncond, cond] pair, and as one pass. */
  cfgSteps: number;
  singleSteps: number;
}

/** The latent-independent sizes of a count: everything in UNetSizes but the batch, which each step sets. */
export type ImageSizes = Omit<UNetSizes, 'batch'>;

export class PlanMacCounter {
  readonly #unet: ModelFile;
  readonly #structure: UNetStructure;
  readonly #graphs = new Map<string, ModelProto>();
  readonly #counts = new Map<string, { weight: number; total: number }>();

  /** `structure`: the UNet's discovered modules, when the caller has them already. */
  constructor(unet: ModelFile, structure: UNetStructure = discoverUNet(unet.proto)) {
    this.#unet = unet;
    this.#structure = structure;
  }

  /** The form a step runs: '' (the UNet), 'x' attn2 reused, 's' attn1 reused, 'd<k>' DeepCache branch k. */
  static formOf(step: PlannedStep, plan: ExecutionPlan): string {
    const shallow = step.unet === 'shallow' ? `d${plan.deepCache?.cacheBranchId ?? 0}` : '';
    return `${step.crossAttn === 'reuse' ? 'x' : ''}${step.selfAttn === 'reuse' ? 's' : ''}${shallow}`;
  }

  /** MACs of one call of `form` at `sizes`. */
  macsOf(form: string, sizes: UNetSizes): { weight: number; total: number } {
    const key = `${form}:${JSON.stringify(sizes)}`;
    let m = this.#counts.get(key);
    if (!m) {
      const r = countMacs(this.#graphFor(form), sizes, { baseDir: this.#unet.baseDir, shapesFrom: this.#unet.proto });
      m = { weight: r.weightMacs, total: r.total };
      this.#counts.set(key, m);
    }
    return m;
  }

  /** MACs per image of the whole plan: every step's form at its batch. */
  planMacs(plan: ExecutionPlan, sizes: ImageSizes): PlanMacs {
    let weight = 0;
    let total = 0;
    for (const s of plan.steps) {
      const m = this.macsOf(PlanMacCounter.formOf(s, plan), { ...sizes, batch: s.batch === 'cfg' ? 2 : 1 });
      weight += m.weight;
      total += m.total;
    }
    const cfgSteps = plan.steps.filter((s) => s.batch === 'cfg').length;
    return { weight, total, cfgSteps, singleSteps: plan.steps.length - cfgSteps };
  }

  #graphFor(form: string): ModelProto {
    if (form === '') return this.#unet.proto;
    let g = this.#graphs.get(form);
    if (!g) {
      const branch = /d(\d+)/.exec(form);
      const reuse = [
        ...(form.includes('x') ? attentionOutputs(this.#structure, 'attn2') : []),
        ...(form.includes('s') ? attentionOutputs(this.#structure, 'attn1') : []),
        ...(branch ? [deepFeature(this.#structure, Number(branch[1])).tensor] : []),
      ];
      g = deriveModel(this.#unet.proto, { reuse, outputs: ['out_sample'] }, { baseDir: this.#unet.baseDir }).model;
      this.#graphs.set(form, g);
    }
    return g;
  }
}
