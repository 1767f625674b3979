/**
 * The messages between processes, on Redis pub/sub: a worker's websocket messages for a prompt's client
 * (events), the API's requests to the workers (control: interrupt, free), and "the queue changed" (changed).
 * Pub/sub keeps the order of one publisher's messages, so a prompt's messages reach each API instance in the
 * order its worker sent them. Nothing here is stored: a message published while no API instance listens is lost
 * (ComfyUI's websocket messages are not stored either); the queue and history, which are, hold what matters.
 */
import type { Redis } from 'ioredis';
import type { FreeRequest } from '../memory-actions.ts';
import type { MessageSink } from '../prompt-execution.ts';
import type { RedisKeys } from './keys.ts';

/**
 * A websocket message for a client (null: every client), or a preview frame's image (base64; `r: 1` when it is a
 * node's result, which the API instance must not drop for a slow client).
 */
export type EventMessage =
  | { c: string | null; t: string; d: unknown }
  | { c: string | null; preview: 'JPEG' | 'PNG'; b: string; r?: 1 };

export type ControlMessage = { type: 'interrupt'; promptId?: string } | ({ type: 'free' } & FreeRequest);

/** A MessageSink that publishes to the API instances (a worker's side). */
export class PublishingSink implements MessageSink {
  constructor(
    readonly redis: Redis,
    readonly keys: RedisKeys,
  ) {}

  send(clientId: string | undefined, type: string, data: unknown): void {
    this.#publish({ c: clientId ?? null, t: type, d: data });
  }

  sendPreview(clientId: string | undefined, format: 'JPEG' | 'PNG', image: Uint8Array, mustDeliver = false): void {
    const b = Buffer.from(image.buffer, image.byteOffset, image.byteLength).toString('base64');
    this.#publish({ c: clientId ?? null, preview: format, b, ...(mustDeliver ? { r: 1 as const } : {}) });
  }

  /** Sends and waits until Redis has it (the final `executing` goes after the history is written). */
  sendNow(clientId: string | undefined, type: string, data: unknown): Promise<unknown> {
    return this.redis.publish(this.keys.events, JSON.stringify({ c: clientId ?? null, t: type, d: data } satisfies EventMessage));
  }

  #publish(message: EventMessage): void {
    // One connection publishes in order; a failure (Redis down) loses the message, as a closed socket would.
    this.redis.publish(this.keys.events, JSON.stringify(message)).catch(() => {});
  }
}

/** Delivers an event message to a MessageSink (an API instance's websocket hub). */
export function deliver(message: EventMessage, sink: MessageSink): void {
  const client = message.c ?? undefined;
  if ('preview' in message) sink.sendPreview(client, message.preview, Buffer.from(message.b, 'base64'), message.r === 1);
  else sink.send(client, message.t, message.d);
}

/**
 * Subscribes `subscriber` (a connection used for nothing else, as Redis requires) to channels; `onMessage` gets
 * each message parsed. A message that is not JSON is ignored (another program on the same channel).
 */
export async function subscribe(subscriber: Redis, handlers: Record<string, (message: unknown) => void>): Promise<void> {
  subscriber.on('message', (channel: string, text: string) => {
    const handler = handlers[channel];
    if (!handler) return;
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    handler(message);
  });
  await subscriber.subscribe(...Object.keys(handlers));
}
