// The in-memory checkpoint form every reader produces and every writer takes, and the one error type that
// checkpoint code throws for bad input files.
//
// Public API:
//   type Tensor        { dtype: 'float32', shape, data: Float32Array } | { dtype: 'int64', shape, data: BigInt64Array }
//   type TensorMap     Map<string, Tensor>
//   interface LazyTensor   a tensor in a file whose data is decoded only when read() is called
//   class CheckpointError  a file that cannot be read as a checkpoint; the message names the file and key
//   makeTensor(shape, data): Tensor   dtype from the array type
//   numel(shape), sameShape(a, b), formatShape(shape)
import { UserError } from '../../common/errors.ts';

export type Tensor =
  | { dtype: 'float32'; shape: number[]; data: Float32Array }
  | { dtype: 'int64'; shape: number[]; data: BigInt64Array };

export type TensorDType = Tensor['dtype'];

export type TensorMap = Map<string, Tensor>;

/** A tensor found in a file. `storedAs` is the file's element type (e.g. 'F16'); read() converts it. */
export interface LazyTensor {
  readonly shape: readonly number[];
  readonly storedAs: string;
  read(): Tensor;
}

/** A checkpoint file that is malformed, unsafe or does not fit the model. */
export class CheckpointError extends UserError {
  override name = 'CheckpointError';
}

export function makeTensor(shape: number[], data: Float32Array | BigInt64Array): Tensor {
  return data instanceof Float32Array ? { dtype: 'float32', shape, data } : { dtype: 'int64', shape, data };
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
