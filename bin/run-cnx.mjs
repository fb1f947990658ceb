// Runs `cnx <argv>` in this process (bin/cnx.mjs for the command line, bin/start.mjs for web mode): the
// TypeScript sources through tsx, with `serve` and `attach`, which belong to the main process, added to the commands.
import { availableParallelism } from 'node:os';

// sharp runs on libuv's thread pool, sized once at its first use: make room for one image per core (loader
// workers, import analysis) before anything touches it; entry points import this module first.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, availableParallelism()));

/** Runs `cnx <argv>`; resolves to its exit code. */
export async function runCnx(argv) {
  const { register } = await import('tsx/esm/api');
  register();
  // Commands of the main process live outside native-worker (which may not import it) and load on use.
  const serve = {
    summary: 'serve the UI and API over HTTP on loopback, with a token',
    run: async (args) => (await import('../main/serve.ts')).serveCommand.run(args),
  };
  const attach = {
    summary: 'follow a run folder (e.g. a cluster run) live from its events.jsonl, read-only',
    run: async (args) => (await import('../main/attach.ts')).attachCommand.run(args),
  };
  const { main } = await import('../native-worker/cli.ts');
  return main(argv, { serve, attach });
}
