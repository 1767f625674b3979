/**
 * What clients are told never shows the server's folders (where it is installed, where models and outputs
 * live): absolute paths in error messages and tracebacks are cut to their last part. The server's own log keeps
 * the full text.
 */
import { basename } from 'node:path';

/** A message with every absolute file path cut to its last part (`…/x.png`). */
export function withoutServerPaths(message: string): string {
  return message.replace(/(?:[A-Za-z]:)?(?:[\\/][^\\/\s'"`,;()]+){2,}/g, (path) => `…/${basename(path)}`);
}
