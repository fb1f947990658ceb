// `cnx serve`: the workbench without Electron. The same services and API, over HTTP + WebSocket, for a
// browser on this machine (or, with --host, elsewhere: the token still guards every request).
// Dispatched from bin/run-cnx.mjs (for bin/cnx.mjs and bin/start.mjs), because the CLI in native-worker may not import the main process.
import { join } from 'node:path';
import { type Command, CliError, parseOptions } from '../native-worker/cli/command.ts';
import { resolveWorkspace } from '../native-worker/workspace.ts';
import { REPO_ROOT } from './services/engines.ts';
import { Workbench } from './services/workbench.ts';
import { openBrowser } from './web/open-browser.ts';
import { isLoopback, startWebServer } from './web/server.ts';

const HELP = `usage: cnx serve [--host 127.0.0.1] [--port 0] [--workspace DIR] [--renderer DIR] [--open]

Serves the workbench UI and its API over HTTP and WebSocket, and runs the job queue. Prints a URL with a
random token (needed by every request); open it in a browser. Ctrl-C pauses running jobs (each writes a
checkpoint) and exits; they resume from there.
  --host H          address to bind (default 127.0.0.1; anything else exposes the workbench to that network)
  --port N          port (default 0: a free one)
  --workspace DIR   workspace folder (default: $CNX_WORKSPACE, else the app-data folder)
  --renderer DIR    the built UI (default dist/renderer in the repository)
  --rebuild-db      rebuild the runs in the database from the run folders first
  --open            open the URL in the default browser ($BROWSER, else xdg-open / open / start)`;

export const serveCommand: Command = {
  summary: 'serve the UI and API over HTTP on loopback, with a token',
  async run(args) {
    const o = parseOptions(args, { host: { type: 'string' }, port: { type: 'string' }, workspace: { type: 'string' }, renderer: { type: 'string' }, 'rebuild-db': { type: 'boolean' }, open: { type: 'boolean' } }, HELP);
    if (!o) return 0;
    if (o.positionals.length) throw new CliError(`unexpected argument '${o.positionals[0]}'\n\n${HELP}`);
    const port = Number(o.values.port ?? 0);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CliError(`--port '${o.values.port}' is not a port number`);
    const host = o.values.host ?? '127.0.0.1';
    // Opening the database creates the folder.
    const workspace = resolveWorkspace(o.values.workspace);
    const workbench = await Workbench.open({ workspace, rebuild: o.values['rebuild-db'] === true });
    let server;
    try {
      server = await startWebServer({ workbench, host, port, rendererDir: o.values.renderer ?? join(REPO_ROOT, 'dist', 'renderer') });
    } catch (e) {
      await workbench.close();
      throw new CliError(`cannot listen on ${host}:${port}: ${(e as Error).message}`);
    }
    if (!isLoopback(host)) console.error(`cnx serve: WARNING: listening on ${host}, reachable from other machines; anyone with the token controls this workbench`);
    console.error(`cnx serve: workspace ${workspace}`);
    // The URL goes to stdout alone on its line, for scripts and tests to pick up.
    console.log(server.url);
    if (o.values.open) {
      const why = await openBrowser(server.url);
      console.error(why ? `cnx serve: no browser opened (${why}): open the URL above in one` : 'cnx serve: opened in the default browser');
    }

    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    console.error('cnx serve: stopping: pausing running jobs (each writes a checkpoint)...');
    await server.close();
    await workbench.close();
    return 0;
  },
};
