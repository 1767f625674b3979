// Which tensors of a single-file LDM checkpoint a builder did not use, and why: nothing is dropped silently.
// A checkpoint holds several components under key prefixes (UNet, text encoder(s), VAE) plus training leftovers
// (the noise schedule's buffers, EMA copies); a component's builder reports the keys of its own namespace it did
// not take as `unknown`, the leftovers as `ignored` with the reason, and the other components by count.

export type LdmComponent = 'unet' | 'text_encoder' | 'vae';
/** Who else a file's keys belong to: a component, or the other half of the VAE (its encoder and decoder are built apart). */
export type KeyOwner = LdmComponent | 'vae_encoder' | 'vae_decoder' | 'text_encoder_2';

/** Key prefixes of each component in the LDM layout (SD-1.x/2.x; SDXL's `conditioner.` for its text encoders). */
export const LDM_PREFIXES: Readonly<Record<LdmComponent, readonly string[]>> = {
  unet: ['model.diffusion_model.'],
  text_encoder: ['cond_stage_model.', 'conditioner.'],
  vae: ['first_stage_model.'],
};

/** The DDPM training schedule LDM saves with the model: samplers compute their own. */
const SCHEDULE_BUFFERS = new Set([
  'betas', 'alphas_cumprod', 'alphas_cumprod_prev', 'sqrt_alphas_cumprod', 'sqrt_one_minus_alphas_cumprod',
  'log_one_minus_alphas_cumprod', 'sqrt_recip_alphas_cumprod', 'sqrt_recipm1_alphas_cumprod', 'posterior_variance',
  'posterior_log_variance_clipped', 'posterior_mean_coef1', 'posterior_mean_coef2', 'logvar',
]);

export interface KeyReport {
  /** Keys the built graph reads. */
  used: number;
  /**
   * Keys of the built component's namespace that it did not use, and keys of no known namespace: weights this
   * builder does not know (a variant architecture, a merge artefact). Each is listed.
   */
  unknown: string[];
  /** Keys left out on purpose, with why. */
  ignored: Array<{ key: string; reason: string }>;
  /** Keys of the file's other components (built by their own builders), counted per component. */
  otherComponents: Partial<Record<KeyOwner, number>>;
}

/** Why a key is ignored on purpose, or undefined when it is a weight someone should use. */
export function ignoredReason(key: string): string | undefined {
  if (SCHEDULE_BUFFERS.has(key)) return 'training noise schedule buffer (the sampler computes its own schedule)';
  if (key.startsWith('model_ema.')) return 'EMA weights or EMA bookkeeping (the checkpoint\'s model.* weights are used)';
  if (/\.position_ids$/.test(key)) return 'a constant index buffer (0..n-1), rebuilt in the graph';
  return undefined;
}

export function componentOf(key: string): LdmComponent | undefined {
  for (const [component, prefixes] of Object.entries(LDM_PREFIXES) as Array<[LdmComponent, readonly string[]]>) {
    if (prefixes.some((p) => key.startsWith(p))) return component;
  }
  return undefined;
}

/**
 * Classifies every key of a checkpoint for the builder of `component` that used `used`. `ownPrefix` overrides
 * the component's namespace (a bare UNet file: '' means every key is the UNet's).
 */
export function classifyKeys(all: readonly string[], used: ReadonlySet<string>, component: LdmComponent, ownPrefix?: string): KeyReport {
  const report: KeyReport = { used: 0, unknown: [], ignored: [], otherComponents: {} };
  for (const key of [...all].sort()) {
    if (used.has(key)) {
      report.used++;
      continue;
    }
    const why = ignoredReason(key);
    if (why) {
      report.ignored.push({ key, reason: why });
      continue;
    }
    const owner = ownPrefix !== undefined ? (key.startsWith(ownPrefix) && (ownPrefix !== '' || componentOf(key) === undefined) ? component : componentOf(key)) : componentOf(key);
    if (owner === component || owner === undefined) report.unknown.push(key);
    else report.otherComponents[owner] = (report.otherComponents[owner] ?? 0) + 1;
  }
  return report;
}
