// The one window factory: every window gets the same fixed security settings (Electron's security
// checklist). The renderer is a sandboxed web page that talks to the main process only through the
// preload's typed API; it cannot navigate away, open windows or embed webviews.
import { BrowserWindow, shell } from 'electron';
import { APP_ORIGIN } from '../../common/api/electron-transport.ts';

export interface WindowOptions {
  /** The bundled preload script (absolute path). */
  preload: string;
  /** Where the UI is: app://workbench/index.html, or a dev server while developing. */
  url: string;
}

/** Whether a URL belongs to the app (its protocol, or the dev server it was started with). */
export function isAppUrl(url: string, appUrl: string): boolean {
  try {
    const u = new URL(url);
    const app = new URL(appUrl);
    // Custom schemes have an opaque origin in WHATWG URL: compare protocol and host instead.
    return u.protocol === app.protocol && u.host === app.host;
  } catch {
    return false;
  }
}

export function createMainWindow(o: WindowOptions): BrowserWindow {
  const win = new BrowserWindow({
    width: 1400,
    height: 900,
    minWidth: 900,
    minHeight: 600,
    show: false,
    title: 'ConvNeXt V2 Workbench',
    webPreferences: {
      preload: o.preload,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      experimentalFeatures: false,
      navigateOnDragDrop: false,
      spellcheck: false,
    },
  });
  const contents = win.webContents;
  // New windows: never inside the app; an http(s) link opens in the user's browser instead.
  contents.setWindowOpenHandler(({ url }) => {
    if (/^https?:\/\//.test(url) && !isAppUrl(url, o.url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
  contents.on('will-navigate', (event, url) => {
    if (!isAppUrl(url, o.url)) event.preventDefault();
  });
  contents.on('will-redirect', (event, url) => {
    if (!isAppUrl(url, o.url)) event.preventDefault();
  });
  contents.on('will-attach-webview', (event) => event.preventDefault());
  win.once('ready-to-show', () => win.show());
  void win.loadURL(o.url);
  return win;
}

export const APP_INDEX_URL = `${APP_ORIGIN}/index.html`;
