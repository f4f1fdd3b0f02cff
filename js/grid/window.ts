// Which cells of a virtualised grid are on screen.

export interface GridWindow {
  columns: number;
  firstRow: number;
  lastRow: number; // exclusive
  first: number; // first item index
  last: number; // exclusive item index
  totalHeight: number;
}

export function visibleWindow(total: number, width: number, scrollTop: number, viewport: number,
                              cellW: number, cellH: number, overscanRows = 2): GridWindow {
  const columns = Math.max(1, Math.floor(width / cellW));
  const rows = Math.ceil(total / columns);
  const firstRow = Math.max(0, Math.floor(scrollTop / cellH) - overscanRows);
  const lastRow = Math.min(rows, Math.ceil((scrollTop + viewport) / cellH) + overscanRows);
  return {
    columns, firstRow, lastRow,
    first: firstRow * columns,
    last: Math.min(total, lastRow * columns),
    totalHeight: rows * cellH,
  };
}
