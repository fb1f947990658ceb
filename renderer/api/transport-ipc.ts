// Electron's transport: the preload's narrow bridge (common/host-bridge.ts) carries the same wire format
// over IPC. The main process owns the connection, so it is always open.
import type { ApiMethod, Unsubscribe } from '../../common/api.ts';
import type { ApiTransport } from '../../common/api-client.ts';
import type { HostBridge } from '../../common/host-bridge.ts';

export function createIpcTransport(bridge: HostBridge): ApiTransport {
  return {
    invoke: (method: ApiMethod, request: unknown) => bridge.invoke(method, request),
    listen: (onBatch: (batch: unknown) => void): Unsubscribe => bridge.listen(onBatch),
  };
}
