#!/usr/bin/env node
// Entry point of the `gategraph` command. The workspace runs TypeScript sources directly through tsx, so node
// packs written in TypeScript load too. `gategraph serve` and `gategraph worker` are the server package's commands
// (in this workspace it sits beside core); every other command is core's.
import { register } from 'tsx/esm/api';

register();
const [command, ...rest] = process.argv.slice(2);
if (command === 'serve' || command === 'worker') {
  const { main } = await import(command === 'serve' ? '../../server/src/cli.ts' : '../../server/src/redis/worker-cli.ts');
  const code = await main(rest);
  // A started server or worker lives until a signal stops it; a failed start exits now.
  if (code !== 0) process.exit(code);
} else {
  const { main } = await import('../src/cli/main.ts');
  process.exitCode = await main(process.argv.slice(2));
}
