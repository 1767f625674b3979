#!/usr/bin/env node
// `gategraph worker`: a worker process of a Redis deployment. The workspace runs TypeScript sources through tsx.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/redis/worker-cli.ts');
const code = await main(process.argv.slice(2));
// A started worker lives until a signal stops it; a failed start exits now.
if (code !== 0) process.exit(code);
