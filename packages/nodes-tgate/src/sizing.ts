/**
 * What decides which image sizes a model takes (pixels per latent cell, sizes fixed by the export, the configs
 * the memory estimates read), known either from an opened model or, before anything runs, from what the model
 * folder's files declare (config.json files and the graphs' declared inputs and outputs, read without the
 * weights). Validation uses the second when the model is not open yet, so that queueing a prompt never opens
 * ONNX sessions; both come from the same interpretation (diffusion's model-folder.ts), so they agree.
 */
import { declaredUnetAndVae, ModelFolderError, type DiffusionModel, type OpenedVae } from '@gategraph/diffusion';
import { loadedModel, modelFolderStamp } from './model-cache.ts';

export interface ModelSizing {
  /** The name the loader knows it by. */
  readonly name: string;
  /** The UNet's config.json ({} when absent). */
  readonly unetConfig: Readonly<Record<string, unknown>>;
  /** The VAE decoder's config.json (the encoder's when the decoder has none; {} when neither). */
  readonly vaeConfig: Readonly<Record<string, unknown>>;
  /** Pixels per latent cell (8 for SD, 4 for the embedded tiny-sd). */
  readonly scaleFactor: number;
  /** Text tokens the UNet attends to, when known (77 is assumed otherwise). */
  readonly sequenceLength?: number;
  /** [h, w] in latent cells when the UNet graph takes one size only. */
  readonly fixedLatentSize?: readonly [number, number];
  /** [h, w] in pixels when the VAE decoder graph takes one size only. */
  readonly fixedImageSize?: readonly [number, number];
}

/** A whole model, or a VAE opened alone (VAELoader): what sizes a VAE takes needs only its VAE part. */
export type SizedModel = OpenedVae & { readonly unet?: DiffusionModel['unet']; readonly io: { readonly vae: DiffusionModel['io']['vae']; readonly unet?: DiffusionModel['io']['unet'] } };

export function sizingOf(model: SizedModel): ModelSizing {
  const decoderConfig = model.vaeDecoder.config;
  return {
    name: model.name,
    unetConfig: model.unet?.config ?? {},
    vaeConfig: Object.keys(decoderConfig).length ? decoderConfig : (model.vaeEncoder?.config ?? {}),
    scaleFactor: model.io.vae.scaleFactor,
    ...(model.io.unet?.sequenceLength !== undefined ? { sequenceLength: model.io.unet.sequenceLength } : {}),
    ...(model.io.unet?.fixedLatentSize ? { fixedLatentSize: model.io.unet.fixedLatentSize } : {}),
    ...(model.io.vae.fixedImageSize ? { fixedImageSize: model.io.vae.fixedImageSize } : {}),
  };
}

/** Folder sizings read from files, by folder and the stamp of its files (re-read when they change). */
const declared = new Map<string, { stamp: string; sizing: Omit<ModelSizing, 'name'> | undefined }>();

/**
 * The sizing of the model folder `dir` without opening it: the opened model's when it is open (with the same
 * files), else what its files declare (declaredUnetAndVae: config.json files and the graphs' declared inputs
 * and outputs, no weights read). Undefined for a folder that cannot be read that way: opening it, when the
 * loader runs, says what is wrong.
 */
export function sizingOfFolder(name: string, dir: string): ModelSizing | undefined {
  const opened = loadedModel(dir);
  if (opened) return { ...sizingOf(opened), name };
  const stamp = modelFolderStamp(dir);
  let entry = declared.get(dir);
  if (!entry || entry.stamp !== stamp) {
    let sizing: Omit<ModelSizing, 'name'> | undefined;
    try {
      const { unet, vae, unetConfig, vaeConfig } = declaredUnetAndVae(dir);
      sizing = {
        unetConfig,
        vaeConfig,
        scaleFactor: vae.scaleFactor,
        ...(unet.sequenceLength !== undefined ? { sequenceLength: unet.sequenceLength } : {}),
        ...(unet.fixedLatentSize ? { fixedLatentSize: unet.fixedLatentSize } : {}),
        ...(vae.fixedImageSize ? { fixedImageSize: vae.fixedImageSize } : {}),
      };
    } catch (error) {
      if (!(error instanceof ModelFolderError)) throw error;
    }
    entry = { stamp, sizing };
    declared.set(dir, entry);
  }
  return entry.sizing ? { ...entry.sizing, name } : undefined;
}

/** The square size the UNet was trained at (config `sample_size` x pixels per cell), when the config says. */
export function trainedSize(sizing: ModelSizing): number | undefined {
  const cells = sizing.unetConfig.sample_size;
  return typeof cells === 'number' && Number.isInteger(cells) && cells > 0 ? cells * sizing.scaleFactor : undefined;
}
