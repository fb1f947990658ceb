// Web mode: the WorkbenchApi over HTTP (POST /api/<method>) and a WebSocket (/ws, event batches), the
// built renderer as static files, and dataset images under /files/. It binds loopback unless told
// otherwise, and every request needs the random token (Authorization: Bearer, the cookie set by opening
// the printed URL, or ?token=). On loopback the Host header must name loopback too, so a web page that
// rebinds its own DNS name to 127.0.0.1 cannot reach the API.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, resolve, sep } from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { ApiError, type ApiErrorBody, type ApiResult } from '../../common/api.ts';
import { HTTP_STATUS, dispatch } from '../api/dispatch.ts';
import type { HubBatch } from '../services/hub.ts';
import type { Workbench } from '../services/workbench.ts';
import { resolveFile } from './files.ts';
import { contentSecurityPolicy } from '../csp.ts';

export interface WebServerOptions {
  workbench: Workbench;
  /** Default 127.0.0.1; anything else must be asked for. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  /** The built renderer (index.html + assets); a page explains when it is missing. */
  rendererDir: string;
  /** Default: 32 random bytes. */
  token?: string;
  /** Largest request body (default 1 MiB); larger requests get 413. */
  maxBodyBytes?: number;
  /** A WebSocket client whose unsent events exceed this is disconnected (default 64 MiB); it reconnects and refetches. */
  maxClientBufferBytes?: number;
}

export interface WebServer {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly token: string;
  readonly server: Server;
  /** WebSocket clients connected now. */
  readonly clients: number;
  close(): Promise<void>;
}

const COOKIE = 'cnx_token';
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '[::1]';
}

const STATIC_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.wasm': 'application/wasm',
  '.map': 'application/json',
};

const CSP = contentSecurityPolicy("'self' ws: wss:");

function securityHeaders(res: ServerResponse): void {
  res.setHeader('Content-Security-Policy', CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  // The token can be in the URL: never let it leave in a Referer header.
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

function sendError(res: ServerResponse, error: ApiErrorBody): void {
  sendJson(res, HTTP_STATUS[error.code], { ok: false, error } satisfies ApiResult);
}

function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(html), 'Cache-Control': 'no-store' });
  res.end(html);
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function notBuiltPage(dir: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ConvNeXt V2 Workbench</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 4em auto; line-height: 1.5">
<h1>The workbench UI is not built yet</h1>
<p>This server is running and its API works, but there is no built renderer in <code>${escapeHtml(dir)}</code>.</p>
<p>Build the renderer, then reload this page. Meanwhile the API answers at <code>POST /api/&lt;method&gt;</code>
(for example <code>/api/system.info</code>) and events stream from the WebSocket at <code>/ws</code>.</p>
</body></html>`;
}

/** Whether a raw request target has a '.' or '..' path segment, plain or percent-encoded. */
export function hasDotSegment(target: string): boolean {
  const path = target.split(/[?#]/)[0]!;
  return path.split('/').some((s) => {
    const d = s.replace(/%2e/gi, '.');
    return d === '.' || d === '..';
  });
}

/** A cookie value by name from a Cookie header. */
function cookie(req: IncomingMessage, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return null;
}

/** Reads a request body up to `limit` bytes; null when it is larger. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolveBody, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      req.resume();
      return resolveBody(null);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) over = true;
      else chunks.push(c);
    });
    req.on('end', () => resolveBody(over ? null : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Who may talk to the server: the token (bearer header, cookie or ?token=), a loopback Host, a same-origin socket. */
interface Access {
  authorized(req: IncomingMessage, url: URL): boolean;
  hostAllowed(req: IncomingMessage): boolean;
  originAllowed(req: IncomingMessage): boolean;
}

function accessRules(host: string, token: string): Access {
  const tokenDigest = createHash('sha256').update(token).digest();
  const loopbackOnly = isLoopback(host);
  // Hash both sides so the comparison is constant-time whatever the lengths.
  const validToken = (t: string | null) => t !== null && timingSafeEqual(createHash('sha256').update(t).digest(), tokenDigest);
  const bearer = (req: IncomingMessage) => {
    const h = req.headers.authorization;
    return h?.startsWith('Bearer ') ? h.slice(7) : null;
  };
  return {
    authorized: (req, url) => validToken(bearer(req)) || validToken(cookie(req, COOKIE)) || validToken(url.searchParams.get('token')),
    hostAllowed: (req) => {
      if (!loopbackOnly) return true;
      const h = req.headers.host ?? '';
      const name = h.startsWith('[') ? h.slice(0, h.indexOf(']') + 1) : h.split(':')[0]!;
      return isLoopback(name);
    },
    originAllowed: (req) => {
      const origin = req.headers.origin;
      return origin === undefined || origin === `http://${req.headers.host}`;
    },
  };
}

/** POST /api/<method>: a JSON body through the API dispatcher. */
async function serveApi(wb: Workbench, maxBody: number, req: IncomingMessage, res: ServerResponse, method: string): Promise<void> {
  if (req.method !== 'POST') return sendError(res, { code: 'invalid', message: 'API methods are called with POST' });
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
    req.resume();
    return sendError(res, { code: 'invalid', message: 'the body must be JSON (Content-Type: application/json)' });
  }
  const body = await readBody(req, maxBody);
  if (body === null) return sendError(res, { code: 'too-large', message: `the request body exceeds ${maxBody} bytes` });
  let payload: unknown;
  try {
    payload = body.length ? JSON.parse(body.toString('utf8')) : {};
  } catch (e) {
    return sendError(res, { code: 'invalid', message: `the body is not valid JSON: ${(e as Error).message}` });
  }
  const result = await dispatch(wb.handlers, method, payload);
  if (result.ok) sendJson(res, 200, result);
  else sendError(res, result.error);
}

/** GET /files/...: dataset images, thumbnails, run artifacts and task outputs (main/web/files.ts). */
async function serveFile(wb: Workbench, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  try {
    const { file, contentType } = await resolveFile(wb, url.pathname, url.searchParams);
    const st = await stat(file);
    res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': st.size, 'Cache-Control': 'private, max-age=60' });
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file).on('error', () => res.destroy()).pipe(res);
  } catch (e) {
    if (e instanceof ApiError) return sendError(res, e.toBody());
    sendError(res, { code: 'not-found', message: 'no such file' });
  }
}

/** The renderer's files; unknown paths get index.html (client-side routes); never outside the folder. */
async function serveStatic(rendererDir: string, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  let rel: string;
  try {
    rel = decodeURIComponent(url.pathname);
  } catch {
    return sendError(res, { code: 'invalid', message: 'malformed percent-encoding in the path' });
  }
  if (rel.split('/').some((s) => s === '..') || rel.includes('\\') || rel.includes('\0')) return sendError(res, { code: 'invalid', message: "'..' is not allowed in paths" });
  const root = await realpath(rendererDir).catch(() => null);
  const index = root && (await stat(join(root, 'index.html')).then((s) => s.isFile(), () => false));
  if (!root || !index) return sendHtml(res, 503, notBuiltPage(rendererDir));
  let file = join(root, rel);
  const real = await realpath(file).catch(() => null);
  const isFile = real !== null && real.startsWith(root + sep) && (await stat(real)).isFile();
  file = isFile ? real : join(root, 'index.html');
  const type = STATIC_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
  const data = await readFile(file);
  res.writeHead(200, { 'Content-Type': type, 'Content-Length': data.length, 'Cache-Control': file.endsWith('index.html') ? 'no-store' : 'private, max-age=3600' });
  res.end(req.method === 'HEAD' ? undefined : data);
}

/** Trades a URL token for a cookie and drops it from the address bar (and from history). */
function tokenToCookie(res: ServerResponse, url: URL, token: string): void {
  url.searchParams.delete('token');
  res.writeHead(302, {
    'Set-Cookie': `${COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`,
    Location: `${url.pathname}${url.search}`,
    'Cache-Control': 'no-store',
  });
  res.end();
}

/** Every HTTP request: security headers and access checks, then the API, files or the renderer. */
function requestHandler(o: { wb: Workbench; access: Access; maxBody: number; rendererDir: string }) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    securityHeaders(res);
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!o.access.hostAllowed(req)) return sendError(res, { code: 'unauthorized', message: 'this server only answers to a loopback host name' });
    if (!o.access.authorized(req, url)) {
      req.resume();
      return sendError(res, { code: 'unauthorized', message: 'missing or wrong token: open the URL printed by cnx serve' });
    }
    // The URL parser silently resolves '..' (even as %2e%2e): look at the raw path before it does.
    if (hasDotSegment(req.url ?? '/')) return sendError(res, { code: 'invalid', message: "'..' and '.' are not allowed in paths" });
    const tokenInUrl = url.searchParams.get('token');
    if (req.method === 'GET' && tokenInUrl !== null && !url.pathname.startsWith('/files/')) return tokenToCookie(res, url, tokenInUrl);
    if (url.pathname.startsWith('/api/')) return serveApi(o.wb, o.maxBody, req, res, url.pathname.slice(5));
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, { code: 'invalid', message: `${req.method} is not supported here` });
    if (url.pathname.startsWith('/files/')) return serveFile(o.wb, req, res, url);
    return serveStatic(o.rendererDir, req, res, url);
  };
}

/** Events on /ws: every connected client gets each hub batch as one text frame, the same string for all. */
function eventSockets(server: Server, wb: Workbench, access: Access, maxBuffered: number) {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 << 10 });
  const clients = new Set<WebSocket>();
  const unsubscribe = wb.hub.subscribe((batch: HubBatch) => {
    if (!clients.size) return;
    const text = batch.json();
    for (const ws of clients) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      // A client that cannot keep up is cut off rather than buffering without bound; it reconnects.
      if (ws.bufferedAmount > maxBuffered) ws.close(1013, 'too slow: reconnect and refetch');
      else ws.send(text);
    }
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const refuse = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (url.pathname !== '/ws') return refuse(404, 'Not Found');
    if (!access.hostAllowed(req) || !access.originAllowed(req) || !access.authorized(req, url)) return refuse(401, 'Unauthorized');
    wss.handleUpgrade(req, socket, head, (ws) => {
      clients.add(ws);
      ws.on('close', () => clients.delete(ws));
      ws.on('error', () => clients.delete(ws));
      // Clients only listen; anything they send is ignored.
      ws.on('message', () => undefined);
    });
  });
  return {
    clients,
    close() {
      unsubscribe();
      for (const ws of clients) ws.terminate();
      wss.close();
    },
  };
}

export async function startWebServer(o: WebServerOptions): Promise<WebServer> {
  const host = o.host ?? '127.0.0.1';
  const token = o.token ?? randomBytes(32).toString('base64url');
  const access = accessRules(host, token);
  const handle = requestHandler({ wb: o.workbench, access, maxBody: o.maxBodyBytes ?? 1 << 20, rendererDir: resolve(o.rendererDir) });
  const server = createServer((req, res) => {
    handle(req, res).catch((e: Error) => {
      console.error(`cnx serve: ${req.method} ${req.url?.split('?')[0]}: ${e.stack ?? e.message}`);
      if (!res.headersSent) sendError(res, { code: 'internal', message: e.message });
      else res.destroy();
    });
  });
  server.requestTimeout = 60_000;
  server.headersTimeout = 20_000;
  const sockets = eventSockets(server, o.workbench, access, o.maxClientBufferBytes ?? 64 << 20);

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, host, () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  return {
    url: `http://${urlHost}:${port}/?token=${token}`,
    host,
    port,
    token,
    server,
    get clients() {
      return sockets.clients.size;
    },
    async close() {
      sockets.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
