// Embeddings on disk, one folder per (dataset, weights, input size) under <workspace>/embeddings/:
//   meta.json    what produced them (weights file and its sha256, architecture, size, dimensions)
//   vectors.bin  fixed-size records: image id (u32 LE), the image's sha1 (20 bytes), dim + statsDim float16
//                values (the embedding, then the middle stages' statistics for outlier scores)
// Records are appended batch by batch, so an interrupted run keeps what it computed; a torn last record is
// cut off on the next open. A record whose sha1 no longer matches its image (the file changed) is stale:
// it is ignored, recomputed and dropped when the file is compacted.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export interface StoreMeta {
  /** 2: records carry the middle-stage statistics (a version-1 store is recomputed). */
  version: 2;
  dataset: string;
  datasetId: number;
  weights: string;
  weightsSha256: string;
  arch: string;
  size: number;
  dim: number;
  statsDim: number;
  createdAt: string;
}

/** float16 values per record: the embedding and the statistics. */
export const recordWidth = (m: Pick<StoreMeta, 'dim' | 'statsDim'>) => m.dim + m.statsDim;

export interface StoredVector {
  hash: string;
  vector: Uint16Array;
}

const HASH_BYTES = 20;
export const recordBytes = (dim: number) => 4 + HASH_BYTES + 2 * dim;

export const embeddingsRoot = (workspace: string, datasetId: number) => join(workspace, 'embeddings', String(datasetId));
export const storeDir = (workspace: string, m: Pick<StoreMeta, 'datasetId' | 'weightsSha256' | 'arch' | 'size'>) =>
  join(embeddingsRoot(workspace, m.datasetId), `${m.weightsSha256.slice(0, 16)}-${m.arch}-${m.size}`);

/** The stores of a dataset (meta.json of each folder that has one). */
export function listStores(workspace: string, datasetId: number): (StoreMeta & { dir: string })[] {
  const root = embeddingsRoot(workspace, datasetId);
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((d) => {
    const meta = readMeta(join(root, d));
    return meta ? [{ ...meta, dir: join(root, d) }] : [];
  });
}

export function readMeta(dir: string): StoreMeta | null {
  try {
    const m = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as StoreMeta;
    return m.version === 2 && Number.isInteger(m.dim) && m.dim > 0 && Number.isInteger(m.statsDim) && m.statsDim >= 0 ? m : null;
  } catch {
    return null;
  }
}

/** Opens (or starts) the store for `meta`; records of other dimensions, an older version or a damaged meta start afresh. */
export function openStore(dir: string, meta: StoreMeta): Map<number, StoredVector> {
  mkdirSync(dir, { recursive: true });
  const old = readMeta(dir);
  const file = join(dir, 'vectors.bin');
  if (!old || recordWidth(old) !== recordWidth(meta) || old.statsDim !== meta.statsDim || old.weightsSha256 !== meta.weightsSha256) {
    writeFileSync(join(dir, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
    writeFileSync(file, new Uint8Array(0));
    return new Map();
  }
  return readRecords(file, recordWidth(meta));
}

/** Every whole record of the file (later records of an id win); a torn tail is truncated. */
export function readRecords(file: string, dim: number): Map<number, StoredVector> {
  const out = new Map<number, StoredVector>();
  if (!existsSync(file)) return out;
  const bytes = readFileSync(file);
  const size = recordBytes(dim);
  const whole = Math.floor(bytes.length / size);
  if (whole * size !== bytes.length) truncateSync(file, whole * size);
  for (let r = 0; r < whole; r++) {
    const at = r * size;
    const id = bytes.readUInt32LE(at);
    const hash = bytes.subarray(at + 4, at + 4 + HASH_BYTES).toString('hex');
    const vector = new Uint16Array(dim);
    for (let i = 0; i < dim; i++) vector[i] = bytes.readUInt16LE(at + 4 + HASH_BYTES + 2 * i);
    out.set(id, { hash, vector });
  }
  return out;
}

function encode(records: readonly { id: number; hash: string; vector: Uint16Array }[], dim: number): Buffer {
  const size = recordBytes(dim);
  const buf = Buffer.alloc(records.length * size);
  records.forEach((r, k) => {
    const at = k * size;
    buf.writeUInt32LE(r.id, at);
    Buffer.from(r.hash, 'hex').copy(buf, at + 4, 0, HASH_BYTES);
    for (let i = 0; i < dim; i++) buf.writeUInt16LE(r.vector[i]!, at + 4 + HASH_BYTES + 2 * i);
  });
  return buf;
}

/** Appends records and flushes them to disk (a crash after this keeps them). */
export function appendRecords(dir: string, dim: number, records: readonly { id: number; hash: string; vector: Uint16Array }[]): void {
  const fd = openSync(join(dir, 'vectors.bin'), 'a');
  try {
    writeSync(fd, encode(records, dim));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Rewrites the file with exactly `records` (atomic: a temporary file renamed over it). */
export function compactStore(dir: string, dim: number, records: readonly { id: number; hash: string; vector: Uint16Array }[]): void {
  const tmp = join(dir, `vectors.bin.${process.pid}.tmp`);
  writeFileSync(tmp, encode(records, dim));
  renameSync(tmp, join(dir, 'vectors.bin'));
}
