// cnx dataset export-manifest: freezes the dataset as a version and writes its manifest file.
import { exportManifest } from '../../data/manifest.ts';
import { type Command, parseOptions } from '../command.ts';
import { JSON_HELP, WORKSPACE_HELP, jsonOption, noExtraPositionals, positional, printJson, withCatalog, workspaceOption } from './shared.ts';

const help = `usage: cnx dataset export-manifest <name> <file> [options]

Writes the usable images (not corrupt, not excluded) with labels and splits as a manifest file, and
records it as a dataset version (an unchanged dataset keeps its latest version).
${WORKSPACE_HELP}
${JSON_HELP}`;

export const exportManifestCommand: Command = {
  summary: 'freeze a version and write its manifest',
  async run(args) {
    const parsed = parseOptions(args, { ...workspaceOption, ...jsonOption }, help);
    if (!parsed) return 0;
    const name = positional(parsed.positionals, 0, 'the dataset name', help);
    const file = positional(parsed.positionals, 1, 'the manifest file to write', help);
    noExtraPositionals(parsed.positionals, 2, help);
    const r = await withCatalog(parsed.values.workspace, (catalog) => exportManifest(catalog, name, file));
    const counts = { train: 0, val: 0, test: 0 };
    for (const i of r.manifest.items) counts[i.split]++;
    const out = { dataset: name, file: r.file, version: r.version, hash: r.manifest.hash, classes: r.manifest.classes.length, items: r.manifest.items.length, splits: counts };
    if (parsed.values.json) printJson(out);
    else console.log(`wrote ${r.file}: '${name}' version ${r.version}, ${out.items} items (train ${counts.train}, val ${counts.val}, test ${counts.test}), ${out.classes} classes, sha256 ${r.manifest.hash}`);
    return 0;
  },
};
