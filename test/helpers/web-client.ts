// The WorkbenchApi over web mode from Node, as the renderer's browser transport would do it: POST
// /api/<method> with the token, events from the /ws WebSocket.
import { WebSocket } from 'ws';
import type { ApiTransport } from '../../common/api-client.ts';

export function webTransport(base: string, token: string): ApiTransport & { sockets: WebSocket[] } {
  const sockets: WebSocket[] = [];
  return {
    sockets,
    async invoke(method, request) {
      const res = await fetch(`${base}/api/${method}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(request),
      });
      return res.json();
    },
    listen(onBatch) {
      const ws = new WebSocket(`${base.replace('http', 'ws')}/ws`, { headers: { authorization: `Bearer ${token}` } });
      sockets.push(ws);
      ws.on('message', (data) => onBatch(JSON.parse(String(data))));
      return () => ws.close();
    },
  };
}

/** Resolves when every socket the transport opened is connected. */
export function socketsOpen(t: { sockets: WebSocket[] }): Promise<void> {
  return Promise.all(t.sockets.map((ws) => (ws.readyState === WebSocket.OPEN ? undefined : new Promise((r, j) => ws.once('open', r).once('error', j))))).then(() => undefined);
}
