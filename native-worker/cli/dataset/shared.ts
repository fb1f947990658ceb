// What every `cnx dataset` subcommand shares: the workspace option, opening the catalog, and turning the
// data layer's user errors into CliErrors.
import { Catalog, CatalogError } from '../../data/catalog/catalog.ts';
import { ImportError } from '../../data/import/importer.ts';
import { IdxError } from '../../data/import/idx.ts';
import { ManifestError } from '../../../common/manifest.ts';
import { resolveWorkspace } from '../../workspace.ts';
import { CliError } from '../command.ts';

export const workspaceOption = { workspace: { type: 'string' } } as const;
export const jsonOption = { json: { type: 'boolean' } } as const;

export const WORKSPACE_HELP = '  --workspace DIR   workspace folder (default: $CNX_WORKSPACE, else the app-data folder)';
export const JSON_HELP = '  --json            print the result as JSON on stdout';

/** Opens the catalog of the chosen workspace for the duration of `fn`. */
export async function withCatalog<T>(workspace: string | undefined, fn: (catalog: Catalog) => Promise<T> | T): Promise<T> {
  const dir = resolveWorkspace(workspace);
  let catalog: Catalog;
  try {
    catalog = Catalog.open(dir);
  } catch (e) {
    throw new CliError(`cannot open the catalog in ${dir}: ${(e as Error).message}`);
  }
  try {
    return await fn(catalog);
  } catch (e) {
    if (e instanceof CatalogError || e instanceof ImportError || e instanceof IdxError || e instanceof ManifestError) throw new CliError(e.message);
    throw e;
  } finally {
    catalog.close();
  }
}

/** A required positional argument, or a CliError that shows the usage. */
export function positional(positionals: readonly string[], index: number, what: string, help: string): string {
  const v = positionals[index];
  if (!v) throw new CliError(`missing ${what}\n\n${help}`);
  return v;
}

export function noExtraPositionals(positionals: readonly string[], expected: number, help: string): void {
  if (positionals.length > expected) throw new CliError(`unexpected argument '${positionals[expected]}'\n\n${help}`);
}

/** Parses a numeric option; names the option in the error. */
export function numberOption(value: string | undefined, name: string, fallback: number, check: (n: number) => boolean = Number.isFinite): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !check(n)) throw new CliError(`--${name} '${value}' is not a valid value`);
  return n;
}

export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}
