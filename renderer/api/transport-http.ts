// Web mode's transport: requests as POST /api/<method> with a JSON body, events from the WebSocket at /ws.
// The token travels as the cookie `cnx serve` set when its URL was opened, so nothing secret lives in the
// page. The socket reconnects with backoff; `onConnection` lets the app refetch what it missed meanwhile.
import type { ApiMethod, ApiResult, Unsubscribe } from '../../common/api.ts';
import type { ApiTransport } from '../../common/api-client.ts';

export type ConnectionState = 'connecting' | 'open' | 'closed';

/** The part of a WebSocket this transport uses (the browser's, or the `ws` package in tests). */
export interface SocketLike {
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  close(): void;
}

export interface HttpTransportOptions {
  /** http(s)://host:port of the server. */
  origin: string;
  openSocket: (url: string) => SocketLike;
  fetch?: typeof fetch;
  /** Extra request headers (tests pass the token as Authorization: Bearer). */
  headers?: Record<string, string>;
  onConnection?: (state: ConnectionState) => void;
  /** Backoff bounds for reconnecting (ms). */
  retryMs?: { min: number; max: number };
}

const failure = (code: 'internal' | 'unauthorized', message: string): ApiResult => ({ ok: false, error: { code, message } });

export function createHttpTransport(o: HttpTransportOptions): ApiTransport {
  const doFetch = o.fetch ?? fetch;
  const retry = o.retryMs ?? { min: 500, max: 10_000 };

  async function invoke(method: ApiMethod, request: unknown): Promise<unknown> {
    let res: Response;
    try {
      res = await doFetch(`${o.origin}/api/${method}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...o.headers },
        body: JSON.stringify(request),
        credentials: 'same-origin',
      });
    } catch (e) {
      return failure('internal', `cannot reach the workbench server (${(e as Error).message}); is \`cnx serve\` still running?`);
    }
    const text = await res.text();
    try {
      return JSON.parse(text) as unknown;
    } catch {
      // Not an API envelope (a proxy's error page, a server that is not cnx serve): report what came back.
      return failure(res.status === 401 ? 'unauthorized' : 'internal', `HTTP ${res.status} from ${method}: ${text.slice(0, 200)}`);
    }
  }

  function listen(onBatch: (batch: unknown) => void): Unsubscribe {
    let socket: SocketLike | null = null;
    let stopped = false;
    let delay = retry.min;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const wsUrl = `${o.origin.replace(/^http/, 'ws')}/ws`;

    const connect = () => {
      if (stopped) return;
      o.onConnection?.('connecting');
      const s = o.openSocket(wsUrl);
      socket = s;
      s.onopen = () => {
        delay = retry.min;
        o.onConnection?.('open');
      };
      s.onmessage = (ev) => {
        if (typeof ev.data !== 'string') return;
        try {
          onBatch(JSON.parse(ev.data));
        } catch {
          // A frame that is not JSON is not an event batch; the client reports invalid batches itself.
        }
      };
      s.onerror = () => undefined;
      s.onclose = () => {
        if (socket !== s) return;
        socket = null;
        if (stopped) return;
        o.onConnection?.('closed');
        timer = setTimeout(connect, delay);
        delay = Math.min(retry.max, delay * 2);
      };
    };
    connect();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      const s = socket;
      socket = null;
      s?.close();
    };
  }

  return { invoke, listen };
}
