// Where the workspace folder (workbench.db, datasets/, cache/, runs/) lives: --workspace, then
// CNX_WORKSPACE, then the OS app-data folder.
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export const APP_DIR_NAME = 'convnext-workbench';

/** The per-user default, following each OS's convention for application data. */
export function defaultWorkspaceDir(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
  home: string = homedir(),
): string {
  if (platform === 'win32') return join(env.APPDATA || join(home, 'AppData', 'Roaming'), APP_DIR_NAME);
  if (platform === 'darwin') return join(home, 'Library', 'Application Support', APP_DIR_NAME);
  // XDG says a relative XDG_DATA_HOME is invalid and must be ignored.
  const xdg = env.XDG_DATA_HOME;
  return join(xdg && xdg.startsWith('/') ? xdg : join(home, '.local', 'share'), APP_DIR_NAME);
}

/** The workspace to use: an explicit folder wins over CNX_WORKSPACE, which wins over the default. */
export function resolveWorkspace(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(explicit || env.CNX_WORKSPACE || defaultWorkspaceDir(env));
}
