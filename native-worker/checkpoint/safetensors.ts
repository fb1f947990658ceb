// Reads and writes safetensors files: an 8-byte little-endian header length, a JSON header mapping each
// tensor name to {dtype, shape, data_offsets} (plus an optional `__metadata__` string map), then the data.
//
// Public API:
//   interface SafetensorsFile { tensors: Map<string, LazyTensor>; metadata: Record<string, string> }
//   parseSafetensors(bytes, file): SafetensorsFile     validates the whole header; data is decoded on read()
//   readSafetensors(path): Promise<SafetensorsFile>
//   writeSafetensors(path, tensors, metadata?): Promise<void>
//       F32/I64, tensors sorted by name, header padded to 8 bytes, written to a temp file then renamed
// Readable dtypes: F32, F16, BF16, F64 (-> float32), I64, I32, I16, I8, U8, BOOL (-> int64; e.g. RNG states). Every problem is a CheckpointError
// naming the file and the offending key.
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type StoredDType, ITEM_SIZE, decodeElements, littleEndianBytes } from './dtypes.ts';
import { type LazyTensor, type TensorMap, CheckpointError, formatShape, makeTensor, numel } from './tensor.ts';

export interface SafetensorsFile {
  tensors: Map<string, LazyTensor>;
  metadata: Record<string, string>;
}

const READABLE: readonly StoredDType[] = ['F32', 'F16', 'BF16', 'F64', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'];
// The reference implementation refuses headers above 100 MB; so do we, before decoding any of it.
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Parses a whole safetensors file held in memory. */
export function parseSafetensors(bytes: Uint8Array, file: string): SafetensorsFile {
  const fail = (msg: string): never => {
    throw new CheckpointError(`${file}: ${msg}`);
  };
  if (bytes.byteLength < 8) fail(`file is ${bytes.byteLength} bytes, too short for a safetensors header`);
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(bytes.byteLength - 8)) {
    fail(`header length ${headerLength} runs past the end of the file (${bytes.byteLength} bytes): truncated or not safetensors`);
  }
  if (headerLength > BigInt(MAX_HEADER_BYTES)) fail(`header length ${headerLength} exceeds ${MAX_HEADER_BYTES} bytes`);
  const dataStart = 8 + Number(headerLength);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataStart)));
  } catch (e) {
    fail(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (!isObject(header)) return fail('header is not a JSON object');

  const data = bytes.subarray(dataStart);
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: StoredDType; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      if (!isObject(info)) fail(`'${METADATA_KEY}' is not an object of strings`);
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`'${METADATA_KEY}' entry '${k}' is not a string`);
        // defineProperty: a key named __proto__ stays an ordinary entry.
        Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    const bad = (msg: string): never => fail(`tensor '${name}': ${msg}`);
    if (!isObject(info)) bad('header entry is not an object');
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (typeof dtype !== 'string') bad('dtype is missing');
    if (!READABLE.includes(dtype as StoredDType)) bad(`unsupported dtype '${String(dtype)}' (readable: ${READABLE.join(', ')})`);
    if (!Array.isArray(shape) || !shape.every(isCount)) bad(`shape ${JSON.stringify(shape)} is not a list of sizes`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      bad(`data_offsets ${JSON.stringify(offsets)} is not a pair of byte offsets`);
    }
    const [begin, end] = offsets as [number, number];
    const dims = shape as number[];
    if (begin > end) bad(`data_offsets [${begin}, ${end}] are reversed`);
    if (end > data.byteLength) {
      bad(`data_offsets [${begin}, ${end}] run past the end of the data (${data.byteLength} bytes): file truncated?`);
    }
    const expected = numel(dims) * ITEM_SIZE[dtype as StoredDType];
    if (end - begin !== expected) {
      bad(`data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} ${formatShape(dims)} needs ${expected}`);
    }
    entries.push({ name, dtype: dtype as StoredDType, shape: dims, begin, end });
  }

  // Zero-size tensors may share an offset; any other shared byte means the file is corrupt.
  const byOffset = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!;
    const cur = byOffset[i]!;
    if (cur.begin < prev.end) {
      fail(`tensor '${cur.name}': data_offsets [${cur.begin}, ${cur.end}] overlap those of '${prev.name}' [${prev.begin}, ${prev.end}]`);
    }
  }

  const tensors = new Map<string, LazyTensor>();
  for (const { name, dtype, shape, begin, end } of entries) {
    tensors.set(name, {
      shape,
      storedAs: dtype,
      read: () => makeTensor([...shape], decodeElements(data.subarray(begin, end), dtype, true)),
    });
  }
  return { tensors, metadata };
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return parseSafetensors(await readFile(path), path);
}

/** The header bytes (JSON padded with spaces so the data starts 8-byte aligned) and the tensor order. */
function encodeHeader(tensors: TensorMap, metadata: Readonly<Record<string, string>>, file: string): { header: Uint8Array; names: string[] } {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header[METADATA_KEY] = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    if (name === METADATA_KEY || name === '') throw new CheckpointError(`${file}: '${name}' cannot be a tensor name`);
    const expectedArray = t.dtype === 'float32' ? Float32Array : BigInt64Array;
    if (!(t.data instanceof expectedArray)) throw new CheckpointError(`${file}: tensor '${name}': data does not match dtype ${t.dtype}`);
    if (!t.shape.every(isCount) || numel(t.shape) !== t.data.length) {
      throw new CheckpointError(`${file}: tensor '${name}': shape ${formatShape(t.shape)} does not match its ${t.data.length} elements`);
    }
    const end = offset + t.data.byteLength;
    header[name] = { dtype: t.dtype === 'float32' ? 'F32' : 'I64', shape: t.shape, data_offsets: [offset, end] };
    offset = end;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = new Uint8Array(Math.ceil(json.byteLength / 8) * 8).fill(0x20);
  padded.set(json);
  return { header: padded, names };
}

/**
 * Writes `tensors` as safetensors. The file appears complete or not at all: the bytes go to a temp file in
 * the same folder, which is flushed and then renamed over `path`.
 */
export async function writeSafetensors(path: string, tensors: TensorMap, metadata: Readonly<Record<string, string>> = {}): Promise<void> {
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new CheckpointError(`${path}: metadata '${k}' is not a string`);
  }
  const { header, names } = encodeHeader(tensors, metadata, path);
  const length = new Uint8Array(8);
  new DataView(length.buffer).setBigUint64(0, BigInt(header.byteLength), true);
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(temp, 'wx');
  try {
    let position = 0;
    const writeAll = async (chunk: Uint8Array) => {
      // write() may stop short (Linux caps one call near 2 GiB), so loop until the chunk is out.
      for (let done = 0; done < chunk.byteLength; ) {
        const { bytesWritten } = await fh.write(chunk, done, chunk.byteLength - done, position);
        done += bytesWritten;
        position += bytesWritten;
      }
    };
    await writeAll(length);
    await writeAll(header);
    for (const name of names) await writeAll(littleEndianBytes(tensors.get(name)!.data));
    await fh.sync();
    await fh.close();
    await rename(temp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw e;
  }
}
