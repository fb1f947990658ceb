// The preload script (sandboxed; bundled with its imports for the renderer process): exposes the IPC
// transport as window.workbench (common/api/electron-transport.ts PreloadBridge) and nothing else. ipcRenderer itself never
// reaches the page; only known method names are forwarded. The renderer wraps the bridge in the typed client,
// which validates requests and responses; the main process validates every request again.
import { contextBridge, ipcRenderer } from 'electron';
import { isApiMethod } from '../../common/api.ts';
import { IPC_EVENTS_CHANNEL, IPC_INVOKE_CHANNEL, PRELOAD_GLOBAL, type PreloadBridge } from '../../common/api/electron-transport.ts';

const bridge: PreloadBridge = {
  invoke(method, request) {
    if (typeof method !== 'string' || !isApiMethod(method)) return Promise.resolve({ ok: false, error: { code: 'invalid', message: `unknown method '${String(method)}'` } });
    return ipcRenderer.invoke(IPC_INVOKE_CHANNEL, method, request) as Promise<unknown>;
  },
  listen(onBatchJson) {
    const handler = (_event: Electron.IpcRendererEvent, json: string) => onBatchJson(json);
    ipcRenderer.on(IPC_EVENTS_CHANNEL, handler);
    return () => void ipcRenderer.removeListener(IPC_EVENTS_CHANNEL, handler);
  },
};

contextBridge.exposeInMainWorld(PRELOAD_GLOBAL, bridge);
