// The preload script (sandboxed; bundled with its imports for the renderer process): exposes the typed
// WorkbenchApi as window.workbench and nothing else. ipcRenderer itself never reaches the page; every
// method is derived from common/api.ts, validates its request and its response.
import { contextBridge, ipcRenderer } from 'electron';
import { IPC_EVENTS_CHANNEL, IPC_INVOKE_CHANNEL, PRELOAD_GLOBAL } from '../../common/api.ts';
import { type ApiTransport, createApiClient } from '../../common/api-client.ts';

const transport: ApiTransport = {
  invoke: (method, request) => ipcRenderer.invoke(IPC_INVOKE_CHANNEL, method, request) as Promise<unknown>,
  listen(onBatch) {
    // Batches arrive as one JSON string each: cheaper to send than a structured clone of many objects.
    const handler = (_event: Electron.IpcRendererEvent, json: string) => onBatch(JSON.parse(json));
    ipcRenderer.on(IPC_EVENTS_CHANNEL, handler);
    return () => void ipcRenderer.removeListener(IPC_EVENTS_CHANNEL, handler);
  },
};

contextBridge.exposeInMainWorld(PRELOAD_GLOBAL, createApiClient(transport));
