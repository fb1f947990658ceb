// The API's vocabulary: names, ids, states and the error every transport returns.
import { z } from 'zod';
import { SPLITS } from '../manifest.ts';


/** A dataset's name as the catalog stores it (no path separators, never '.' or '..'). */
export const DatasetName = z
  .string()
  .min(1)
  .max(200)
  .refine((n) => !/[/\\\0]/.test(n) && n !== '.' && n !== '..', "must not contain '/', '\\' or be '.' or '..'");

/** A path inside a dataset, relative to its root: '/' separated, no '.', '..' or empty segments. */
export const RelativePath = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => !p.includes('\\') && !p.includes('\0') && p.split('/').every((s) => s !== '' && s !== '.' && s !== '..'), "must be relative, '/' separated, without '.', '..' or empty segments");

/** A run's id: also its folder name under runs/, so it is restricted to file-name-safe characters. */
export const RunId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$/, 'is not a run id');

export const Split = z.enum(SPLITS);
export const EngineName = z.enum(['onnx', 'torch']);
export type EngineName = z.infer<typeof EngineName>;
/** 'auto': the PyTorch engine when a Python with torch and a GPU is found, else the ONNX engine. */
export const EngineChoice = z.enum(['auto', 'onnx', 'torch']);
export type EngineChoice = z.infer<typeof EngineChoice>;
export const DeviceChoice = z.enum(['auto', 'cpu', 'cuda', 'mps']);

/**
 * queued -> running -> completed | failed; running -> pausing -> paused; running -> cancelling -> cancelled;
 * a worker that dies without saying `done` (or a workbench that stopped mid-run) leaves it interrupted.
 * paused, interrupted, failed and cancelled runs can resume from their last checkpoint.
 */
export const RunState = z.enum(['queued', 'running', 'pausing', 'paused', 'cancelling', 'cancelled', 'completed', 'failed', 'interrupted']);
export type RunState = z.infer<typeof RunState>;
export const ACTIVE_RUN_STATES: readonly RunState[] = ['running', 'pausing', 'cancelling'];
export const RESUMABLE_RUN_STATES: readonly RunState[] = ['paused', 'interrupted', 'failed', 'cancelled'];

export const ApiErrorCode = z.enum(['invalid', 'unauthorized', 'not-found', 'conflict', 'too-large', 'unsupported', 'internal']);
export type ApiErrorCode = z.infer<typeof ApiErrorCode>;
export const ApiErrorBody = z.object({ code: ApiErrorCode, message: z.string(), field: z.string().optional() });
export type ApiErrorBody = z.infer<typeof ApiErrorBody>;

/** What every transport returns for a request. */
export const ApiResult = z.discriminatedUnion('ok', [z.object({ ok: z.literal(true), value: z.unknown() }), z.object({ ok: z.literal(false), error: ApiErrorBody })]);
export type ApiResult = z.infer<typeof ApiResult>;

/** A failed request; `field` is the dotted path of the bad request field when there is one. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }

  toBody(): ApiErrorBody {
    return this.field === undefined ? { code: this.code, message: this.message } : { code: this.code, message: this.message, field: this.field };
  }
}

/** The first problem of a failed zod parse as an 'invalid' ApiError naming the field. */
export function invalidRequest(error: z.ZodError, prefix = ''): ApiError {
  const first = error.issues[0];
  const path = [prefix, ...(first?.path ?? []).map(String)].filter(Boolean).join('.');
  return new ApiError('invalid', `${path || 'request'}: ${first?.message ?? 'invalid'}`, path || undefined);
}
