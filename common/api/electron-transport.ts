// The Electron transport's names, shared by the main process's IPC handler, the preload and the renderer
// (the preload exposes the API as window.workbench).

export const IPC_INVOKE_CHANNEL = 'cnx:api';
export const IPC_EVENTS_CHANNEL = 'cnx:events';
export const PRELOAD_GLOBAL = 'workbench';

/**
 * What Electron's preload exposes as window.workbench: the raw IPC transport, not a client. The renderer
 * builds its client on top, so ApiError (with its code and field) is created in the page's own world; an
 * error thrown across the context bridge would arrive as a plain Error with its message only.
 */
export interface PreloadBridge {
  /** Sends one request; resolves with the raw ApiResult envelope (validated by the renderer's client). */
  invoke(method: string, request: unknown): Promise<unknown>;
  /** Delivers each event batch as its JSON text (cheaper across the bridge than a cloned object). */
  listen(onBatchJson: (json: string) => void): () => void;
}
/** The app protocol serving the renderer and /files/... in Electron: app://workbench/. */
export const APP_ORIGIN = 'app://workbench';
