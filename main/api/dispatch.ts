// The server side of every transport: validate the request, run the handler, validate the response, and
// answer an ApiResult envelope. A handler bug (a response that breaks the contract, an exception) is an
// 'internal' error with a message, never a hang or a crash of the main process.
import { ApiError, type ApiErrorCode, type ApiResult, apiMethods, invalidRequest, isApiMethod } from '../../common/api.ts';
import type { ApiHandlers } from '../services/workbench.ts';

export async function dispatch(handlers: ApiHandlers, method: string, request: unknown, log: (message: string) => void = console.error): Promise<ApiResult> {
  if (!isApiMethod(method)) return { ok: false, error: { code: 'not-found', message: `no API method '${method}'` } };
  const spec = apiMethods[method];
  const req = spec.request.safeParse(request ?? {});
  if (!req.success) return { ok: false, error: invalidRequest(req.error).toBody() };
  try {
    const handler = handlers[method] as (r: unknown) => unknown;
    const value = await handler(req.data);
    const res = spec.response.safeParse(value);
    if (!res.success) {
      const issue = res.error.issues[0];
      log(`cnx api: ${method} answered outside the contract at ${issue?.path.join('.')}: ${issue?.message}`);
      return { ok: false, error: { code: 'internal', message: `${method}: the service produced an invalid response` } };
    }
    return { ok: true, value: res.data };
  } catch (e) {
    if (e instanceof ApiError) return { ok: false, error: e.toBody() };
    log(`cnx api: ${method} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    return { ok: false, error: { code: 'internal', message: `${method}: ${e instanceof Error ? e.message : String(e)}` } };
  }
}

/** The HTTP status that goes with an error code. */
export const HTTP_STATUS: Record<ApiErrorCode, number> = {
  invalid: 400,
  unauthorized: 401,
  'not-found': 404,
  conflict: 409,
  'too-large': 413,
  unsupported: 501,
  internal: 500,
};
