// cnx dataset dupes: exact duplicate groups (same bytes) and near-duplicate groups (perceptual hash).
import { DEFAULT_NEAR_THRESHOLD, type DuplicateGroup, exactDuplicateGroups, nearDuplicateGroups } from '../../data/curate/dupes.ts';
import { semanticDuplicateGroups } from '../../curation/semantic-dupes.ts';
import { resolveWorkspace } from '../../workspace.ts';
import { type Command, parseOptions } from '../command.ts';
import { JSON_HELP, WORKSPACE_HELP, jsonOption, noExtraPositionals, numberOption, positional, printJson, withCatalog, workspaceOption } from './shared.ts';

const help = `usage: cnx dataset dupes <name> [options]

Lists groups of exact duplicates (identical files) and near duplicates (resized or re-encoded copies:
perceptual hashes at most --threshold bits apart), and the semantic near-duplicates (embeddings above a
cosine threshold) that the newest 'cnx dataset issues' found.
  --threshold N     Hamming distance for near duplicates, 0..32 (default ${DEFAULT_NEAR_THRESHOLD})
${WORKSPACE_HELP}
${JSON_HELP}`;

function groupLines(title: string, groups: readonly DuplicateGroup[]): string[] {
  const lines = [`${title}: ${groups.length} group(s)`];
  for (const g of groups) {
    lines.push(`  ${g.key}`);
    for (const i of g.images) lines.push(`    ${i.path}  [${i.label ?? 'unlabeled'}, ${i.split}]`);
  }
  return lines;
}

export const dupesCommand: Command = {
  summary: 'exact and near-duplicate groups',
  async run(args) {
    const parsed = parseOptions(args, { ...workspaceOption, ...jsonOption, threshold: { type: 'string' } }, help);
    if (!parsed) return 0;
    const name = positional(parsed.positionals, 0, 'the dataset name', help);
    noExtraPositionals(parsed.positionals, 1, help);
    const threshold = numberOption(parsed.values.threshold, 'threshold', DEFAULT_NEAR_THRESHOLD, (n) => Number.isInteger(n) && n >= 0 && n <= 32);
    const workspace = resolveWorkspace(parsed.values.workspace);
    const result = await withCatalog(workspace, (catalog) => {
      const ds = catalog.requireDataset(name);
      const semantic = semanticDuplicateGroups(catalog, workspace, ds.id);
      return { dataset: ds.name, threshold, exact: exactDuplicateGroups(catalog, ds.id), near: nearDuplicateGroups(catalog, ds.id, threshold), semantic };
    });
    if (parsed.values.json) printJson(result);
    else console.log([...groupLines('exact duplicates', result.exact), ...groupLines(`near duplicates (<= ${threshold} bits)`, result.near), ...groupLines('semantic near-duplicates (from the newest cnx dataset issues)', result.semantic)].join('\n'));
    return 0;
  },
};
