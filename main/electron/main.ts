// The Electron main process: one instance per user, the workspace's services, the app:// protocol, the
// IPC transport and the window. Quitting pauses running jobs (each writes a checkpoint) before exiting,
// so they resume where they stopped. The compute never runs here: jobs are worker processes.
import { BrowserWindow, app, dialog, session } from 'electron';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveWorkspace } from '../../native-worker/workspace.ts';
import { REPO_ROOT } from '../services/engines.ts';
import { type HostDialogs, Workbench } from '../services/workbench.ts';
import { type IpcBridge, registerIpc } from './ipc.ts';
import { handleAppProtocol, registerAppScheme } from './protocol.ts';
import { APP_INDEX_URL, createMainWindow } from './window.ts';

/** Where the build puts the bundled preload and the renderer. */
const BUILD_DIR = process.env.CNX_BUILD_DIR ?? join(REPO_ROOT, 'dist');
const PRELOAD = join(BUILD_DIR, 'electron', 'preload.cjs');
const RENDERER_DIR = join(BUILD_DIR, 'renderer');
/** A renderer dev server (vite), only for unpackaged development builds. */
const DEV_URL = !app.isPackaged ? process.env.CNX_DEV_RENDERER_URL : undefined;

/** The workspace: the one chosen before (userData/workspace.json), else CNX_WORKSPACE, else the default. */
async function chooseWorkspace(): Promise<string> {
  const saved = await readFile(join(app.getPath('userData'), 'workspace.json'), 'utf8').then(
    (t) => (JSON.parse(t) as { workspace?: unknown }).workspace,
    () => undefined,
  );
  return resolveWorkspace(typeof saved === 'string' ? saved : undefined);
}

const dialogs: HostDialogs = {
  async pickFolder(title) {
    const win = BrowserWindow.getFocusedWindow();
    const options: Electron.OpenDialogOptions = { title: title ?? 'Choose a folder', properties: ['openDirectory', 'createDirectory'] };
    const r = win ? await dialog.showOpenDialog(win, options) : await dialog.showOpenDialog(options);
    return r.canceled ? null : (r.filePaths[0] ?? null);
  },
  async pickFile(title, extensions) {
    const win = BrowserWindow.getFocusedWindow();
    const options: Electron.OpenDialogOptions = {
      title: title ?? 'Choose a file',
      properties: ['openFile'],
      ...(extensions?.length ? { filters: [{ name: extensions.join(', '), extensions: [...extensions] }] } : {}),
    };
    const r = win ? await dialog.showOpenDialog(win, options) : await dialog.showOpenDialog(options);
    return r.canceled ? null : (r.filePaths[0] ?? null);
  },
};

function main(): void {
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return;
  }
  registerAppScheme();

  let workbench: Workbench | null = null;
  let ipc: IpcBridge | null = null;
  let window: BrowserWindow | null = null;
  let quitting: 'no' | 'closing' | 'done' = 'no';

  app.on('second-instance', () => {
    if (!window) return;
    if (window.isMinimized()) window.restore();
    window.focus();
  });

  // Whatever web contents appear (devtools included): no webviews, no new windows.
  app.on('web-contents-created', (_event, contents) => {
    contents.on('will-attach-webview', (e) => e.preventDefault());
    contents.setWindowOpenHandler(() => ({ action: 'deny' }));
  });

  app.on('before-quit', (event) => {
    if (quitting === 'done' || !workbench) return;
    event.preventDefault();
    if (quitting === 'closing') return;
    quitting = 'closing';
    ipc?.dispose();
    void workbench
      .close({ jobTimeoutMs: 60_000 })
      .catch((e: Error) => console.error(`cnx: shutting down: ${e.stack ?? e.message}`))
      .finally(() => {
        quitting = 'done';
        app.quit();
      });
  });
  app.on('window-all-closed', () => {
    // Jobs keep running in the background on macOS, where apps live on without windows.
    if (process.platform !== 'darwin') app.quit();
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => app.quit());

  void app.whenReady().then(async () => {
    // The renderer needs no camera, microphone, notifications or geolocation.
    session.defaultSession.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
    session.defaultSession.setPermissionCheckHandler(() => false);

    const workspace = await chooseWorkspace();
    workbench = await Workbench.open({
      workspace,
      host: { kind: 'electron', nativeDialogs: true },
      dialogs,
      // Electron's binary runs Node scripts (cnx doctor, the ONNX engine) when told to act as node.
      node: { command: process.execPath, env: { ELECTRON_RUN_AS_NODE: '1' } },
    });
    handleAppProtocol(workbench, RENDERER_DIR);
    const url = DEV_URL ?? APP_INDEX_URL;
    ipc = registerIpc(workbench, url);
    const open = () => {
      window = createMainWindow({ preload: PRELOAD, url });
      ipc!.attach(window);
      window.on('closed', () => (window = null));
    };
    open();
    app.on('activate', () => {
      if (!window && quitting === 'no') open();
    });
  });
}

main();
