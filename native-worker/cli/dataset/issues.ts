// cnx dataset issues: suspected label errors, outliers and semantic near-duplicates from a checkpoint's
// embeddings (computed first where the workspace lacks them), and the 2D map.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CURATE_DEFAULTS, curate, embedDataset, saveReport } from '../../curation/dataset.ts';
import { type Command, parseOptions } from '../command.ts';
import { createProgress } from '../progress.ts';
import { curationErrors } from './curation-shared.ts';
import { embedOptions, embedTarget } from './embed.ts';
import { JSON_HELP, WORKSPACE_HELP, jsonOption, numberOption, printJson, withCatalog, workspaceOption } from './shared.ts';

const help = `usage: cnx dataset issues <name> --weights FILE [options]

From the embeddings of --weights (computed and stored first when missing, as 'cnx dataset embed' does):
  label issues   out-of-sample probabilities of k-fold cross-validated linear probes (multinomial logistic
                 regression), then confident learning: images in the off-diagonal of the confident joint,
                 each with the suggested label and a score (1 - p(given label)), most suspect first
  outliers       cosine distance to the k-th nearest neighbour (exact search)
  groups         semantic near-duplicates: images linked by cosine similarity >= --threshold
  map            a 2D projection (UMAP-style) for the app's map
The full report is saved as curation.json beside the embeddings (and at --out FILE).
  --weights FILE    the checkpoint (a run's step-N.safetensors, or last.json / best.json)
  --folds N         cross-validation folds (default ${CURATE_DEFAULTS.folds})
  --k N             neighbours per image for the map (default ${CURATE_DEFAULTS.k})
  --threshold X     cosine similarity for near-duplicate groups (default ${CURATE_DEFAULTS.threshold})
  --top N           issues and outliers to print (default 20; --json prints all)
  --no-map          skip the 2D map
  --out FILE        also write the full report there
  --size, --batch, --provider, --threads   as for 'cnx dataset embed'
${WORKSPACE_HELP}
${JSON_HELP}`;

export const issuesCommand: Command = {
  summary: 'suspected label errors, outliers and semantic near-duplicates from a checkpoint',
  async run(args) {
    const parsed = parseOptions(args, { ...workspaceOption, ...jsonOption, ...embedOptions, folds: { type: 'string' }, k: { type: 'string' }, threshold: { type: 'string' }, top: { type: 'string' }, 'no-map': { type: 'boolean' }, out: { type: 'string' } }, help);
    if (!parsed) return 0;
    const v = parsed.values;
    const { name, weights, settings, workspace } = embedTarget(parsed, help);
    const folds = numberOption(v.folds, 'folds', CURATE_DEFAULTS.folds, (n) => Number.isInteger(n) && n >= 2 && n <= 20);
    const k = numberOption(v.k, 'k', CURATE_DEFAULTS.k, (n) => Number.isInteger(n) && n >= 1 && n <= 100);
    const threshold = numberOption(v.threshold, 'threshold', CURATE_DEFAULTS.threshold, (n) => n > 0 && n <= 1);
    const top = numberOption(v.top, 'top', 20, (n) => Number.isInteger(n) && n >= 0);
    const progress = createProgress();
    const update = (line: string, f: number) => progress.update(line, f);
    const { report, file } = await withCatalog(workspace, (catalog) =>
      curationErrors(async () => {
        const e = await embedDataset(catalog, workspace, name, weights, { ...settings, progress: (line, f) => update(line, 0.5 * f) });
        const report = await curate(catalog, e, { folds, k, threshold, map: !v['no-map'], progress: (line, f) => update(line, 0.5 + 0.5 * f) });
        return { report, file: saveReport(e.dir, report) };
      }),
    );
    progress.done();
    if (v.out) writeFileSync(resolve(v.out), JSON.stringify(report));
    if (v.json) {
      const { points: _points, ...rest } = report;
      printJson({ ...rest, report: file });
      return 0;
    }
    const t = report.timings;
    const lines = [
      `${report.points.ids.length} images, ${report.arch} at ${report.size} px (${report.note}); embed ${t.embed.toFixed(1)} s, probes ${t.probes?.toFixed(1) ?? '-'} s, neighbours ${t.neighbours.toFixed(1)} s, map ${t.projection?.toFixed(1) ?? '-'} s`,
      `suspected label errors: ${report.labelIssues.length}`,
      ...report.labelIssues.slice(0, top).map((x) => `  ${x.score.toFixed(3)}  ${x.path}  given ${x.given}, suggested ${x.suggested}`),
      `outliers (cosine distance to the ${k}th nearest neighbour):`,
      ...report.outliers.slice(0, top).map((x) => `  ${x.score.toFixed(3)}  ${x.path}`),
      `semantic near-duplicate groups (cosine >= ${threshold}): ${report.groups.length}`,
      ...report.groups.slice(0, top).map((g) => `  ${g.paths.join('  ')}`),
      `report: ${file}`,
    ];
    console.log(lines.join('\n'));
    return 0;
  },
};
