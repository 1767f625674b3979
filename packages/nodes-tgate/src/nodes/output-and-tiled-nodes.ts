/**
 * ComfyUI's output nodes for API clients and latent files, and its tiled VAE nodes: one list for the pack's
 * index (SaveImageWebsocket; SaveLatent, LoadLatent; VAEDecodeTiled, VAEEncodeTiled).
 */
import { SaveImageWebsocket } from './save-image-websocket.ts';
import { LoadLatent, SaveLatent } from './latent-files.ts';
import { VAEDecodeTiled, VAEEncodeTiled } from './vae-tiled.ts';

export const outputAndTiledNodes = [SaveImageWebsocket, SaveLatent, LoadLatent, VAEDecodeTiled, VAEEncodeTiled] as const;
