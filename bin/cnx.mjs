#!/usr/bin/env node
// Entry point of the `cnx` command: runs the TypeScript sources through tsx.
import { availableParallelism } from 'node:os';

// sharp runs on libuv's thread pool, sized once at its first use: make room for one image per core
// (loader workers, import analysis) before anything touches it.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, availableParallelism()));
const { register } = await import('tsx/esm/api');
register();
const { main } = await import('../native-worker/cli.ts');
process.exitCode = await main(process.argv.slice(2));
