// The services' tables in workbench.db (runs, attempts, metrics, checkpoints, artifacts, run events,
// settings). The catalog owns PRAGMA user_version for its own migrations, so ours are counted in a row of
// schema_components instead: each part of the app migrates independently in the same file.
import type { Database } from 'better-sqlite3';

export const COMPONENT = 'services';

const migrations: readonly string[] = [
  // 1: runs and what they produce.
  `
  CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    arch TEXT NOT NULL,
    dataset TEXT,
    run_dir TEXT NOT NULL,
    config TEXT NOT NULL,               -- the resolved job config (runDir set, resume null)
    engine_choice TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    queued_at TEXT,
    started_at TEXT,
    finished_at TEXT,
    engine TEXT,
    device TEXT,
    lane TEXT,
    step INTEGER,
    total_steps INTEGER,
    epoch REAL,
    images_per_sec REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_checkpoint_step INTEGER,
    best_top1 REAL,
    error_message TEXT,
    error_detail TEXT,
    event_seq INTEGER NOT NULL DEFAULT 0  -- the last line of events.jsonl reflected here
  );
  CREATE INDEX runs_by_state ON runs (state, priority DESC, queued_at);
  CREATE TABLE jobs (                     -- one row per attempt: each start or resume of a run
    run_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    engine TEXT NOT NULL,
    lane TEXT NOT NULL,
    pid INTEGER,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    resumed_from_step INTEGER,
    exit_code INTEGER,
    signal TEXT,
    outcome TEXT,
    done_status TEXT,                     -- what the worker's 'done' event said, if it got that far
    error_message TEXT,
    error_detail TEXT,
    stderr_tail TEXT,
    PRIMARY KEY (run_id, attempt)
  );
  CREATE TABLE metrics (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    step INTEGER NOT NULL,
    value REAL,                           -- NULL for a non-finite value
    PRIMARY KEY (run_id, name, step)      -- a resumed run rewrites the steps after its checkpoint
  ) WITHOUT ROWID;
  CREATE TABLE checkpoints (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    path TEXT NOT NULL,
    state_path TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
  );
  CREATE TABLE artifacts (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,                   -- relative to the run folder
    at TEXT NOT NULL,
    UNIQUE (run_id, path)
  );
  CREATE TABLE run_events (               -- worker events other than progress and metrics (those are in metrics)
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at REAL NOT NULL,
    type TEXT NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
  ) WITHOUT ROWID;
  CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  `,
  // 2: runs followed from a folder that no service here supervises (a cluster run): read-only.
  'ALTER TABLE runs ADD COLUMN remote INTEGER NOT NULL DEFAULT 0;',
];

export const SERVICES_SCHEMA_VERSION = migrations.length;

/** Brings the services' tables to the current version, one transaction per migration. */
export function migrateServices(db: Database, file: string): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_components (component TEXT PRIMARY KEY, version INTEGER NOT NULL)');
  const row = db.prepare('SELECT version FROM schema_components WHERE component = ?').get(COMPONENT) as { version: number } | undefined;
  const current = row?.version ?? 0;
  if (current > SERVICES_SCHEMA_VERSION) {
    throw new Error(`${file}: services schema version ${current} is newer than this build understands (${SERVICES_SCHEMA_VERSION}); update the workbench`);
  }
  for (let v = current; v < SERVICES_SCHEMA_VERSION; v++) {
    db.transaction(() => {
      db.exec(migrations[v]!);
      db.prepare('INSERT INTO schema_components (component, version) VALUES (?, ?) ON CONFLICT (component) DO UPDATE SET version = excluded.version').run(COMPONENT, v + 1);
    })();
  }
}
