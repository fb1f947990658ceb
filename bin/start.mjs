#!/usr/bin/env node
// `npm start`: builds the renderer, then opens the desktop app when Electron's binary and the main process
// entry are both there; otherwise says how to use the same workbench in a browser with `cnx serve`.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, electronBinary } from './electron.mjs';

// The entry's path is the one electron.config.ts packages (kept in step by test/unit/electron-config.test.ts).
const ELECTRON_MAIN = 'main/electron/main.mjs';

const build = spawnSync(process.execPath, [join(REPO, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--logLevel', 'warn'], { cwd: REPO, stdio: 'inherit' });
if (build.status !== 0) {
  console.error('npm start: building the renderer failed (see above)');
  process.exit(build.status ?? 1);
}

const electron = electronBinary();
const main = join(REPO, ELECTRON_MAIN);
if (electron && existsSync(main)) {
  const child = spawn(electron, [main, ...process.argv.slice(2)], { cwd: REPO, stdio: 'inherit' });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  const why = !electron
    ? "Electron's binary is not installed (it was skipped with ELECTRON_SKIP_BINARY_DOWNLOAD=1 or could not be downloaded)"
    : `the Electron main process (${ELECTRON_MAIN}) is not part of this checkout yet`;
  console.log(`The UI is built in dist/renderer, but the desktop app cannot start: ${why}.

Use the same workbench in a browser instead:

    npx cnx serve                    # or: node bin/cnx.mjs serve [--workspace DIR] [--port N]

It prints a URL with a random token (new at every start); open it in a browser on this machine.`);
}
