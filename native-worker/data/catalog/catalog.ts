// The dataset catalog: one SQLite database (workbench.db, WAL) in the workspace folder. Every write that
// belongs together is one transaction, so a process killed at any moment leaves a consistent catalog.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { migrate } from './schema.ts';
import {
  FLAG_CORRUPT,
  type DatasetKind,
  type DatasetRow,
  type EditField,
  type EditRow,
  type FieldChange,
  type ImageRow,
  type Issue,
  type LabelRow,
  type ScanRecord,
  type Split,
} from './types.ts';
import { UserError } from '../../../common/errors.ts';

export const CATALOG_FILE = 'workbench.db';

/** A request the catalog cannot satisfy (unknown dataset, name clash): a user error, not a bug. */
export class CatalogError extends UserError {
  override name = 'CatalogError';
}

interface DatasetDbRow {
  id: number;
  name: string;
  kind: DatasetKind;
  source: string;
  root: string;
  created_at: string;
  scan_generation: number;
  scan_state: DatasetRow['scanState'];
  scanned_at: string | null;
}

interface ImageDbRow {
  id: number;
  path: string;
  bytes: number;
  mtime_ms: number;
  content_hash: string | null;
  phash: string | null;
  width: number | null;
  height: number | null;
  channels: number | null;
  format: string | null;
  label_id: number | null;
  label: string | null;
  split: Split;
  flags: number;
  problem: ImageRow['problem'];
  problem_detail: string | null;
  added_at: string;
  modified_at: string;
}

/** The stored facts a rescan compares a file against to decide whether to analyse it again. */
export interface KnownFile {
  id: number;
  bytes: number;
  mtimeMs: number;
  problem: string | null;
}

const toDataset = (r: DatasetDbRow): DatasetRow => ({
  id: r.id,
  name: r.name,
  kind: r.kind,
  source: r.source,
  root: r.root,
  createdAt: r.created_at,
  scanGeneration: r.scan_generation,
  scanState: r.scan_state,
  scannedAt: r.scanned_at,
});

const toImage = (r: ImageDbRow): ImageRow => ({
  id: r.id,
  path: r.path,
  bytes: r.bytes,
  mtimeMs: r.mtime_ms,
  contentHash: r.content_hash,
  phash: r.phash,
  width: r.width,
  height: r.height,
  channels: r.channels,
  format: r.format,
  labelId: r.label_id,
  label: r.label,
  split: r.split,
  flags: r.flags,
  problem: r.problem,
  problemDetail: r.problem_detail,
  addedAt: r.added_at,
  modifiedAt: r.modified_at,
});

const IMAGE_COLUMNS = `i.id, i.path, i.bytes, i.mtime_ms, i.content_hash, i.phash, i.width, i.height, i.channels, i.format,
  i.label_id, l.name AS label, i.split, i.flags, i.problem, i.problem_detail, i.added_at, i.modified_at`;

/** Class order: fixed ordinals first (idx datasets), then by name, as torchvision's ImageFolder sorts. */
const LABEL_ORDER = 'ordinal IS NULL, ordinal, name';

export class Catalog {
  readonly db: Database.Database;
  readonly file: string;

  private constructor(
    readonly workspace: string,
    db: Database.Database,
    file: string,
  ) {
    this.db = db;
    this.file = file;
  }

  /** Opens (creating if needed) workspace/workbench.db and migrates it to the current schema. */
  static open(workspace: string): Catalog {
    const dir = resolve(workspace);
    mkdirSync(dir, { recursive: true });
    const file = join(dir, CATALOG_FILE);
    const db = new Database(file);
    try {
      db.pragma('journal_mode = WAL');
      // NORMAL is crash-safe in WAL mode (a killed process loses nothing committed); only power loss can
      // drop the last transactions, never corrupt.
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
      migrate(db, file);
    } catch (e) {
      db.close();
      throw e;
    }
    return new Catalog(dir, db, file);
  }

  close(): void {
    this.db.close();
  }

  // ---- datasets

  createDataset(d: { name: string; kind: DatasetKind; source: string; root: string }): DatasetRow {
    if (this.dataset(d.name)) throw new CatalogError(`a dataset named '${d.name}' already exists`);
    this.db
      .prepare('INSERT INTO datasets (name, kind, source, root, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(d.name, d.kind, d.source, d.root, new Date().toISOString());
    return this.requireDataset(d.name);
  }

  dataset(name: string): DatasetRow | undefined {
    const r = this.db.prepare('SELECT * FROM datasets WHERE name = ?').get(name) as DatasetDbRow | undefined;
    return r && toDataset(r);
  }

  requireDataset(name: string): DatasetRow {
    const d = this.dataset(name);
    if (!d) {
      const known = this.datasets().map((x) => x.name);
      throw new CatalogError(`no dataset named '${name}' in ${this.file}${known.length ? ` (known: ${known.join(', ')})` : ' (the catalog is empty)'}`);
    }
    return d;
  }

  datasets(): DatasetRow[] {
    return (this.db.prepare('SELECT * FROM datasets ORDER BY name').all() as DatasetDbRow[]).map(toDataset);
  }

  deleteDataset(name: string): void {
    this.db.prepare('DELETE FROM datasets WHERE name = ?').run(this.requireDataset(name).name);
  }

  // ---- labels

  /** Classes in manifest order; `index` is the class index a manifest stores. */
  labels(datasetId: number): LabelRow[] {
    const rows = this.db.prepare(`SELECT id, name, ordinal FROM labels WHERE dataset_id = ? ORDER BY ${LABEL_ORDER}`).all(datasetId) as Omit<LabelRow, 'index'>[];
    return rows.map((r, index) => ({ ...r, index }));
  }

  /** The id of a label, created when missing; returns whether it was created. */
  ensureLabel(datasetId: number, name: string, ordinal: number | null = null): { id: number; created: boolean } {
    const found = this.db.prepare('SELECT id FROM labels WHERE dataset_id = ? AND name = ?').get(datasetId, name) as { id: number } | undefined;
    if (found) return { id: found.id, created: false };
    const r = this.db.prepare('INSERT INTO labels (dataset_id, name, ordinal) VALUES (?, ?, ?)').run(datasetId, name, ordinal);
    return { id: Number(r.lastInsertRowid), created: true };
  }

  // ---- scans

  /** Starts a scan: a new generation that every file found by it is stamped with. */
  beginScan(datasetId: number): number {
    return this.db.transaction(() => {
      this.db.prepare("UPDATE datasets SET scan_generation = scan_generation + 1, scan_state = 'scanning' WHERE id = ?").run(datasetId);
      return (this.db.prepare('SELECT scan_generation AS g FROM datasets WHERE id = ?').get(datasetId) as { g: number }).g;
    })();
  }

  /** A prepared lookup of what the catalog knows about a path (the hot path of a rescan). */
  knownFiles(datasetId: number): (path: string) => KnownFile | undefined {
    const stmt = this.db.prepare('SELECT id, bytes, mtime_ms AS mtimeMs, problem FROM images WHERE dataset_id = ? AND path = ?');
    return (path) => stmt.get(datasetId, path) as KnownFile | undefined;
  }

  /** Writes one batch of scan results atomically: the images, their labels and the issues. */
  writeScanBatch(datasetId: number, generation: number, records: readonly ScanRecord[]): void {
    const now = new Date().toISOString();
    const seen = this.db.prepare('UPDATE images SET scan_generation = ? WHERE dataset_id = ? AND path = ?');
    // A changed file keeps its label, split and 'excluded' flag: those may be the user's curation.
    const upsert = this.db.prepare(`
      INSERT INTO images (dataset_id, path, bytes, mtime_ms, content_hash, phash, width, height, channels, format,
        label_id, split, flags, problem, problem_detail, scan_generation, added_at, modified_at)
      VALUES (@datasetId, @path, @bytes, @mtimeMs, @contentHash, @phash, @width, @height, @channels, @format,
        @labelId, @split, @corrupt, @problem, @problemDetail, @generation, @now, @now)
      ON CONFLICT (dataset_id, path) DO UPDATE SET
        bytes = excluded.bytes, mtime_ms = excluded.mtime_ms, content_hash = excluded.content_hash,
        phash = excluded.phash, width = excluded.width, height = excluded.height, channels = excluded.channels,
        format = excluded.format, flags = (flags & ~${FLAG_CORRUPT}) | excluded.flags, problem = excluded.problem,
        problem_detail = excluded.problem_detail, scan_generation = excluded.scan_generation,
        modified_at = CASE WHEN content_hash IS excluded.content_hash AND problem IS excluded.problem
                           THEN modified_at ELSE excluded.modified_at END`);
    const issue = this.db.prepare(`
      INSERT INTO scan_issues (dataset_id, path, reason, detail, scan_generation) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (dataset_id, path) DO UPDATE SET reason = excluded.reason, detail = excluded.detail,
        scan_generation = excluded.scan_generation`);
    this.db.transaction(() => {
      const labelIds = new Map<string, number>();
      for (const r of records) {
        if (r.type === 'seen') seen.run(generation, datasetId, r.path);
        else if (r.type === 'issue') issue.run(datasetId, r.path, r.reason, r.detail, generation);
        else {
          let labelId: number | null = null;
          if (r.label) {
            labelId = labelIds.get(r.label.name) ?? this.ensureLabel(datasetId, r.label.name, r.label.ordinal).id;
            labelIds.set(r.label.name, labelId);
          }
          const a = r.analysis;
          upsert.run({
            datasetId,
            path: r.path,
            bytes: r.bytes,
            mtimeMs: r.mtimeMs,
            contentHash: a.contentHash,
            phash: a.phash,
            width: a.width,
            height: a.height,
            channels: a.channels,
            format: a.format,
            labelId,
            split: r.split,
            corrupt: a.problem ? FLAG_CORRUPT : 0,
            problem: a.problem?.code ?? null,
            problemDetail: a.problem?.detail ?? null,
            generation,
            now,
          });
        }
      }
    })();
  }

  /**
   * Completes a scan: whatever this generation did not see is gone from disk, so its rows go; classes left
   * without images go too unless they are fixed (ordinal) or an edit remembers them.
   */
  finishScan(datasetId: number, generation: number): { removed: number } {
    return this.db.transaction(() => {
      const removed = this.db.prepare('DELETE FROM images WHERE dataset_id = ? AND scan_generation <> ?').run(datasetId, generation).changes;
      this.db.prepare('DELETE FROM scan_issues WHERE dataset_id = ? AND scan_generation <> ?').run(datasetId, generation);
      this.db
        .prepare(
          `DELETE FROM labels WHERE dataset_id = ? AND ordinal IS NULL
             AND NOT EXISTS (SELECT 1 FROM images WHERE label_id = labels.id)
             AND NOT EXISTS (SELECT 1 FROM edit_changes c JOIN edits e ON e.id = c.edit_id
                             WHERE e.undone_at IS NULL AND c.field = 'label_id' AND (c.old_value = labels.id OR c.new_value = labels.id))`,
        )
        .run(datasetId);
      this.db.prepare("UPDATE datasets SET scan_state = 'complete', scanned_at = ? WHERE id = ?").run(new Date().toISOString(), datasetId);
      return { removed };
    })();
  }

  /** Paths the last scans found but could not catalog, with reasons. */
  issues(datasetId: number): Issue[] {
    return this.db.prepare('SELECT path, reason, detail FROM scan_issues WHERE dataset_id = ? ORDER BY path').all(datasetId) as Issue[];
  }

  // ---- images

  images(datasetId: number, where = '', ...params: unknown[]): ImageRow[] {
    const sql = `SELECT ${IMAGE_COLUMNS} FROM images i LEFT JOIN labels l ON l.id = i.label_id
      WHERE i.dataset_id = ? ${where ? `AND (${where})` : ''} ORDER BY i.path`;
    return (this.db.prepare(sql).all(datasetId, ...params) as ImageDbRow[]).map(toImage);
  }

  /** Streams rows (one at a time from SQLite) for whole-dataset passes over large catalogs. */
  *iterateImages(datasetId: number, where = '', ...params: unknown[]): Generator<ImageRow> {
    const sql = `SELECT ${IMAGE_COLUMNS} FROM images i LEFT JOIN labels l ON l.id = i.label_id
      WHERE i.dataset_id = ? ${where ? `AND (${where})` : ''} ORDER BY i.path`;
    for (const r of this.db.prepare(sql).iterate(datasetId, ...params) as IterableIterator<ImageDbRow>) yield toImage(r);
  }

  imageByPath(datasetId: number, path: string): ImageRow | undefined {
    return this.images(datasetId, 'i.path = ?', path)[0];
  }

  // ---- edits

  /**
   * Applies field changes to images as one logged, undoable edit. Changes that set a field to the value it
   * already has are dropped; returns null when nothing changed.
   */
  recordEdit(datasetId: number, kind: string, summary: string, changes: readonly FieldChange[], createdLabels: readonly number[] = []): EditRow | null {
    return this.db.transaction(() => {
      const current = new Map<EditField, Database.Statement>();
      const read = (field: EditField) => {
        let s = current.get(field);
        if (!s) current.set(field, (s = this.db.prepare(`SELECT ${field} AS v FROM images WHERE id = ? AND dataset_id = ?`)));
        return s;
      };
      const effective: { change: FieldChange; old: number | string | null }[] = [];
      for (const c of changes) {
        const row = read(c.field).get(c.imageId, datasetId) as { v: number | string | null } | undefined;
        if (!row) throw new CatalogError(`image ${c.imageId} is not in this dataset`);
        if (row.v !== c.value) effective.push({ change: c, old: row.v });
      }
      if (!effective.length && !createdLabels.length) return null;
      const at = new Date().toISOString();
      const editId = Number(this.db.prepare('INSERT INTO edits (dataset_id, at, kind, summary) VALUES (?, ?, ?, ?)').run(datasetId, at, kind, summary).lastInsertRowid);
      const log = this.db.prepare('INSERT INTO edit_changes (edit_id, image_id, field, old_value, new_value) VALUES (?, ?, ?, ?, ?)');
      const updates = new Map<EditField, Database.Statement>();
      for (const { change, old } of effective) {
        let u = updates.get(change.field);
        if (!u) updates.set(change.field, (u = this.db.prepare(`UPDATE images SET ${change.field} = ? WHERE id = ?`)));
        u.run(change.value, change.imageId);
        log.run(editId, change.imageId, change.field, old, change.value);
      }
      const labelLog = this.db.prepare('INSERT INTO edit_labels (edit_id, label_id) VALUES (?, ?)');
      for (const l of createdLabels) labelLog.run(editId, l);
      return { id: editId, at, kind, summary, undoneAt: null, changes: effective.length };
    })();
  }

  /** Logs a decision that changes no field (a reviewed label kept as it is); undo just marks it undone. */
  recordNote(datasetId: number, kind: string, summary: string): EditRow {
    const at = new Date().toISOString();
    const id = Number(this.db.prepare('INSERT INTO edits (dataset_id, at, kind, summary) VALUES (?, ?, ?, ?)').run(datasetId, at, kind, summary).lastInsertRowid);
    return { id, at, kind, summary, undoneAt: null, changes: 0 };
  }

  /** The edit log, newest first. */
  edits(datasetId: number): EditRow[] {
    return this.db
      .prepare(
        `SELECT e.id, e.at, e.kind, e.summary, e.undone_at AS undoneAt, (SELECT COUNT(*) FROM edit_changes c WHERE c.edit_id = e.id) AS changes
         FROM edits e WHERE e.dataset_id = ? ORDER BY e.id DESC`,
      )
      .all(datasetId) as EditRow[];
  }

  /**
   * Undoes the newest edit not yet undone: restores every old value and drops the classes it created.
   * Returns the undone edit, or null when there is nothing to undo.
   */
  undo(datasetId: number): EditRow | null {
    return this.db.transaction(() => {
      const edit = this.edits(datasetId).find((e) => e.undoneAt === null);
      if (!edit) return null;
      const changes = this.db.prepare('SELECT image_id, field, old_value FROM edit_changes WHERE edit_id = ?').all(edit.id) as {
        image_id: number;
        field: EditField;
        old_value: number | string | null;
      }[];
      for (const c of changes) this.db.prepare(`UPDATE images SET ${c.field} = ? WHERE id = ?`).run(c.old_value, c.image_id);
      const labels = this.db.prepare('SELECT label_id FROM edit_labels WHERE edit_id = ?').pluck().all(edit.id) as number[];
      for (const l of labels) {
        this.db.prepare('DELETE FROM labels WHERE id = ? AND NOT EXISTS (SELECT 1 FROM images WHERE label_id = ?)').run(l, l);
      }
      const undoneAt = new Date().toISOString();
      this.db.prepare('UPDATE edits SET undone_at = ? WHERE id = ?').run(undoneAt, edit.id);
      return { ...edit, undoneAt };
    })();
  }

  // ---- versions

  /** Freezes a manifest (its exact JSON) as the dataset's next version. */
  addVersion(datasetId: number, hash: string, manifestJson: string): number {
    return this.db.transaction(() => {
      const next = (this.db.prepare('SELECT COALESCE(MAX(version), 0) + 1 AS v FROM dataset_versions WHERE dataset_id = ?').get(datasetId) as { v: number }).v;
      this.db
        .prepare('INSERT INTO dataset_versions (dataset_id, version, created_at, hash, manifest) VALUES (?, ?, ?, ?, ?)')
        .run(datasetId, next, new Date().toISOString(), hash, manifestJson);
      return next;
    })();
  }

  versions(datasetId: number): { version: number; createdAt: string; hash: string }[] {
    return this.db
      .prepare('SELECT version, created_at AS createdAt, hash FROM dataset_versions WHERE dataset_id = ? ORDER BY version')
      .all(datasetId) as { version: number; createdAt: string; hash: string }[];
  }

  versionManifest(datasetId: number, version: number): string | undefined {
    return this.db.prepare('SELECT manifest FROM dataset_versions WHERE dataset_id = ? AND version = ?').pluck().get(datasetId, version) as string | undefined;
  }
}
