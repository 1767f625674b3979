/**
 * The history in Redis: entries written once (the first writer of a prompt's entry wins, so a worker that lost
 * its prompt to the stall check cannot overwrite the "interrupted" entry, and nothing is recorded twice), kept in
 * finishing order, the oldest dropped beyond `maxEntries` (ComfyUI's 10,000).
 */
import type { Redis } from 'ioredis';
import { boundedHistoryEntry, type HistoryEntry } from '../store.ts';
import type { RedisKeys } from './keys.ts';

// One script so that the entry, its place in the order, the id's state and the running record change together.
const RECORD = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
local seq = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[2], seq, ARGV[2])
redis.call('SET', KEYS[4], 'history')
redis.call('HDEL', KEYS[5], ARGV[2])
return 1
`;

export class RedisHistory {
  constructor(
    readonly redis: Redis,
    readonly keys: RedisKeys,
    readonly maxEntries: number,
  ) {}

  /** Records a prompt's entry unless one exists; true when this call recorded it. */
  async record(promptId: string, entry: HistoryEntry): Promise<boolean> {
    const k = this.keys;
    const json = JSON.stringify(boundedHistoryEntry(entry));
    const done = (await this.redis.eval(RECORD, 5, k.entry(promptId), k.history, k.historySeq, k.id(promptId), k.running, json, promptId)) === 1;
    if (done) await this.#trim();
    return done;
  }

  async get(promptId: string): Promise<HistoryEntry | undefined> {
    const json = await this.redis.get(this.keys.entry(promptId));
    return json ? (JSON.parse(json) as HistoryEntry) : undefined;
  }

  /** ComfyUI's `GET /history` selection (as PromptQueue.historyEntries), oldest first. */
  async entries(maxItems?: number, offset = -1): Promise<Array<[string, HistoryEntry]>> {
    const total = await this.redis.zcard(this.keys.history);
    const start = offset < 0 ? (maxItems !== undefined ? Math.max(0, total - maxItems) : 0) : offset;
    const end = maxItems !== undefined ? Math.min(total, start + maxItems) : total;
    if (end <= start) return [];
    const ids = await this.redis.zrange(this.keys.history, start, end - 1);
    if (!ids.length) return [];
    const values = await this.redis.mget(ids.map((id) => this.keys.entry(id)));
    return ids.flatMap((id, i) => (values[i] ? [[id, JSON.parse(values[i]!) as HistoryEntry] as [string, HistoryEntry]] : []));
  }

  async delete(ids: string[]): Promise<void> {
    if (!ids.length) return;
    const multi = this.redis.multi().zrem(this.keys.history, ...ids);
    for (const id of ids) multi.del(this.keys.entry(id), this.keys.id(id));
    await multi.exec();
  }

  async clear(): Promise<void> {
    for (;;) {
      const ids = await this.redis.zrange(this.keys.history, 0, 999);
      if (!ids.length) return;
      await this.delete(ids);
    }
  }

  async #trim(): Promise<void> {
    const extra = (await this.redis.zcard(this.keys.history)) - this.maxEntries;
    if (extra > 0) await this.delete(await this.redis.zrange(this.keys.history, 0, extra - 1));
  }
}
