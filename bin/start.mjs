#!/usr/bin/env node
// `npm start`: the desktop app where Electron's binary can run; otherwise the same workbench in web mode
// (`cnx serve --open` in this process: the server, its tokened URL on stdout, the default browser where
// there is one, and Ctrl-C pausing running jobs with a checkpoint). The UI (and, for Electron, the preload)
// is built first unless dist/ is already newer than its sources. Arguments go to the app or to `cnx serve`.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runCnx } from './run-cnx.mjs';
import { ensureBuilt } from './build.mjs';
import { REPO, electronBinary } from './electron.mjs';

// The entry's path is the one electron.config.ts packages (kept in step by test/unit/electron-config.test.ts).
const ELECTRON_MAIN = 'main/electron/main.mjs';

const args = process.argv.slice(2);
const electron = electronBinary();
const main = join(REPO, ELECTRON_MAIN);
const desktop = electron !== null && existsSync(main);
try {
  await ensureBuilt('production');
  if (desktop) await ensureBuilt('preload');
} catch (e) {
  console.error(`npm start: building the UI failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}

if (desktop) {
  const child = spawn(electron, [main, ...args], { cwd: REPO, stdio: 'inherit' });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  const why = electron === null
    ? "Electron's binary is not installed (its download was skipped with ELECTRON_SKIP_BINARY_DOWNLOAD=1 or failed)"
    : `the Electron main process (${ELECTRON_MAIN}) is missing from this checkout`;
  console.log(`npm start: web mode, because ${why}; Ctrl-C stops it.`);
  process.exitCode = await runCnx(['serve', '--open', ...args]);
}
