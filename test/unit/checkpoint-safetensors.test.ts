// safetensors: what we write reads back bit for bit, the file layout follows the format, writes are atomic,
// and every kind of damage is reported with the file and the tensor at fault.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { parseSafetensors, readSafetensors, writeSafetensors } from '../../native-worker/checkpoint/safetensors.ts';
import type { TensorMap } from '../../native-worker/checkpoint/tensor.ts';
import { assertSameTensors } from '../helpers/tensors.ts';

const dir = mkdtempSync(join(tmpdir(), 'cnx-safetensors-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function sample(): TensorMap {
  return new Map([
    ['stem.0.weight', { dtype: 'float32', shape: [2, 3], data: Float32Array.of(1.5, -0, 3.25e-38, -7, Infinity, 1e-45) }],
    ['a.counter', { dtype: 'int64', shape: [3], data: BigInt64Array.of(-(2n ** 63n), 0n, 2n ** 63n - 1n) }],
    ['scalar', { dtype: 'float32', shape: [], data: Float32Array.of(0.1) }],
    ['empty', { dtype: 'float32', shape: [0, 4], data: new Float32Array(0) }],
    ['odd', { dtype: 'float32', shape: [1, 1, 3], data: Float32Array.of(NaN, 2, 3) }],
  ]);
}

/** A safetensors file from a header object and `dataBytes` bytes of data (0, 1, 2, ...). */
function rawFile(header: unknown, dataBytes: number): Uint8Array {
  const json = Buffer.from(JSON.stringify(header));
  const out = Buffer.alloc(8 + json.length + dataBytes);
  out.writeBigUInt64LE(BigInt(json.length));
  json.copy(out, 8);
  for (let i = 0; i < dataBytes; i++) out[8 + json.length + i] = i & 0xff;
  return out;
}

describe('writeSafetensors + readSafetensors', () => {
  test('round trip keeps names, dtypes, shapes, every bit and the metadata', async () => {
    const path = join(dir, 'roundtrip.safetensors');
    await writeSafetensors(path, sample(), { step: '1200', note: 'ünïcode' });
    const file = await readSafetensors(path);
    assert.deepEqual(file.metadata, { step: '1200', note: 'ünïcode' });
    assert.deepEqual(
      [...file.tensors].map(([k, t]) => [k, t.storedAs]),
      [['a.counter', 'I64'], ['empty', 'F32'], ['odd', 'F32'], ['scalar', 'F32'], ['stem.0.weight', 'F32']],
    );
    assertSameTensors(new Map([...file.tensors].map(([k, t]) => [k, t.read()])), sample());
  });

  test('layout: aligned header, tensors sorted by name, data packed without gaps', async () => {
    const path = join(dir, 'layout.safetensors');
    await writeSafetensors(path, sample());
    const bytes = readFileSync(path);
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal((8 + n) % 8, 0);
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString()) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    assert.equal('__metadata__' in header, false);
    assert.deepEqual(Object.keys(header), ['a.counter', 'empty', 'odd', 'scalar', 'stem.0.weight']);
    assert.deepEqual(
      Object.values(header).map((h) => h.data_offsets),
      [[0, 24], [24, 24], [24, 36], [36, 40], [40, 64]],
    );
    assert.deepEqual(header['a.counter'], { dtype: 'I64', shape: [3], data_offsets: [0, 24] });
    assert.equal(bytes.length, 8 + n + 64);
    // Little-endian data: the int64 minimum is 00 .. 00 80.
    assert.deepEqual([...bytes.subarray(8 + n, 8 + n + 8)], [0, 0, 0, 0, 0, 0, 0, 0x80]);
  });

  test('a write replaces the file whole and leaves no temp file, also when it fails', async () => {
    const sub = join(dir, 'atomic');
    mkdirSync(sub);
    const path = join(sub, 'ckpt.safetensors');
    writeFileSync(path, 'old contents');
    await writeSafetensors(path, sample());
    assert.equal((await readSafetensors(path)).tensors.size, 5);
    assert.deepEqual(readdirSync(sub), ['ckpt.safetensors']);

    // Renaming onto a folder fails after the data is written: the temp file must go away.
    mkdirSync(join(sub, 'taken'));
    await assert.rejects(writeSafetensors(join(sub, 'taken'), sample()), /EISDIR|ENOTEMPTY|EEXIST|EPERM/);
    assert.deepEqual(readdirSync(sub).sort(), ['ckpt.safetensors', 'taken']);

    const bad: TensorMap = new Map([['w', { dtype: 'float32', shape: [2, 2], data: new Float32Array(3) }]]);
    await assert.rejects(writeSafetensors(path, bad), { name: 'CheckpointError', message: `${path}: tensor 'w': shape [2, 2] does not match its 3 elements` });
    assert.equal((await readSafetensors(path)).tensors.size, 5);
    assert.deepEqual(readdirSync(sub).sort(), ['ckpt.safetensors', 'taken']);
  });
});

describe('parseSafetensors refuses damaged files', () => {
  const f = '/data/w.safetensors';
  const refuses = (bytes: Uint8Array, message: string) => assert.throws(() => parseSafetensors(bytes, f), { name: 'CheckpointError', message });

  test('header length beyond the file', () => {
    const bytes = Buffer.alloc(10);
    bytes.writeBigUInt64LE(1000n);
    refuses(bytes, `${f}: header length 1000 runs past the end of the file (10 bytes): truncated or not safetensors`);
    refuses(new Uint8Array(5), `${f}: file is 5 bytes, too short for a safetensors header`);
  });

  test('header that is not JSON or not an object', () => {
    const bytes = Buffer.concat([Buffer.alloc(8), Buffer.from('{"w": {')]);
    bytes.writeBigUInt64LE(7n);
    assert.throws(() => parseSafetensors(bytes, f), (e: Error) => e.name === 'CheckpointError' && e.message.startsWith(`${f}: header is not valid JSON: `));
    refuses(rawFile([1, 2], 0), `${f}: header is not a JSON object`);
  });

  test('offsets out of range, overlapping, or not matching dtype x shape', () => {
    refuses(rawFile({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 4), `${f}: tensor 'w': data_offsets [0, 8] run past the end of the data (4 bytes): file truncated?`);
    refuses(
      rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12),
      `${f}: tensor 'b': data_offsets [4, 12] overlap those of 'a' [0, 8]`,
    );
    refuses(rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8), `${f}: tensor 'w': data_offsets [0, 8] hold 8 bytes but F32 [3] needs 12`);
    refuses(rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, 8), `${f}: tensor 'w': data_offsets [8, 4] are reversed`);
    refuses(rawFile({ w: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 8] } }, 8), `${f}: tensor 'w': shape [2,-1] is not a list of sizes`);
    refuses(rawFile({ w: { dtype: 'F32', shape: [1] } }, 4), `${f}: tensor 'w': data_offsets undefined is not a pair of byte offsets`);
  });

  test('unknown dtypes and bad metadata', () => {
    refuses(rawFile({ w: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, 1), `${f}: tensor 'w': unsupported dtype 'F8_E4M3' (readable: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)`);
    refuses(rawFile({ __metadata__: { epoch: 3 } }, 0), `${f}: '__metadata__' entry 'epoch' is not a string`);
  });

  test('a file cut short names the tensor whose data is missing', async () => {
    const path = join(dir, 'cut.safetensors');
    await writeSafetensors(path, sample());
    const whole = readFileSync(path);
    const cut = join(dir, 'cut-short.safetensors');
    writeFileSync(cut, whole.subarray(0, whole.length - 4));
    await assert.rejects(readSafetensors(cut), { name: 'CheckpointError', message: `${cut}: tensor 'stem.0.weight': data_offsets [40, 64] run past the end of the data (60 bytes): file truncated?` });
  });
});
