// cnx dataset list: the datasets in the workspace catalog with their image counts.
import { FLAG_CORRUPT, FLAG_EXCLUDED } from '../../data/catalog/types.ts';
import { type Command, parseOptions } from '../command.ts';
import { JSON_HELP, WORKSPACE_HELP, jsonOption, noExtraPositionals, printJson, withCatalog, workspaceOption } from './shared.ts';

const help = `usage: cnx dataset list [options]

Lists the datasets in the catalog.
${WORKSPACE_HELP}
${JSON_HELP}`;

export const listCommand: Command = {
  summary: 'list the datasets in the catalog',
  async run(args) {
    const parsed = parseOptions(args, { ...workspaceOption, ...jsonOption }, help);
    if (!parsed) return 0;
    noExtraPositionals(parsed.positionals, 0, help);
    const rows = await withCatalog(parsed.values.workspace, (catalog) =>
      catalog.datasets().map((d) => ({
        name: d.name,
        kind: d.kind,
        source: d.source,
        root: d.root,
        scanState: d.scanState,
        scannedAt: d.scannedAt,
        images: catalog.db.prepare(`SELECT COUNT(*) FROM images WHERE dataset_id = ? AND (flags & ${FLAG_CORRUPT | FLAG_EXCLUDED}) = 0`).pluck().get(d.id) as number,
        classes: catalog.labels(d.id).length,
        versions: catalog.versions(d.id).length,
      })),
    );
    if (parsed.values.json) printJson(rows);
    else if (!rows.length) console.log('no datasets yet: cnx dataset import <folder>');
    else {
      for (const r of rows) {
        const state = r.scanState === 'complete' ? '' : `  [${r.scanState === 'scanning' ? 'scan incomplete: run import again' : 'never scanned'}]`;
        console.log(`${r.name.padEnd(24)} ${r.kind.padEnd(9)} ${String(r.images).padStart(8)} images ${String(r.classes).padStart(5)} classes  ${r.source}${state}`);
      }
    }
    return 0;
  },
};
