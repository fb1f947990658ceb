// Worker thread bootstrap: a worker does not inherit the parent's TypeScript loader, so register tsx
// before loading a TypeScript worker module (a bundled build passes a .js entry and skips this).
import { workerData } from 'node:worker_threads';

if (String(workerData.entry).endsWith('.ts')) {
  const { register } = await import('tsx/esm/api');
  register();
}
await import(workerData.entry);
