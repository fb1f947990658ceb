// Worker thread bootstrap: a worker does not inherit the parent's TypeScript loader, so register tsx here
// before loading the TypeScript worker module.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
