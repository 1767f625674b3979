/**
 * Where a Redis deployment keeps its state: one prefix (default `gategraph`) for every key and channel, so
 * several deployments can share a Redis server. BullMQ's own keys (the job queue) live under `<prefix>:prompts:*`.
 *
 *   <prefix>:id:<prompt id>     'queued' | 'history': ids are unique across queue and history (SET NX)
 *   <prefix>:counter            ComfyUI's queue `number` (INCR)
 *   <prefix>:history            ZSET of prompt ids by finishing order; <prefix>:history:seq its counter
 *   <prefix>:h:<prompt id>      a history entry (JSON), written once (a late second writer loses)
 *   <prefix>:running            HASH prompt id -> which worker runs it and where it is (JSON)
 *   <prefix>:workers            HASH worker id -> what it reports (JSON, refreshed by its heartbeat)
 *   <prefix>:file:<type>/<subfolder>/<name>   a file's bytes (uploads, outputs), with a time to live
 *   channels <prefix>:events (worker -> API: websocket messages), <prefix>:control (API -> workers: interrupt,
 *   free), <prefix>:changed (anyone -> API: the queue changed, send the status), <prefix>:uploaded (API -> API: a
 *   file to write into every input folder, which validation lists)
 */
export const QUEUE_NAME = 'prompts';

export class RedisKeys {
  constructor(readonly prefix: string) {
    if (!/^[\w.-]+$/.test(prefix)) throw new Error(`--redis-prefix must be letters, digits, ".", "_" or "-" (got ${JSON.stringify(prefix)})`);
  }

  id(promptId: string): string {
    return `${this.prefix}:id:${promptId}`;
  }

  get counter(): string {
    return `${this.prefix}:counter`;
  }

  get history(): string {
    return `${this.prefix}:history`;
  }

  get historySeq(): string {
    return `${this.prefix}:history:seq`;
  }

  entry(promptId: string): string {
    return `${this.prefix}:h:${promptId}`;
  }

  get running(): string {
    return `${this.prefix}:running`;
  }

  get workers(): string {
    return `${this.prefix}:workers`;
  }

  /** A file's key; the parts are already checked names (files.ts), joined with "/". */
  file(type: string, subfolder: string, filename: string): string {
    return `${this.prefix}:file:${type}/${subfolder ? `${subfolder.replace(/\\/g, '/').replace(/^\/+|\/+$/g, '')}/` : ''}${filename}`;
  }

  get events(): string {
    return `${this.prefix}:events`;
  }

  get control(): string {
    return `${this.prefix}:control`;
  }

  get changed(): string {
    return `${this.prefix}:changed`;
  }

  /** A file was uploaded through one API instance: the others write it into their input folders too. */
  get uploaded(): string {
    return `${this.prefix}:uploaded`;
  }

  /** SCAN pattern of the copied files of a folder type. */
  filePattern(type: string): string {
    return `${this.prefix}:file:${type}/*`;
  }
}
