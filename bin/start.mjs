#!/usr/bin/env node
// `npm start`: builds the renderer and Electron's preload, then opens the desktop app when Electron's
// binary is installed; otherwise says how to use the same workbench in a browser with `cnx serve`.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'vite';
import { REPO, electronBinary } from './electron.mjs';

// The entry's path is the one electron.config.ts packages (kept in step by test/unit/electron-config.test.ts).
const ELECTRON_MAIN = 'main/electron/main.mjs';

try {
  for (const mode of ['production', 'preload']) await build({ configFile: join(REPO, 'vite.config.ts'), mode, logLevel: 'warn' });
} catch (e) {
  console.error(`npm start: building the UI failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}

const electron = electronBinary();
const main = join(REPO, ELECTRON_MAIN);
if (electron && existsSync(main)) {
  const child = spawn(electron, [main, ...process.argv.slice(2)], { cwd: REPO, stdio: 'inherit' });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  const why = !electron
    ? "Electron's binary is not installed (it was skipped with ELECTRON_SKIP_BINARY_DOWNLOAD=1 or could not be downloaded)"
    : `the Electron main process (${ELECTRON_MAIN}) is missing from this checkout`;
  console.log(`The UI is built in dist/renderer, but the desktop app cannot start: ${why}.

Use the same workbench in a browser instead:

    npx cnx serve                    # or: node bin/cnx.mjs serve [--workspace DIR] [--port N]

It prints a URL with a random token (new at every start); open it in a browser on this machine.`);
}
