// The Electron transport, main side: one invoke channel for every API method, one event channel. A call
// is answered only when it comes from a window this app created, from a frame showing the app itself;
// its payload is validated by the same dispatcher as web mode's.
import { type BrowserWindow, type IpcMainInvokeEvent, ipcMain } from 'electron';
import type { ApiResult } from '../../common/api.ts';
import { IPC_EVENTS_CHANNEL, IPC_INVOKE_CHANNEL } from '../../common/api/electron-transport.ts';
import { dispatch } from '../api/dispatch.ts';
import type { Workbench } from '../services/workbench.ts';
import { isAppUrl } from './window.ts';

export interface IpcBridge {
  /** Lets this window call the API and receive events. */
  attach(win: BrowserWindow): void;
  dispose(): void;
}

export function registerIpc(wb: Workbench, appUrl: string): IpcBridge {
  const windows = new Map<number, BrowserWindow>();

  const trusted = (event: IpcMainInvokeEvent) => {
    const frame = event.senderFrame;
    return windows.has(event.sender.id) && frame !== null && frame === event.sender.mainFrame && isAppUrl(frame.url, appUrl);
  };

  ipcMain.handle(IPC_INVOKE_CHANNEL, async (event, method: unknown, request: unknown): Promise<ApiResult> => {
    if (!trusted(event)) return { ok: false, error: { code: 'unauthorized', message: 'calls are accepted only from the workbench window' } };
    if (typeof method !== 'string') return { ok: false, error: { code: 'invalid', message: 'the method name must be a string' } };
    return dispatch(wb.handlers, method, request);
  });

  const unsubscribe = wb.hub.subscribe((batch) => {
    if (!windows.size) return;
    const json = batch.json();
    for (const win of windows.values()) if (!win.isDestroyed()) win.webContents.send(IPC_EVENTS_CHANNEL, json);
  });

  return {
    attach(win) {
      const id = win.webContents.id;
      windows.set(id, win);
      win.on('closed', () => windows.delete(id));
    },
    dispose() {
      unsubscribe();
      ipcMain.removeHandler(IPC_INVOKE_CHANNEL);
      windows.clear();
    },
  };
}
