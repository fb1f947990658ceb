// Bounded concurrency over a stream: at most `limit` items in flight, items pulled only as slots free up,
// so memory stays flat however long the stream is.

/**
 * Calls `fn` on every item of `items` with at most `limit` calls running at once. The first error (or an
 * abort) stops pulling new items; calls already running finish, then the error is thrown.
 */
export async function forEachConcurrent<T>(
  items: AsyncIterable<T> | Iterable<T>,
  limit: number,
  fn: (item: T) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const it = Symbol.asyncIterator in items ? items[Symbol.asyncIterator]() : items[Symbol.iterator]();
  let failure: { error: unknown } | null = null;
  // Async generators queue concurrent next() calls, but sync iterators and other async iterators may not:
  // serialise pulls through one promise chain.
  let pulling: Promise<unknown> = Promise.resolve();
  const pull = (): Promise<IteratorResult<T>> => {
    const next = pulling.then(() => it.next());
    pulling = next.catch(() => undefined);
    return next;
  };
  const runner = async () => {
    while (!failure) {
      if (signal?.aborted) {
        failure ??= { error: signal.reason };
        return;
      }
      let r: IteratorResult<T>;
      try {
        r = await pull();
      } catch (error) {
        failure ??= { error };
        return;
      }
      if (r.done) return;
      try {
        await fn(r.value);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, runner));
  if (failure) {
    await it.return?.();
    throw (failure as { error: unknown }).error;
  }
}
