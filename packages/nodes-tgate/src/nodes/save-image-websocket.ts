/**
 * SaveImageWebsocket: ComfyUI's output node for API clients that want the images and no files
 * (script_examples/websockets_api_example_ws_images.py). Each image goes to the prompt's client as a binary
 * websocket frame in the preview frame's format (u32 BE event type 1, u32 BE image format 2 = PNG, then the PNG
 * bytes), sent while the node is the one `executing`, which is how the example tells these frames from latent
 * previews. Unlike a preview, the frame is the result: the server delivers it even to a slow client.
 */
import { defineNode, socket } from '@gategraph/core';
import { encodePng, imageToRgb8, type Tensor } from '@gategraph/diffusion';
import { checkImages } from './save-image.ts';


export const SaveImageWebsocket = defineNode({
  id: 'SaveImageWebsocket',
  displayName: 'Save Image (Websocket)',
  category: 'api node/image',
  description:
    'Sends each image to the client that queued the prompt as a binary websocket frame (8-byte header: event type 1, format 2 = PNG; then the PNG), ' +
    'while this node is the one executing. Nothing is written to disk and no metadata is put in the PNG. For API scripts, as ComfyUI\'s websockets_api_example_ws_images.py.',
  inputs: {
    images: socket('IMAGE', { tooltip: 'The images to send, one PNG frame per image of the batch.' }),
  },
  outputs: [],
  outputNode: true,
  // ComfyUI's IS_CHANGED returns the time: the frames are sent anew on every run, never skipped as cached (a
  // client that queues the same prompt twice waits for images both times).
  fingerprint: () => Number.NaN,
  execute({ images: received }, ctx) {
    const images = checkImages(received);
    const [batch, height, width, channels] = images.shape as [number, number, number, number];
    const per = height * width * channels;
    for (let i = 0; i < batch; i++) {
      // One image at a time: the batch is never held as bytes and PNGs all at once. Bytes truncated as ComfyUI's
      // np.clip(255 * x).astype(uint8).
      const item: Tensor = { data: images.data.subarray(i * per, (i + 1) * per), shape: [1, height, width, channels] };
      const png = encodePng(imageToRgb8(item, { rounding: 'truncate' })[0]!);
      // ComfyUI reports progress i of batch with the image (ProgressBar.update_absolute(step, total, image)), so the
      // values run 0..batch-1, as there.
      ctx.progress(i, batch, { format: 'PNG', data: png, result: true });
    }
    return [];
  },
});
