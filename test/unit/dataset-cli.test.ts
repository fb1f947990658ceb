// `cnx dataset ...` as a user runs it: JSON summaries on stdout, errors naming the file and problem on
// stderr with exit code 2, the workspace from --workspace or CNX_WORKSPACE.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readManifest } from '../../native-worker/data/manifest.ts';
import { PLANTED, plantFolder, removeDir, tempDir } from '../helpers/images.ts';

function cnx(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, ['bin/cnx.mjs', 'dataset', ...args], { encoding: 'utf8', env: { ...process.env, CNX_WORKSPACE: '', ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout) as Record<string, unknown> };
}

describe('cnx dataset', () => {
  let root: string;
  let ws: string;
  before(async () => {
    root = tempDir('cli-src');
    ws = tempDir('cli-ws');
    await plantFolder(root);
  });
  after(() => {
    removeDir(root);
    removeDir(ws);
  });

  test('import --json prints the summary with counts and reasons', () => {
    const r = cnx(['import', root, '--name', 'pets', '--json', '--workspace', ws]);
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /\r|\x1b\[/, 'no terminal redraws when stderr is not a terminal');
    const s = r.json();
    assert.deepEqual(
      [s.dataset, s.kind, s.images, s.classes, s.exactDuplicateGroups, s.nearDuplicateGroups],
      ['pets', 'folder', PLANTED.images, PLANTED.classes.length, 1, 1],
    );
    const reasons = (list: unknown) => Object.fromEntries((list as { path: string; reason: string }[]).map((i) => [i.path, i.reason]));
    assert.deepEqual(reasons(s.corrupt), PLANTED.corrupt);
    assert.deepEqual(reasons(s.skipped), PLANTED.skipped);
  });

  test('stats, dupes, split, undo, export-manifest and list', async () => {
    const stats = cnx(['stats', 'pets', '--json', '--workspace', ws]).json();
    assert.deepEqual((stats.classes as { name: string; total: number }[]).map((c) => [c.name, c.total]), [['cat', 10], ['dog', 3], ['ñandú', 1]]);

    const dupes = cnx(['dupes', 'pets', '--json', '--workspace', ws]).json() as { exact: { images: { path: string }[] }[]; near: { images: { path: string }[] }[] };
    assert.deepEqual(dupes.exact.map((g) => g.images.map((i) => i.path)), PLANTED.exactGroups);
    assert.deepEqual(dupes.near.map((g) => g.images.map((i) => i.path)), PLANTED.nearGroups);

    // CNX_WORKSPACE instead of --workspace.
    const split = cnx(['split', 'pets', '--val', '0.3', '--seed', '0', '--json'], { CNX_WORKSPACE: ws });
    assert.equal(split.status, 0, split.stderr);
    assert.deepEqual(split.json().counts, { train: 10, val: 4, test: 0 }, 'round(0.3 x 10) + round(0.3 x 3) + round(0.3 x 1)');
    const undone = cnx(['undo', 'pets', '--json', '--workspace', ws]).json() as { undone: { kind: string } };
    assert.equal(undone.undone.kind, 'split');
    cnx(['split', 'pets', '--val', '0.3', '--seed', '0', '--workspace', ws]);

    const file = join(ws, 'pets.manifest.json');
    const exported = cnx(['export-manifest', 'pets', file, '--json', '--workspace', ws]);
    assert.equal(exported.status, 0, exported.stderr);
    const e = exported.json();
    assert.deepEqual([e.version, e.items, e.classes, e.splits], [1, PLANTED.images, 3, { train: 10, val: 4, test: 0 }]);
    const m = await readManifest(file);
    assert.equal(m.hash, e.hash);
    assert.equal(m.root, root);

    const list = JSON.parse(cnx(['list', '--json', '--workspace', ws]).stdout) as { name: string; images: number; versions: number; scanState: string }[];
    assert.deepEqual(list.map((d) => [d.name, d.images, d.versions, d.scanState]), [['pets', PLANTED.images, 1, 'complete']]);

    const text = cnx(['stats', 'pets', '--workspace', ws]);
    assert.match(text.stdout, /14 usable images: train 10, val 4, test 0; 4 corrupt, 0 excluded/);
  });

  test('mistakes exit with code 2 and say what is wrong with which file', () => {
    const missing = join(root, 'no-such-folder');
    const cases: [string[], RegExp][] = [
      [['import', missing, '--workspace', ws], new RegExp(`^cnx dataset: ${missing}: no such file or folder`)],
      [['import', root, '--kind', 'csv', '--workspace', ws], /--kind csv needs a CSV\/TSV file, this is a folder/],
      [['import', root, '--kind', 'images', '--workspace', ws], /--kind 'images' is not one of folder, csv, idx, unlabeled/],
      [['import', join(root, 'dog', 'notes.txt'), '--kind', 'idx', '--workspace', ws], /notes\.txt: --kind idx needs a folder/],
      [['import', join(root, 'cat'), '--name', 'pets', '--workspace', ws], /dataset 'pets' already exists for folder .*; choose another --name/],
      [['stats', 'cats', '--workspace', ws], /no dataset named 'cats' in .*workbench\.db \(known: pets\)/],
      [['split', 'pets', '--workspace', ws], /missing --val F/],
      [['split', 'pets', '--val', '2', '--workspace', ws], /--val '2' is not a valid value/],
      [['import', '--workspace', ws], /missing the folder, CSV file or idx folder to import/],
      [['frobnicate'], /unknown subcommand 'frobnicate'/],
    ];
    for (const [args, message] of cases) {
      const r = cnx(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace for a user mistake');
    }
  });
});
