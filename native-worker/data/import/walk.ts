// A streaming directory walk: yields files as they are found (one open directory handle per level), follows
// symlinks but stops at loops, and reports what it cannot walk instead of failing.
import { opendir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { IssueReason } from '../catalog/types.ts';

export type WalkEntry =
  | { kind: 'file'; abs: string; rel: string; bytes: number; mtimeMs: number }
  | { kind: 'issue'; abs: string; rel: string; reason: IssueReason; detail: string };

const errCode = (e: unknown) => (e as NodeJS.ErrnoException).code ?? 'EUNKNOWN';

/** Relative paths use '/' on every OS so catalogs and manifests move between machines. */
const joinRel = (rel: string, name: string) => (rel ? `${rel}/${name}` : name);

/**
 * Walks `root` depth first. `rel` paths are relative to root. Hidden entries (dot names) are reported and
 * skipped. A directory symlink that points at one of its own ancestors is a loop and is reported, not
 * followed, which is what guarantees the walk ends.
 */
export async function* walk(root: string, signal?: AbortSignal): AsyncGenerator<WalkEntry> {
  const rootStat = await stat(root);
  yield* walkDir(root, '', [`${rootStat.dev}:${rootStat.ino}`], signal);
}

async function* walkDir(abs: string, rel: string, ancestors: readonly string[], signal?: AbortSignal): AsyncGenerator<WalkEntry> {
  let dir;
  try {
    dir = await opendir(abs);
  } catch (e) {
    yield { kind: 'issue', abs, rel, reason: 'unreadable-dir', detail: `cannot open folder (${errCode(e)})` };
    return;
  }
  // Subfolders are walked after this folder is closed so only one handle per level stays open.
  const subdirs: { abs: string; rel: string; key: string }[] = [];
  try {
    for await (const ent of dir) {
      signal?.throwIfAborted();
      const childAbs = join(abs, ent.name);
      const childRel = joinRel(rel, ent.name);
      if (ent.name.startsWith('.')) {
        yield { kind: 'issue', abs: childAbs, rel: childRel, reason: 'hidden', detail: 'hidden file or folder (name starts with a dot)' };
        continue;
      }
      let st;
      try {
        // stat follows symlinks: a symlinked image is read like any other.
        st = await stat(childAbs);
      } catch (e) {
        const code = errCode(e);
        if (ent.isSymbolicLink()) {
          const loop = code === 'ELOOP';
          yield { kind: 'issue', abs: childAbs, rel: childRel, reason: loop ? 'symlink-loop' : 'broken-symlink', detail: loop ? 'symlink loop' : `symlink target is missing (${code})` };
        } else {
          yield { kind: 'issue', abs: childAbs, rel: childRel, reason: 'not-regular-file', detail: `cannot stat (${code})` };
        }
        continue;
      }
      if (st.isDirectory()) {
        const key = `${st.dev}:${st.ino}`;
        if (ancestors.includes(key)) {
          yield { kind: 'issue', abs: childAbs, rel: childRel, reason: 'symlink-loop', detail: 'symlink to a folder that contains it (loop), not followed' };
        } else {
          subdirs.push({ abs: childAbs, rel: childRel, key });
        }
      } else if (st.isFile()) {
        yield { kind: 'file', abs: childAbs, rel: childRel, bytes: st.size, mtimeMs: st.mtimeMs };
      } else {
        yield { kind: 'issue', abs: childAbs, rel: childRel, reason: 'not-regular-file', detail: 'not a regular file (device, pipe or socket)' };
      }
    }
  } catch (e) {
    if (signal?.aborted) throw e;
    yield { kind: 'issue', abs, rel, reason: 'unreadable-dir', detail: `error while listing folder (${errCode(e)})` };
  }
  for (const d of subdirs) yield* walkDir(d.abs, d.rel, [...ancestors, d.key], signal);
}
