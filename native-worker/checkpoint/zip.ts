// A reader for zip archives held in memory, enough for torch.save files: the central directory (zip64
// included), stored and deflated entries, CRC-32 checked on every read.
//
// Public API:
//   interface ZipEntry { name, method, compressedSize, size, crc32, localHeaderOffset }
//   interface ZipArchive { entries: ReadonlyMap<string, ZipEntry>; read(name): Uint8Array }
//   openZip(bytes, file): ZipArchive    throws CheckpointError (naming the file and entry) for damaged archives
import * as zlib from 'node:zlib';
import { CheckpointError } from './tensor.ts';

export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflate. */
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly crc32: number;
  readonly localHeaderOffset: number;
}

export interface ZipArchive {
  readonly entries: ReadonlyMap<string, ZipEntry>;
  /** The entry's bytes: a view into the archive when stored, a new buffer when deflated. */
  read(name: string): Uint8Array;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_END = 0x06054b50;
const SIG_END64 = 0x06064b50;
const SIG_END64_LOCATOR = 0x07064b50;
const EXTRA_ZIP64 = 0x0001;
const U32_MAX = 0xffffffff;

let crcTable: Int32Array | undefined;
export function crc32(data: Uint8Array): number {
  // Node >= 20.15 has a native CRC-32; the table version keeps older Node 20 releases working.
  const native = (zlib as Partial<typeof zlib>).crc32;
  if (native) return native(data);
  if (!crcTable) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  let c = -1;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** The archive's bytes with bounds-checked little-endian reads; every error names the file. */
class ZipBytes {
  readonly view: DataView;
  readonly size: number;
  constructor(
    readonly bytes: Uint8Array,
    readonly file: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.size = bytes.byteLength;
  }
  fail(msg: string): never {
    throw new CheckpointError(`${this.file}: ${msg}`);
  }
  u16 = (at: number): number => this.view.getUint16(at, true);
  u32 = (at: number): number => this.view.getUint32(at, true);
  u64(at: number, what: string): number {
    const v = this.view.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`zip ${what} ${v} is out of range`);
    return Number(v);
  }
  need(at: number, length: number, what: string): void {
    if (at < 0 || at + length > this.size) this.fail(`zip ${what} at byte ${at} runs past the end of the file (${this.size} bytes): truncated?`);
  }
}

interface CentralDirectory {
  count: number;
  dirSize: number;
  dirOffset: number;
}

/** Where the central directory is and how many entries it has, from the end record (zip64 when saturated). */
function centralDirectory(z: ZipBytes): CentralDirectory {
  // The end record sits in the last 22 bytes plus an archive comment of at most 65535 bytes.
  let end = -1;
  for (let at = z.size - 22; at >= Math.max(0, z.size - 22 - 0xffff); at--) {
    if (z.u32(at) === SIG_END && at + 22 + z.u16(at + 20) === z.size) {
      end = at;
      break;
    }
  }
  if (end < 0) z.fail('end of the zip central directory not found: the file is truncated or not a zip archive');
  const dir = { count: z.u16(end + 10), dirSize: z.u32(end + 12), dirOffset: z.u32(end + 16) };
  if (dir.count === 0xffff || dir.dirSize === U32_MAX || dir.dirOffset === U32_MAX) {
    const locator = end - 20;
    z.need(locator, 20, 'zip64 end locator');
    if (z.u32(locator) !== SIG_END64_LOCATOR) z.fail('zip64 end locator missing');
    const end64 = z.u64(locator + 8, 'zip64 end offset');
    z.need(end64, 56, 'zip64 end record');
    if (z.u32(end64) !== SIG_END64) z.fail(`no zip64 end record at byte ${end64}`);
    dir.count = z.u64(end64 + 32, 'entry count');
    dir.dirSize = z.u64(end64 + 40, 'central directory size');
    dir.dirOffset = z.u64(end64 + 48, 'central directory offset');
  }
  z.need(dir.dirOffset, dir.dirSize, 'central directory');
  return dir;
}

/** One central directory entry at `at` (index `i`); returns it and the offset of the next one. */
function centralEntry(z: ZipBytes, at: number, i: number): { entry: ZipEntry; next: number } {
  z.need(at, 46, 'central directory entry');
  if (z.u32(at) !== SIG_CENTRAL) z.fail(`central directory entry ${i} at byte ${at} is damaged`);
  const [nameLength, extraLength, commentLength] = [z.u16(at + 28), z.u16(at + 30), z.u16(at + 32)];
  z.need(at + 46, nameLength + extraLength + commentLength, 'central directory entry');
  const name = new TextDecoder().decode(z.bytes.subarray(at + 46, at + 46 + nameLength));
  const entry = { name, method: z.u16(at + 10), compressedSize: z.u32(at + 20), size: z.u32(at + 24), crc32: z.u32(at + 16), localHeaderOffset: z.u32(at + 42) };
  zip64Fields(z, entry, at + 46 + nameLength, extraLength);
  if (z.u16(at + 8) & 1) z.fail(`entry '${name}' is encrypted`);
  return { entry, next: at + 46 + nameLength + extraLength + commentLength };
}

/** zip64 sizes and offset from the extra field: only the fields saturated in the fixed part appear, in this order. */
function zip64Fields(z: ZipBytes, e: { -readonly [K in keyof ZipEntry]: ZipEntry[K] }, extra: number, extraLength: number): void {
  for (let x = extra; x + 4 <= extra + extraLength; x += 4 + z.u16(x + 2)) {
    if (z.u16(x) !== EXTRA_ZIP64) continue;
    let f = x + 4;
    const field = (what: string) => {
      z.need(f, 8, `zip64 field of '${e.name}'`);
      const v = z.u64(f, what);
      f += 8;
      return v;
    };
    if (e.size === U32_MAX) e.size = field('size');
    if (e.compressedSize === U32_MAX) e.compressedSize = field('compressed size');
    if (e.localHeaderOffset === U32_MAX) e.localHeaderOffset = field('local header offset');
  }
}

/** The bytes of an entry: stored or deflated, checked against its size and CRC-32. */
function readEntry(z: ZipBytes, e: ZipEntry): Uint8Array {
  const { name } = e;
  z.need(e.localHeaderOffset, 30, `local header of '${name}'`);
  if (z.u32(e.localHeaderOffset) !== SIG_LOCAL) z.fail(`local header of entry '${name}' is damaged`);
  // The local name and extra field lengths may differ from the central ones (torch pads with extras).
  const dataStart = e.localHeaderOffset + 30 + z.u16(e.localHeaderOffset + 26) + z.u16(e.localHeaderOffset + 28);
  z.need(dataStart, e.compressedSize, `data of entry '${name}'`);
  const raw = z.bytes.subarray(dataStart, dataStart + e.compressedSize);
  let out: Uint8Array;
  if (e.method === 0) {
    if (e.compressedSize !== e.size) z.fail(`stored entry '${name}' has compressed size ${e.compressedSize} but size ${e.size}`);
    out = raw;
  } else if (e.method === 8) {
    try {
      out = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size) });
    } catch (err) {
      return z.fail(`entry '${name}' does not inflate: ${(err as Error).message}`);
    }
    if (out.byteLength !== e.size) z.fail(`entry '${name}' inflates to ${out.byteLength} bytes, expected ${e.size}`);
  } else {
    return z.fail(`entry '${name}' uses unsupported compression method ${e.method}`);
  }
  if (crc32(out) !== e.crc32) z.fail(`entry '${name}' is corrupt (CRC-32 mismatch)`);
  return out;
}

export function openZip(bytes: Uint8Array, file: string): ZipArchive {
  const z = new ZipBytes(bytes, file);
  const { count, dirOffset } = centralDirectory(z);
  const entries = new Map<string, ZipEntry>();
  for (let i = 0, at = dirOffset; i < count; i++) {
    const { entry, next } = centralEntry(z, at, i);
    if (entries.has(entry.name)) z.fail(`entry '${entry.name}' appears twice`);
    entries.set(entry.name, entry);
    at = next;
  }
  const read = (name: string): Uint8Array => {
    const e = entries.get(name);
    return e ? readEntry(z, e) : z.fail(`entry '${name}' not found`);
  };
  return { entries, read };
}
