/**
 * The `pnpm serve` command: parses flags, loads packs through createHost, starts the server, prints its URL
 * and stops gracefully on SIGINT/SIGTERM (exit 0 once stopped; a second signal quits at once with 130).
 */
import { consoleLogger } from '@gategraph/core';
import { CLI_USAGE, parseCliArgs } from './config.ts';
import { DataDirLockedError, ExtraModelPathsConfigError, StoreDamagedError, startServer } from './index.ts';

/** A bad flag: the same code as the gategraph CLI's usage errors (sysexits' EX_USAGE). */
const EXIT_USAGE = 64;

/** Returns the exit code for a start failure; once started, the process lives until a signal stops it. */
export async function main(argv: string[]): Promise<number> {
  let options;
  try {
    options = parseCliArgs(argv);
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${CLI_USAGE}`);
    return EXIT_USAGE;
  }
  if (options.help) {
    console.log(CLI_USAGE);
    return 0;
  }
  const logger = consoleLogger('info', 'server');
  try {
    const server = await startServer({ ...options, logger, handleSignals: true });
    const { config } = server;
    console.log(`gategraph server listening on ${server.url}`);
    if (config.token) console.log('An access token is required (Authorization: Bearer <token> or ?token=<token>).');
    if (config.host !== '127.0.0.1' && config.host !== 'localhost' && config.host !== '::1') {
      logger.warn(
        `Bound to ${config.host}: anyone who can reach this address can queue prompts and read outputs` +
          (config.token ? '' : '; consider --token'),
      );
    }
    return 0;
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (error instanceof ExtraModelPathsConfigError) {
      console.error(error.message);
      return EXIT_USAGE;
    }
    if (e.code === 'EADDRINUSE') console.error(`Port already in use: ${e.message}. Stop the other server or pass --port / PORT.`);
    else if (error instanceof DataDirLockedError || error instanceof StoreDamagedError) console.error(error.message);
    else console.error(`Could not start the server: ${e.stack ?? e.message}`);
    return 1;
  }
}
