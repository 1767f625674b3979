/** The logging interface nodes and the host use; the host decides where lines go. */
export interface Logger {
  debug(message: string, ...details: unknown[]): void;
  info(message: string, ...details: unknown[]): void;
  warn(message: string, ...details: unknown[]): void;
  error(message: string, ...details: unknown[]): void;
  /** A logger that prefixes every message with `scope`. */
  child(scope: string): Logger;
}

type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** The most characters of one message written to the console; a 10 MB prompt quoted in a warning is cut. */
export const MAX_LOG_MESSAGE_CHARACTERS = 4000;

/** Writes to stderr (stdout stays free for a command's real output), filtered by level. */
export function consoleLogger(minLevel: Level = 'info', scope = ''): Logger {
  const emit = (level: Level, message: string, details: unknown[]) => {
    if (ORDER[level] < ORDER[minLevel]) return;
    const prefix = scope ? `[${scope}] ` : '';
    console.error(`${level === 'info' ? '' : level + ': '}${prefix}${boundedMessage(message)}`, ...details);
  };
  return {
    debug: (m, ...d) => emit('debug', m, d),
    info: (m, ...d) => emit('info', m, d),
    warn: (m, ...d) => emit('warn', m, d),
    error: (m, ...d) => emit('error', m, d),
    child: (s) => consoleLogger(minLevel, scope ? `${scope}:${s}` : s),
  };
}

/** Discards everything; for tests and embedding. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};

/** `message`, or its start and end with the number of characters left out between them. */
export function boundedMessage(message: string, max = MAX_LOG_MESSAGE_CHARACTERS): string {
  if (message.length <= max) return message;
  const keep = Math.floor((max - 40) / 2);
  return `${message.slice(0, keep)} … (${message.length - 2 * keep} characters left out) … ${message.slice(-keep)}`;
}
