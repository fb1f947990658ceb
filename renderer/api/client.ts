// The one WorkbenchApi client of the renderer. Stores reach the backend only through api(); the entry point
// installs the client for the transport it finds, and tests install one over a fake or an in-process server.
import type { WorkbenchApi } from '../../common/api.ts';

let current: WorkbenchApi | null = null;

export function setApi(api: WorkbenchApi | null): void {
  current = api;
}

export function api(): WorkbenchApi {
  if (!current) throw new Error('no API client installed (setApi was not called)');
  return current;
}
