// Exact comparison of tensor maps: same names, dtypes, shapes and bytes (so -0 and NaN payloads count too).
import assert from 'node:assert/strict';
import type { Tensor } from '../../native-worker/checkpoint/tensor.ts';

const bytesOf = (t: Tensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);

export function assertSameTensors(actual: ReadonlyMap<string, Tensor>, expected: ReadonlyMap<string, Tensor>): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [name, want] of expected) {
    const got = actual.get(name)!;
    assert.equal(got.dtype, want.dtype, `${name}: dtype`);
    assert.deepEqual(got.shape, want.shape, `${name}: shape`);
    assert.ok(bytesOf(got).equals(bytesOf(want)), `${name}: values differ`);
  }
}
