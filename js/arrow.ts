// Pages of rows arrive as Arrow IPC streams; this turns one into plain row objects.
import { tableFromIPC } from "apache-arrow";
import { bytesOf } from "./protocol";

export type Row = Record<string, unknown>;

export function rowsFromIPC(view: DataView | undefined): { columns: string[]; rows: Row[] } {
  if (!view || view.byteLength === 0) return { columns: [], rows: [] };
  const table = tableFromIPC(bytesOf(view));
  const columns = table.schema.fields.map((f) => f.name);
  const vectors = columns.map((c) => table.getChild(c)!);
  const rows: Row[] = [];
  for (let i = 0; i < table.numRows; i++) {
    const row: Row = {};
    columns.forEach((c, k) => {
      const v = vectors[k].get(i);
      row[c] = typeof v === "bigint" ? Number(v) : v;
    });
    rows.push(row);
  }
  return { columns, rows };
}

/** How a cell value is written: numbers to 3 digits, missing as an em dash, everything else as text. */
export function formatCell(v: unknown): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") {
    if (Number.isNaN(v)) return "—";
    return Number.isInteger(v) ? String(v) : v.toFixed(3);
  }
  if (typeof v === "boolean") return v ? "yes" : "no";
  return String(v);
}
