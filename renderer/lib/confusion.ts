// Reading an eval event's confusion matrix: rows are true classes, columns predictions (as the engines
// report it). Row-normalized shares make small classes as readable as big ones; the largest off-diagonal
// cells are the mistakes worth looking at first.

export interface ConfusionCell {
  truth: number;
  predicted: number;
  count: number;
  /** count / images of the true class. */
  share: number;
}

export function cell(m: readonly (readonly number[])[], truth: number, predicted: number): ConfusionCell {
  const count = m[truth]?.[predicted] ?? 0;
  const total = (m[truth] ?? []).reduce((a, b) => a + b, 0);
  return { truth, predicted, count, share: total ? count / total : 0 };
}

/** The `limit` most frequent confusions (off the diagonal), largest first. */
export function topConfusions(m: readonly (readonly number[])[], limit = 5): ConfusionCell[] {
  const cells: ConfusionCell[] = [];
  for (let t = 0; t < m.length; t++) {
    for (let p = 0; p < (m[t]?.length ?? 0); p++) if (t !== p && (m[t]![p] ?? 0) > 0) cells.push(cell(m, t, p));
  }
  return cells.sort((a, b) => b.count - a.count || b.share - a.share).slice(0, limit);
}
