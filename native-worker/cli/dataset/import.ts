// cnx dataset import: catalogs a class-folder tree, a CSV/TSV list, an unlabeled folder or MNIST-style idx
// files; run again on the same source to pick up added, changed and removed files.
import { DATASET_KINDS, type DatasetKind, type Issue } from '../../data/catalog/types.ts';
import { type ImportProgress, type ImportSummary, importDataset } from '../../data/import/importer.ts';
import type { IdxClasses } from '../../data/import/idx.ts';
import { type Command, CliError, parseOptions } from '../command.ts';
import { createProgress } from '../progress.ts';
import { JSON_HELP, WORKSPACE_HELP, jsonOption, noExtraPositionals, numberOption, positional, printJson, withCatalog, workspaceOption } from './shared.ts';

const help = `usage: cnx dataset import <folder|csv|idx-dir> [options]

Imports images into the workspace catalog (or rescans a dataset imported before).
  folder     class folders (cat/x.jpg), optionally under train/ val/ test/
  csv        a CSV/TSV list: path,label[,split] (paths relative to the list's folder)
  idx        a folder with MNIST/Fashion-MNIST idx files, written out as PNGs in the workspace
  unlabeled  every image under the folder, without labels (for pretraining)

options:
  --name N            dataset name (default: the source's name)
  --kind K            folder | csv | idx | unlabeled (default: detected)
  --idx-classes C     fashion-mnist | mnist (default: fashion-mnist when the path says so)
  --concurrency N     files analysed at once (default: cores + 1)
  --batch N           scan results per transaction (default 256)
  --max-pixels N      larger images are rejected as decompression bombs (default 100000000)
${WORKSPACE_HELP}
${JSON_HELP}`;

const options = {
  ...workspaceOption,
  ...jsonOption,
  name: { type: 'string' },
  kind: { type: 'string' },
  'idx-classes': { type: 'string' },
  concurrency: { type: 'string' },
  batch: { type: 'string' },
  'max-pixels': { type: 'string' },
} as const;

const positiveInt = (n: number) => Number.isSafeInteger(n) && n > 0;

function describe(p: ImportProgress): string {
  if (p.phase === 'materialize') return `writing idx images as PNG: ${p.done}/${p.total ?? '?'}`;
  if (p.phase === 'finish') return 'finishing: removing vanished files, counting duplicates';
  return `scanned ${p.done} files: ${p.added} new, ${p.changed} changed, ${p.unchanged} unchanged, ${p.issues} skipped`;
}

function issueLines(title: string, issues: readonly Issue[]): string[] {
  if (!issues.length) return [];
  return [`${title} (${issues.length}):`, ...issues.map((i) => `  ${i.path}: ${i.reason}: ${i.detail}`)];
}

export function formatSummary(s: ImportSummary): string {
  return [
    `dataset '${s.dataset}' (${s.kind}, root ${s.root}): ${s.images} images, ${s.classes} classes`,
    `  added ${s.added}, changed ${s.changed}, removed ${s.removed}, unchanged ${s.unchanged}`,
    `  exact duplicate groups ${s.exactDuplicateGroups}, near-duplicate groups ${s.nearDuplicateGroups}`,
    ...issueLines('corrupt', s.corrupt),
    ...issueLines('skipped', s.skipped),
  ].join('\n');
}

export const importCommand: Command = {
  summary: 'import or rescan a folder, CSV list or idx files',
  async run(args) {
    const parsed = parseOptions(args, options, help);
    if (!parsed) return 0;
    const { values, positionals } = parsed;
    const source = positional(positionals, 0, 'the folder, CSV file or idx folder to import', help);
    noExtraPositionals(positionals, 1, help);
    if (values.kind !== undefined && !DATASET_KINDS.includes(values.kind as DatasetKind)) {
      throw new CliError(`--kind '${values.kind}' is not one of ${DATASET_KINDS.join(', ')}`);
    }
    const idxClasses = values['idx-classes'];
    if (idxClasses !== undefined && idxClasses !== 'fashion-mnist' && idxClasses !== 'mnist') {
      throw new CliError(`--idx-classes '${idxClasses}' is not one of fashion-mnist, mnist`);
    }
    const progress = createProgress();
    const abort = new AbortController();
    // Ctrl-C stops cleanly: what was analysed is committed, and a rerun continues from there.
    const onSigint = () => abort.abort(new Error('interrupted'));
    process.once('SIGINT', onSigint);
    try {
      const summary = await withCatalog(values.workspace, (catalog) =>
        importDataset(catalog, {
          source,
          ...(values.name !== undefined ? { name: values.name } : {}),
          ...(values.kind !== undefined ? { kind: values.kind as DatasetKind } : {}),
          ...(idxClasses !== undefined ? { idxClasses: idxClasses as IdxClasses } : {}),
          ...(values.concurrency !== undefined ? { concurrency: numberOption(values.concurrency, 'concurrency', 0, positiveInt) } : {}),
          batchSize: numberOption(values.batch, 'batch', 256, positiveInt),
          maxPixels: numberOption(values['max-pixels'], 'max-pixels', 100_000_000, positiveInt),
          signal: abort.signal,
          onProgress: (p) => progress.update(describe(p)),
        }),
      );
      progress.done();
      if (values.json) printJson(summary);
      else console.log(formatSummary(summary));
      return 0;
    } catch (e) {
      progress.done();
      if (abort.signal.aborted) {
        console.error('cnx dataset import: interrupted; the images scanned so far are saved, run the same command again to continue');
        return 130;
      }
      throw e;
    } finally {
      process.off('SIGINT', onSigint);
    }
  },
};
