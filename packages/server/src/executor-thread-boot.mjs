// Entry of the execution thread: a worker thread starts without the loader hooks of the thread that made it
// (`pnpm serve` registers tsx from code, not with --import), so it registers tsx before loading the TypeScript.
import { register } from 'tsx/esm/api';

register();
await import('./executor-thread-entry.ts');
