/**
 * PyTorch pickles (.ckpt, .pt, .pth, .bin) are refused, never unpickled: unpickling runs whatever code the file
 * names (pickle's REDUCE / GLOBAL opcodes), so opening one is running a program from the internet. Nothing of such
 * a file is read here but its first bytes, to tell a renamed pickle from a safetensors file.
 *
 * The refusal says how to convert the file once, outside gategraph, into a safetensors file:
 * - with PyTorch >= 1.13 (`weights_only=True` only unpickles tensors and plain containers, the loader ComfyUI
 *   itself uses for .ckpt files since torch 2.4) and the `safetensors` package; `state_dict` is where LDM /
 *   Lightning checkpoints keep the weights (ComfyUI's comfy/utils.py load_torch_file reads the same key), other
 *   files are the state dict themselves. Clones, because save_file refuses tensors that share memory.
 * - or with ComfyUI: "Load Checkpoint" into "Save Checkpoint" (CheckpointSave, comfy_extras/nodes_model_merging.py),
 *   which writes `output/checkpoints/ComfyUI_00001_.safetensors` by default.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { basename, dirname, extname } from 'node:path';
import { UnsupportedModelError } from './unsupported-model.ts';

/** Extensions of files PyTorch writes with pickle. */
export const PICKLE_EXTENSIONS: readonly string[] = ['.ckpt', '.pt', '.pth', '.bin'];

/** How a file was told to be a pickle. */
export type PickleEvidence = 'extension' | 'zip' | 'pickle';

/** A pickled PyTorch file, refused unopened. `conversion` is the command that converts it. */
export class PickleFileError extends UnsupportedModelError {
  override name = 'PickleFileError';
  /** As UnsupportedCheckpointError's codes (checkpoint-family.ts): every single-file refusal has one. */
  readonly code = 'pickle' as const;
  constructor(
    path: string,
    /** What told it: its extension, a zip archive (torch.save since 1.6), or a pickle's PROTO opcode. */
    readonly evidence: PickleEvidence,
    /** A one-line Python command converting the file to `<name>.safetensors` beside it. */
    readonly conversion: string,
    reason: string,
  ) {
    super(path, 'pickle', reason);
  }
}

/**
 * Why `path` is a pickle: its extension (.ckpt, .pt, .pth, .bin), or its first bytes (a zip archive `PK\x03\x04`,
 * as torch.save writes since PyTorch 1.6, or pickle's PROTO opcode 0x80 with protocol 2-5, the legacy format),
 * unless those bytes start a plausible safetensors header. Undefined for anything else (missing files included).
 */
export function pickleEvidence(path: string): PickleEvidence | undefined {
  if (PICKLE_EXTENSIONS.includes(extname(path).toLowerCase())) return 'extension';
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const size = fstatSync(fd).size;
    const head = new Uint8Array(9);
    const got = readSync(fd, head, 0, 9, 0);
    if (got === 9) {
      // A safetensors file: 8-byte length that fits the file, then the header's '{'.
      const length = new DataView(head.buffer).getBigUint64(0, true);
      if (head[8] === 0x7b && length <= BigInt(size - 8)) return undefined;
    }
    if (got >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return 'zip';
    if (got >= 2 && head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5) return 'pickle';
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** The one-line conversion command for a pickled checkpoint, writing `<name>.safetensors` in the same folder. */
export function pickleConversionCommand(path: string): string {
  const name = basename(path);
  const out = `${name.slice(0, name.length - extname(name).length) || name}.safetensors`;
  const q = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  return (
    `python -c "import torch; from safetensors.torch import save_file; ` +
    `sd = torch.load(${q(name)}, map_location='cpu', weights_only=True); sd = sd.get('state_dict', sd); ` +
    `save_file({k: v.contiguous().clone() for k, v in sd.items() if isinstance(v, torch.Tensor)}, ${q(out)})"`
  );
}

/**
 * Throws PickleFileError when `path` is a pickle (see pickleEvidence); returns quietly otherwise. Never unpickles
 * anything: at most the first 9 bytes are read.
 */
export function assertNotPickle(path: string): void {
  const evidence = pickleEvidence(path);
  if (!evidence) return;
  const command = pickleConversionCommand(path);
  const what =
    evidence === 'extension'
      ? `a Python pickle (a PyTorch ${extname(path).toLowerCase()} file)`
      : evidence === 'zip'
        ? 'a Python pickle (a zip archive as torch.save writes them), whatever its extension says'
        : 'a Python pickle (its first bytes are a pickle header), whatever its extension says';
  const folder = dirname(path);
  throw new PickleFileError(
    path,
    evidence,
    command,
    `this is ${what}, which can run code when it is loaded, so gategraph never opens it. ` +
      `Convert it once to .safetensors where Python, PyTorch >= 1.13 and safetensors are installed, in its folder: ${command} ` +
      `(weights_only=True loads tensors only; if torch refuses the file, it holds more than weights: look for a .safetensors release of the model instead), ` +
      `or in ComfyUI load it with "Load Checkpoint" and wire MODEL, CLIP and VAE into "Save Checkpoint" (CheckpointSave), which writes ComfyUI/output/checkpoints/*.safetensors; ` +
      `then put the .safetensors file in ${folder === '.' ? 'the models folder' : folder} and remove or move away the pickle.`,
  );
}
