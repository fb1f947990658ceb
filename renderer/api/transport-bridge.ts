// Electron's transport: the preload's IPC bridge (common/api/electron-transport.ts PreloadBridge) wrapped as an ApiTransport, so
// the typed client, and the ApiErrors it throws with their code and field, live in the page's own world.
import type { PreloadBridge } from '../../common/api/electron-transport.ts';
import type { ApiTransport } from '../../common/api-client.ts';

export function bridgeTransport(bridge: PreloadBridge): ApiTransport {
  return {
    invoke: (method, request) => bridge.invoke(method, request),
    listen: (onBatch) => bridge.listen((json) => onBatch(JSON.parse(json))),
  };
}
