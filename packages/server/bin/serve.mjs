#!/usr/bin/env node
// `pnpm serve`: starts the gategraph server. The workspace runs TypeScript sources directly through tsx.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
process.exitCode = await main(process.argv.slice(2));
