// Errors as the UI shows them: the backend's own message (ApiError carries it, with the code and the bad
// field), and for anything else the thrown message, so a failure reads the same wherever it surfaces.
import { ApiError } from '../../common/api.ts';

export interface ShownError {
  message: string;
  /** The API error code ('invalid', 'conflict', ...), or null for a local failure. */
  code: string | null;
  /** The dotted request field the backend blamed, when it named one. */
  field: string | null;
}

export function shownError(e: unknown): ShownError {
  if (e instanceof ApiError) return { message: e.message, code: e.code, field: e.field ?? null };
  if (e instanceof Error) return { message: e.message, code: null, field: null };
  return { message: String(e), code: null, field: null };
}
