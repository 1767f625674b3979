/**
 * Reading a JSON-lines file of any size one line at a time: the file is read in chunks and never held as one
 * string (a store log can grow past what a JavaScript string may hold). Synchronous, because the store is
 * replayed before the server takes requests.
 */
import { closeSync, openSync, readSync } from 'node:fs';

const CHUNK_BYTES = 1 << 20;
const NEWLINE = 0x0a;

/**
 * Calls `onLine(text, lineNumber)` for each line of `path` (1-based numbers, the newline removed, a last line
 * without a newline included). `lastLine` tells whether it is the file's last line, where a crash can leave a
 * torn record. A line longer than `maxLineBytes` is passed as `undefined` with its length, and skipped.
 */
export function forEachLine(
  path: string,
  onLine: (text: string | undefined, lineNumber: number, info: { bytes: number; lastLine: boolean }) => void,
  maxLineBytes: number,
): void {
  const fd = openSync(path, 'r');
  try {
    const chunk = Buffer.alloc(CHUNK_BYTES);
    let parts: Buffer[] = [];
    let partsBytes = 0;
    let tooLong = false;
    let lineNumber = 0;
    // A line is only delivered once the next one starts (or the file ends), so `lastLine` is known.
    let held: { text: string | undefined; bytes: number } | undefined;
    const deliver = (last: boolean) => {
      if (held) onLine(held.text, lineNumber, { bytes: held.bytes, lastLine: last });
      held = undefined;
    };
    const finishLine = () => {
      deliver(false);
      lineNumber++;
      held = { text: tooLong ? undefined : Buffer.concat(parts, partsBytes).toString('utf8'), bytes: partsBytes };
      parts = [];
      partsBytes = 0;
      tooLong = false;
    };
    const append = (piece: Buffer) => {
      partsBytes += piece.length;
      if (partsBytes > maxLineBytes) {
        tooLong = true;
        parts = [];
      } else if (!tooLong) parts.push(Buffer.from(piece));
    };
    for (;;) {
      const read = readSync(fd, chunk, 0, CHUNK_BYTES, null);
      if (read === 0) break;
      let start = 0;
      for (let i = chunk.indexOf(NEWLINE, 0); i !== -1 && i < read; i = chunk.indexOf(NEWLINE, i + 1)) {
        append(chunk.subarray(start, i));
        finishLine();
        start = i + 1;
      }
      if (start < read) append(chunk.subarray(start, read));
    }
    if (partsBytes > 0 || tooLong) finishLine();
    deliver(true);
  } finally {
    closeSync(fd);
  }
}
