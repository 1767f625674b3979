/**
 * Sending a large JSON object (the whole history) entry by entry. `res.json` builds one string first, and V8
 * strings stop at about 512 MiB: a history over that would answer 500 for everyone. Written in pieces, with
 * the socket drained between them, the answer's size is bounded only by what the client reads.
 */
import { once } from 'node:events';
import type { Response } from 'express';

export async function sendJsonObject(res: Response, entries: Iterable<readonly [string, unknown]>): Promise<void> {
  res.type('application/json');
  res.write('{');
  let first = true;
  for (const [key, value] of entries) {
    const piece = `${first ? '' : ','}${JSON.stringify(key)}:${JSON.stringify(value)}`;
    first = false;
    if (!res.write(piece)) {
      // A client that goes away never drains: stop with it.
      await Promise.race([once(res, 'drain'), once(res, 'close')]);
      if (res.destroyed || res.writableEnded) return;
    }
  }
  res.end('}');
}
