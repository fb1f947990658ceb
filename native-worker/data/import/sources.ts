// Where the files of a dataset come from and what label and split each gets: class-folder trees
// (ImageFolder), unlabeled folders, and CSV/TSV lists. Each source streams candidates; nothing is read whole.
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, extname, isAbsolute, relative, resolve, sep } from 'node:path';
import { createInterface } from 'node:readline';
import type { IssueReason, Split } from '../catalog/types.ts';
import { isImageName } from './analyze.ts';
import { walk } from './walk.ts';

export type Candidate =
  | { kind: 'file'; abs: string; rel: string; bytes: number; mtimeMs: number; label: { name: string; ordinal: number | null } | null; split: Split }
  | { kind: 'issue'; rel: string; reason: IssueReason; detail: string };

/** Folder names that mean a split (case-insensitive), as the common dataset layouts spell them. */
const SPLIT_NAMES: Record<string, Split> = { train: 'train', training: 'train', val: 'val', valid: 'val', validation: 'val', test: 'test', testing: 'test' };

export function splitFromName(name: string): Split | undefined {
  return SPLIT_NAMES[name.toLowerCase()];
}

const notImage = (rel: string): Candidate => {
  const ext = extname(rel);
  return { kind: 'issue', rel, reason: 'not-image', detail: ext ? `not an image file (extension '${ext}')` : 'not an image file (no extension)' };
};

/** True when the root's top level has train/val/test folders: then those are the splits. */
async function hasSplitFolders(root: string): Promise<boolean> {
  for (const ent of await readdir(root, { withFileTypes: true })) {
    if (!splitFromName(ent.name)) continue;
    const st = await stat(resolve(root, ent.name)).catch(() => null);
    if (st?.isDirectory()) return true;
  }
  return false;
}

export interface FolderSourceOptions {
  /** Class folders (ImageFolder) when true; every image unlabeled (pretraining) when false. */
  labeled: boolean;
  /** Maps a class folder name to the class; the default uses the folder name itself. */
  classOf?: (folder: string) => { name: string; ordinal: number | null };
  signal?: AbortSignal;
}

/**
 * Files under `root`: `[split/]class/**\/file` when labeled (images in deeper subfolders belong to the
 * class folder they are in), `[split/]**\/file` when not. Without split folders everything is 'train'.
 */
export async function* folderSource(root: string, opts: FolderSourceOptions): AsyncGenerator<Candidate> {
  const bySplit = await hasSplitFolders(root);
  for await (const e of walk(root, opts.signal)) {
    if (e.kind === 'issue') {
      yield { kind: 'issue', rel: e.rel, reason: e.reason, detail: e.detail };
      continue;
    }
    if (!isImageName(e.rel)) {
      yield notImage(e.rel);
      continue;
    }
    let parts = e.rel.split('/');
    let split: Split = 'train';
    if (bySplit) {
      const s = splitFromName(parts[0]!);
      if (!s || parts.length < 2) {
        yield { kind: 'issue', rel: e.rel, reason: 'outside-split', detail: 'not inside a train/val/test folder' };
        continue;
      }
      split = s;
      parts = parts.slice(1);
    }
    let label: { name: string; ordinal: number | null } | null = null;
    if (opts.labeled) {
      if (parts.length < 2) {
        yield { kind: 'issue', rel: e.rel, reason: 'no-class', detail: 'not inside a class folder' };
        continue;
      }
      label = opts.classOf ? opts.classOf(parts[0]!) : { name: parts[0]!, ordinal: null };
    }
    yield { kind: 'file', abs: e.abs, rel: e.rel, bytes: e.bytes, mtimeMs: e.mtimeMs, label, split };
  }
}

/** Splits one CSV/TSV record; "" inside quotes is a quote. Returns null while a quoted field is open. */
export function parseRecord(text: string, delimiter: string): string[] | null {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch !== '"') field += ch;
      else if (text[i + 1] === '"') {
        field += '"';
        i++;
      } else quoted = false;
    } else if (ch === '"' && field.trim() === '') {
      field = '';
      quoted = true;
    } else if (ch === delimiter) {
      fields.push(field.trim());
      field = '';
    } else field += ch;
  }
  if (quoted) return null;
  fields.push(field.trim());
  return fields;
}

const HEADER_PATH = new Set(['path', 'file', 'filename', 'file_name', 'image', 'filepath', 'image_path']);
const HEADER_LABEL = new Set(['label', 'class', 'category', 'target']);

/**
 * Rows of a CSV/TSV list: `path,label[,split]`, with or without a header row naming the columns. Paths are
 * relative to the list's folder (the dataset root) or absolute inside it; an empty label means unlabeled.
 */
export async function* csvSource(file: string, signal?: AbortSignal): AsyncGenerator<Candidate> {
  const root = dirname(file);
  const name = basename(file);
  const ext = extname(file).toLowerCase();
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let delimiter: string | undefined = ext === '.tsv' || ext === '.tab' ? '\t' : undefined;
  let columns = { path: 0, label: 1, split: 2 };
  let lineNo = 0;
  let startLine = 0;
  let pending = '';
  let first = true;
  const seen = new Set<string>();
  for await (const line of lines) {
    signal?.throwIfAborted();
    lineNo++;
    if (!pending) startLine = lineNo;
    const text = pending ? `${pending}\n${line}` : line.replace(/^\uFEFF/, '');
    if (!text.trim()) continue;
    delimiter ??= text.includes('\t') && !text.includes(',') ? '\t' : ',';
    const fields = parseRecord(text, delimiter);
    if (!fields) {
      pending = text;
      continue;
    }
    pending = '';
    const where = `${name}:${startLine}`;
    if (first) {
      first = false;
      const lower = fields.map((f) => f.toLowerCase());
      if (HEADER_PATH.has(lower[0] ?? '') || lower.some((f) => HEADER_PATH.has(f))) {
        const find = (set: ReadonlySet<string>) => lower.findIndex((f) => set.has(f));
        columns = { path: find(HEADER_PATH), label: find(HEADER_LABEL), split: lower.indexOf('split') };
        continue;
      }
    }
    const p = fields[columns.path] ?? '';
    if (!p) {
      yield { kind: 'issue', rel: where, reason: 'bad-row', detail: `line ${startLine}: no path` };
      continue;
    }
    const splitText = columns.split >= 0 ? (fields[columns.split] ?? '') : '';
    const split = splitText ? splitFromName(splitText) : 'train';
    if (!split) {
      yield { kind: 'issue', rel: where, reason: 'bad-row', detail: `line ${startLine}: unknown split '${splitText}' (use train, val or test)` };
      continue;
    }
    const abs = isAbsolute(p) ? p : resolve(root, p);
    const rel = relative(root, abs).split(sep).join('/');
    if (!rel || rel.startsWith('..') || isAbsolute(rel)) {
      yield { kind: 'issue', rel: where, reason: 'outside-root', detail: `line ${startLine}: '${p}' is outside the list's folder ${root}` };
      continue;
    }
    if (seen.has(rel)) {
      yield { kind: 'issue', rel: where, reason: 'duplicate-row', detail: `line ${startLine}: '${rel}' is listed again; the first row wins` };
      continue;
    }
    seen.add(rel);
    let st;
    try {
      st = await stat(abs);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      yield { kind: 'issue', rel, reason: 'missing', detail: `listed on line ${startLine} but ${code === 'ENOENT' ? 'not found' : `cannot be read (${code})`}` };
      continue;
    }
    if (!st.isFile()) {
      yield { kind: 'issue', rel, reason: 'not-regular-file', detail: `listed on line ${startLine} but not a regular file` };
      continue;
    }
    if (!isImageName(rel)) {
      yield notImage(rel);
      continue;
    }
    const labelText = columns.label >= 0 ? (fields[columns.label] ?? '') : '';
    yield { kind: 'file', abs, rel, bytes: st.size, mtimeMs: st.mtimeMs, label: labelText ? { name: labelText, ordinal: null } : null, split };
  }
  if (pending) yield { kind: 'issue', rel: `${name}:${startLine}`, reason: 'bad-row', detail: `line ${startLine}: unterminated quoted field` };
}
