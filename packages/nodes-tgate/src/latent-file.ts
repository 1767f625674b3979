/**
 * ComfyUI's `.latent` file: a safetensors file holding `latent_tensor` (float32 [B, C, h, w]) and, in the format
 * ComfyUI writes today, an empty `latent_format_version_0` tensor, with the prompt and the workflow in the header's
 * `__metadata__` (as SaveImage puts them in PNG text chunks).
 *
 * What the numbers mean. ComfyUI's LATENT holds the VAE's own output (the model scales it by the VAE's scaling
 * factor when sampling); ours holds it already scaled (the UNet's units, see types.ts). So:
 * - `latent_format_version_0` present: the tensor is in the VAE's own units; our LATENT is it times the scaling
 *   factor of the VAE (a VAE given to the node, or the one this file records in `gategraph_vae_scaling_factor`).
 * - absent (ComfyUI's first format): the tensor was scaled by SD-1.x's 0.18215, which ComfyUI divides out.
 * - `gategraph_latent_units` = `model`: written by SaveLatent without a VAE, the tensor is our LATENT as it was
 *   (scaled by the factor of whichever model made it, which SaveLatent cannot know). Such a file has no version
 *   key, so ComfyUI reads it in its first format: right for SD-1.x/2.x models, whose factor is 0.18215.
 *
 * Only the header and the one tensor are read (the repo's safetensors reader, which checks the header as
 * safetensors' own reader does); the writer lays the file out as safetensors' own does (header padded with
 * spaces to 8 bytes, tensors' data in order).
 */
import { SafetensorsError, SafetensorsFile, type Tensor } from '@gategraph/diffusion';

export const LATENT_TENSOR = 'latent_tensor';
export const VERSION_0_KEY = 'latent_format_version_0';
/** The factor ComfyUI divides out of a file without the version key (`1.0 / 0.18215` in its LoadLatent). */
export const FIRST_FORMAT_SCALE = 0.18215;
/** Metadata of files this pack writes with a VAE: its scaling factor, so the file loads back without one. */
export const SCALING_FACTOR_KEY = 'gategraph_vae_scaling_factor';
/** Metadata of files this pack writes without a VAE: the tensor is a LATENT in the model's (scaled) units. */
export const UNITS_KEY = 'gategraph_latent_units';

export interface LatentFileContents {
  /** `latent_tensor` as float32 (F16 and BF16 files are converted exactly). */
  tensor: Tensor;
  /** The file has `latent_format_version_0`: the tensor is in the VAE's own units. */
  versioned: boolean;
  metadata: Readonly<Record<string, string>>;
}

/** The bytes of a safetensors file of float32 tensors (empty ones allowed), data in the order given. */
function float32Safetensors(tensors: ReadonlyArray<readonly [string, Tensor]>, metadata: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of tensors) {
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  // Padded with spaces so the data starts 8-aligned, as safetensors' writer does (readers may map it as floats).
  const headerLength = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + headerLength);
  let at = 8 + headerLength;
  for (const [, t] of tensors) {
    // Little-endian as the format requires, whatever the machine's order.
    for (let i = 0; i < t.data.length; i++, at += 4) view.setFloat32(at, t.data[i]!, true);
  }
  return out;
}

/** A `.latent` file of `samples` as ComfyUI's SaveLatent lays it out; `versioned` adds the version key. */
export function encodeLatentFile(samples: Tensor, versioned: boolean, metadata: Record<string, string>): Uint8Array {
  const tensors: Array<readonly [string, Tensor]> = [[LATENT_TENSOR, samples]];
  if (versioned) tensors.unshift([VERSION_0_KEY, { data: new Float32Array(0), shape: [0] }]);
  return float32Safetensors(tensors, metadata);
}

/** Reads a `.latent` file; throws a SafetensorsError naming the file for one that is not a latent. */
export function readLatentFile(path: string): LatentFileContents {
  const file = SafetensorsFile.open(path);
  const info = file.tensor(LATENT_TENSOR);
  if (!info) {
    throw new SafetensorsError(path, `it has no "${LATENT_TENSOR}" tensor (it has ${file.names().slice(0, 5).join(', ') || 'none'}): it is not a latent saved by SaveLatent`);
  }
  if (info.shape.length !== 4) {
    throw new SafetensorsError(path, `its "${LATENT_TENSOR}" has shape [${info.shape.join(', ')}]; a latent is [batch, channels, height, width]`);
  }
  const { data, shape } = file.readFloat32(LATENT_TENSOR);
  return { tensor: { data, shape }, versioned: file.has(VERSION_0_KEY), metadata: file.metadata };
}
