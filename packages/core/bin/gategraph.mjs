#!/usr/bin/env node
// Entry point of the `gategraph` command. The workspace runs TypeScript sources directly through tsx, so node
// packs written in TypeScript load too.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
