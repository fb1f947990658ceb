// The app:// protocol: the built renderer under app://workbench/, and /files/... (dataset images,
// thumbnails, run artifacts) through the same checks as web mode. Every response carries the CSP.
import { net, protocol } from 'electron';
import { realpath, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApiError } from '../../common/api.ts';
import { HTTP_STATUS } from '../api/dispatch.ts';
import { resolveFile } from '../web/files.ts';
import type { Workbench } from '../services/workbench.ts';
import { contentSecurityPolicy } from '../csp.ts';

export const APP_SCHEME = 'app';

const CSP = contentSecurityPolicy("'self'");

/** Must run before the app is ready: app:// behaves like https (standard, secure, fetch allowed). */
export function registerAppScheme(): void {
  protocol.registerSchemesAsPrivileged([{ scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true, stream: true } }]);
}

function withHeaders(res: Response, contentType?: string): Response {
  const headers = new Headers(res.headers);
  headers.set('Content-Security-Policy', CSP);
  headers.set('X-Content-Type-Options', 'nosniff');
  if (contentType) headers.set('Content-Type', contentType);
  return new Response(res.body, { status: res.status, headers });
}

const text = (status: number, message: string) => withHeaders(new Response(message, { status }), 'text/plain; charset=utf-8');

export function handleAppProtocol(wb: Workbench, rendererDir: string): void {
  protocol.handle(APP_SCHEME, async (request) => {
    const url = new URL(request.url);
    if (url.host !== 'workbench') return text(404, 'unknown host');
    if (url.pathname.startsWith('/files/')) {
      try {
        const { file, contentType } = await resolveFile(wb, url.pathname, url.searchParams);
        return withHeaders(await net.fetch(pathToFileURL(file).toString()), contentType);
      } catch (e) {
        if (e instanceof ApiError) return text(HTTP_STATUS[e.code], e.message);
        return text(404, 'no such file');
      }
    }
    // The renderer: a known file, else index.html (client-side routes); never outside its folder.
    const root = await realpath(rendererDir).catch(() => null);
    if (!root) return text(503, `the renderer is not built (expected in ${rendererDir})`);
    const candidate = await realpath(join(root, decodeURIComponent(url.pathname))).catch(() => null);
    const isFile = candidate !== null && candidate.startsWith(root + sep) && (await stat(candidate)).isFile();
    return withHeaders(await net.fetch(pathToFileURL(isFile ? candidate : join(root, 'index.html')).toString()));
  });
}
