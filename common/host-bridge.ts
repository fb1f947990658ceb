// What Electron's preload exposes to the renderer (contextBridge.exposeInMainWorld(HOST_BRIDGE_KEY, ...)):
// the WorkbenchApi wire format of common/api.ts over IPC and nothing more, never raw ipcRenderer. The
// renderer uses it when present and falls back to HTTP + WebSocket (web mode) otherwise.
export const HOST_BRIDGE_KEY = 'cnxHost';

export interface HostBridge {
  /** ipcRenderer.invoke('cnx:api', method, request): resolves with the ApiResult envelope. */
  invoke(method: string, request: unknown): Promise<unknown>;
  /** Delivers the event batches of channel 'cnx:events' ({ events: [{ stream, data }] }); returns how to stop. */
  listen(onBatch: (batch: unknown) => void): () => void;
}
