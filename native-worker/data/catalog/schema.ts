// The catalog's schema in workbench.db, as an ordered list of migrations: user_version is how many have run.
// Append new migrations; never edit one that has shipped.
import type { Database } from 'better-sqlite3';

const migrations: readonly string[] = [
  // 1: datasets, labels, images, scan issues, frozen versions, the edit log.
  `
  CREATE TABLE datasets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('folder', 'csv', 'idx', 'unlabeled')),
    source TEXT NOT NULL,             -- what the user imported: a folder, a CSV/TSV file or an idx folder
    root TEXT NOT NULL,               -- absolute folder that image paths are relative to
    created_at TEXT NOT NULL,
    scan_generation INTEGER NOT NULL DEFAULT 0,
    scan_state TEXT NOT NULL DEFAULT 'new' CHECK (scan_state IN ('new', 'scanning', 'complete')),
    scanned_at TEXT
  );
  CREATE TABLE labels (
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    ordinal INTEGER,                  -- fixed class index (idx datasets); NULL sorts by name like ImageFolder
    UNIQUE (dataset_id, name)
  );
  CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    path TEXT NOT NULL,               -- relative to the dataset root, '/' separated
    bytes INTEGER NOT NULL,
    mtime_ms REAL NOT NULL,
    content_hash TEXT,                -- sha1 of the file's bytes; NULL when unreadable
    phash TEXT,                       -- 64-bit pHash as 16 hex digits; NULL when undecodable
    width INTEGER,                    -- oriented (EXIF-applied) size
    height INTEGER,
    channels INTEGER,
    format TEXT,
    label_id INTEGER REFERENCES labels(id),
    split TEXT NOT NULL CHECK (split IN ('train', 'val', 'test')),
    flags INTEGER NOT NULL DEFAULT 0, -- bit 0 corrupt, bit 1 excluded
    problem TEXT,                     -- why it is corrupt (a code), with a human detail
    problem_detail TEXT,
    scan_generation INTEGER NOT NULL,
    added_at TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    UNIQUE (dataset_id, path)
  );
  CREATE INDEX images_by_hash ON images (dataset_id, content_hash);
  CREATE INDEX images_by_label ON images (label_id);
  CREATE TABLE scan_issues (
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    scan_generation INTEGER NOT NULL,
    UNIQUE (dataset_id, path)
  );
  CREATE TABLE dataset_versions (
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    hash TEXT NOT NULL,
    manifest TEXT NOT NULL,           -- the frozen manifest JSON, byte for byte as exported
    UNIQUE (dataset_id, version)
  );
  CREATE TABLE edits (
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    summary TEXT NOT NULL,
    undone_at TEXT
  );
  CREATE TABLE edit_changes (
    edit_id INTEGER NOT NULL REFERENCES edits(id) ON DELETE CASCADE,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    field TEXT NOT NULL CHECK (field IN ('label_id', 'split', 'flags')),
    old_value ANY,
    new_value ANY
  ) STRICT;
  CREATE INDEX edit_changes_by_edit ON edit_changes (edit_id);
  CREATE INDEX edit_changes_by_image ON edit_changes (image_id);
  CREATE TABLE edit_labels (
    edit_id INTEGER NOT NULL REFERENCES edits(id) ON DELETE CASCADE,
    label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE
  );
  `,
];

export const SCHEMA_VERSION = migrations.length;

/** Brings the database to SCHEMA_VERSION, one transaction per migration so a crash never half-migrates. */
export function migrate(db: Database, file: string): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new Error(`${file}: schema version ${current} is newer than this build understands (${SCHEMA_VERSION}); update the workbench`);
  }
  for (let v = current; v < SCHEMA_VERSION; v++) {
    db.transaction(() => {
      db.exec(migrations[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
