/**
 * The websocket clients, by ComfyUI client id (`/ws?clientId=...`), and the ways to reach them.
 *
 * - `send(clientId, ...)` reaches only the sockets of that client id: a prompt's progress does not leak to
 *   other clients. A client with no open socket gets nothing (messages are not stored); when it reconnects
 *   with the same id it receives what is sent from then on. Several sockets may share an id (a duplicated
 *   browser tab keeps its id); all of them receive.
 * - `send(undefined, ...)` and `broadcast` reach everyone: used for `status`, and for prompts queued without
 *   a `client_id` (ComfyUI sends those prompts' progress to every client too).
 * - Preview images are binary frames, and optional: when a socket still has more than `maxPreviewBacklog`
 *   bytes queued (a slow client), the preview is dropped instead of queued, so a slow client never makes the
 *   server hold an unbounded backlog and the executor never waits for the network. A node's result sent in the
 *   same frame (SaveImageWebsocket's images) is never dropped: it is the output the client asked for.
 */
import { randomUUID } from 'node:crypto';
import type { WebSocket } from 'ws';
import type { Logger } from '@gategraph/core';

/** ComfyUI's binary event type for a preview image. */
export const BINARY_PREVIEW_IMAGE = 1;
/** ComfyUI's image format codes in preview frames. */
export const PREVIEW_FORMAT = { JPEG: 1, PNG: 2 } as const;

export interface WsHubOptions {
  logger: Logger;
  /** Bytes queued on a socket above which previews for it are dropped. Default 1 MiB. */
  maxPreviewBacklog?: number;
}

export class WsHub {
  readonly #clients = new Map<string, Set<WebSocket>>();
  readonly #logger: Logger;
  readonly #maxPreviewBacklog: number;
  #droppedPreviews = 0;

  constructor(options: WsHubOptions) {
    this.#logger = options.logger;
    this.#maxPreviewBacklog = options.maxPreviewBacklog ?? 1024 * 1024;
  }

  /**
   * Registers a socket under `clientId` (a new random id when empty) and returns the id. The socket leaves
   * the registry when it closes.
   */
  add(socket: WebSocket, clientId: string | undefined): string {
    const id = clientId && clientId.length <= 200 ? clientId : randomUUID().replace(/-/g, '');
    let sockets = this.#clients.get(id);
    if (!sockets) this.#clients.set(id, (sockets = new Set()));
    sockets.add(socket);
    socket.once('close', () => {
      const current = this.#clients.get(id);
      if (!current) return;
      current.delete(socket);
      if (current.size === 0) this.#clients.delete(id);
    });
    // A socket error (reset by peer) is followed by `close`; without a listener it would crash the process.
    socket.on('error', (error) => this.#logger.debug(`websocket of client ${id}: ${error.message}`));
    return id;
  }

  /** True while at least one socket of the client is connected. */
  connected(clientId: string): boolean {
    return this.#clients.has(clientId);
  }

  /** Number of open sockets. */
  get size(): number {
    let n = 0;
    for (const sockets of this.#clients.values()) n += sockets.size;
    return n;
  }

  /** Previews dropped because a client was slow, since start. */
  get droppedPreviews(): number {
    return this.#droppedPreviews;
  }

  /** Sends `{type, data}` to one client's sockets, or to everyone when `clientId` is undefined. */
  send(clientId: string | undefined, type: string, data: unknown): void {
    const text = JSON.stringify({ type, data });
    for (const socket of this.#targets(clientId)) {
      if (socket.readyState === socket.OPEN) socket.send(text);
    }
  }

  broadcast(type: string, data: unknown): void {
    this.send(undefined, type, data);
  }

  /**
   * Sends a preview frame (u32 BE event type 1, u32 BE format, bytes); drops it for a backlogged socket unless
   * `mustDeliver` (a node's result rather than a preview).
   */
  sendPreview(clientId: string | undefined, format: 'JPEG' | 'PNG', image: Uint8Array, mustDeliver = false): void {
    let frame: Buffer | undefined;
    for (const socket of this.#targets(clientId)) {
      if (socket.readyState !== socket.OPEN) continue;
      if (!mustDeliver && socket.bufferedAmount > this.#maxPreviewBacklog) {
        this.#droppedPreviews++;
        continue;
      }
      if (!frame) {
        frame = Buffer.allocUnsafe(8 + image.byteLength);
        frame.writeUInt32BE(BINARY_PREVIEW_IMAGE, 0);
        frame.writeUInt32BE(PREVIEW_FORMAT[format], 4);
        frame.set(image, 8);
      }
      socket.send(frame, { binary: true });
    }
  }

  /** Closes every socket (server shutdown). */
  closeAll(code = 1001, reason = 'server shutting down'): void {
    for (const sockets of this.#clients.values()) {
      for (const socket of sockets) socket.close(code, reason);
    }
  }

  /** Forcibly drops sockets that did not finish closing. */
  terminateAll(): void {
    for (const sockets of this.#clients.values()) for (const socket of sockets) socket.terminate();
    this.#clients.clear();
  }

  *#targets(clientId: string | undefined): Iterable<WebSocket> {
    if (clientId === undefined) {
      for (const sockets of this.#clients.values()) yield* sockets;
    } else {
      const sockets = this.#clients.get(clientId);
      if (sockets) yield* [...sockets];
    }
  }
}
