// Opens a URL in the user's default browser for web mode (`cnx serve --open`, `npm start` without
// Electron): $BROWSER when set, else xdg-open / open / start. A machine without a display or an opener is
// normal (servers, containers): the caller gets the reason instead of an error.
import { spawn } from 'node:child_process';

export interface Opener {
  command: string;
  args: string[];
}

/** The command that opens `url` here, or the reason there is none. */
export function browserOpener(url: string, env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): Opener | { reason: string } {
  if (env.BROWSER) return { command: env.BROWSER, args: [url] };
  if (platform === 'darwin') return { command: 'open', args: [url] };
  // `start` is a cmd built-in; its first quoted argument is a window title.
  if (platform === 'win32') return { command: 'cmd', args: ['/c', 'start', '""', url.replace(/&/g, '^&')] };
  if (!env.DISPLAY && !env.WAYLAND_DISPLAY) return { reason: 'this machine has no display (neither DISPLAY nor WAYLAND_DISPLAY is set)' };
  return { command: 'xdg-open', args: [url] };
}

/** Starts the browser; resolves to null once it is on its way, or to the reason it could not be. */
export function openBrowser(url: string, env: NodeJS.ProcessEnv = process.env): Promise<string | null> {
  const opener = browserOpener(url, env);
  if ('reason' in opener) return Promise.resolve(opener.reason);
  return new Promise((resolve) => {
    const child = spawn(opener.command, opener.args, { stdio: 'ignore', detached: true, windowsVerbatimArguments: process.platform === 'win32' });
    child.once('error', (e) => resolve(`${opener.command} could not run (${(e as NodeJS.ErrnoException).code ?? e.message})`));
    // xdg-open and open return at once; a failure shows as their exit code.
    child.once('exit', (code) => resolve(code ? `${opener.command} exited with code ${code}` : null));
    child.unref();
  });
}
