// Layout arithmetic of the virtualized thumbnail grid: how many columns fit, which rows are on screen, which
// pages of the image list they need, and where the keyboard moves the focus. Only the visible rows (plus a
// little overscan) exist in the DOM, so 100k images cost what one screenful costs.

export interface GridLayout {
  columns: number;
  /** Width and height of one cell, caption included (px). */
  cellWidth: number;
  rowHeight: number;
  rows: number;
  totalHeight: number;
}

export function gridLayout(width: number, total: number, o: { minCell: number; gap: number; caption: number }): GridLayout {
  const usable = Math.max(0, width - o.gap);
  const columns = Math.max(1, Math.floor(usable / (o.minCell + o.gap)));
  const cellWidth = Math.max(1, Math.floor(usable / columns) - o.gap);
  const rowHeight = cellWidth + o.caption + o.gap;
  const rows = Math.ceil(total / columns);
  return { columns, cellWidth, rowHeight, rows, totalHeight: rows * rowHeight + o.gap };
}

export interface VisibleRange {
  firstRow: number;
  /** Exclusive. */
  endRow: number;
  firstIndex: number;
  /** Exclusive. */
  endIndex: number;
}

export function visibleRange(layout: GridLayout, total: number, scrollTop: number, viewport: number, overscanRows = 2): VisibleRange {
  const firstRow = Math.max(0, Math.floor(scrollTop / layout.rowHeight) - overscanRows);
  const endRow = Math.min(layout.rows, Math.ceil((scrollTop + viewport) / layout.rowHeight) + overscanRows);
  return { firstRow, endRow, firstIndex: firstRow * layout.columns, endIndex: Math.min(total, endRow * layout.columns) };
}

/** The page numbers (of `pageSize` items) covering [from, end). */
export function pagesFor(from: number, end: number, pageSize: number): number[] {
  if (end <= from) return [];
  const pages: number[] = [];
  for (let p = Math.floor(from / pageSize); p * pageSize < end; p++) pages.push(p);
  return pages;
}

/** The index the focus moves to for a navigation key, or null for other keys. */
export function moveFocus(key: string, index: number, columns: number, total: number, rowsPerScreen: number): number | null {
  if (total === 0) return null;
  const clamp = (i: number) => Math.min(total - 1, Math.max(0, i));
  switch (key) {
    case 'ArrowRight':
      return clamp(index + 1);
    case 'ArrowLeft':
      return clamp(index - 1);
    case 'ArrowDown':
      return clamp(index + columns);
    case 'ArrowUp':
      return clamp(index - columns);
    case 'PageDown':
      return clamp(index + columns * Math.max(1, rowsPerScreen));
    case 'PageUp':
      return clamp(index - columns * Math.max(1, rowsPerScreen));
    case 'Home':
      return 0;
    case 'End':
      return total - 1;
    default:
      return null;
  }
}

/** The scrollTop that brings row `row` into view (unchanged when it already is). */
export function scrollToRow(layout: GridLayout, row: number, scrollTop: number, viewport: number): number {
  const top = row * layout.rowHeight;
  const bottom = top + layout.rowHeight;
  if (top < scrollTop) return top;
  if (bottom > scrollTop + viewport) return bottom - viewport;
  return scrollTop;
}
