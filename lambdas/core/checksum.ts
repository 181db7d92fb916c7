import { ident, qualified } from './identifiers.ts';
import type { ColumnInfo } from './schema/types.ts';
import { keyComparison } from './sql/keyset.ts';
import type { SqlParam, SqlSession } from './sql/port.ts';
import { num, str } from './sql/rows.ts';

/** A key range: rows with key > `after` (exclusive) and key <= `upTo` (inclusive); null is open. */
export interface KeyRange {
  readonly after: readonly SqlParam[] | null;
  readonly upTo: readonly SqlParam[] | null;
}

/** COUNT and 64-bit checksum of a set of rows, comparable across source and target. */
export interface Checksum {
  readonly rows: number;
  /** Unsigned 64-bit XOR of the rows' hashes, as decimal text. */
  readonly sum: string;
}

// Unit separator: values rarely hold it, so shifted content between columns shows as a difference.
const SEPARATOR = 'CHAR(31)';

/**
 * The per-row hash: 64 bits from two CRC32s of the row's text, once with the columns in table order and once in
 * reverse order, where the text is every column (`CONCAT_WS`) plus a NULL bitmap of the nullable columns
 * (CONCAT_WS skips NULLs; the bitmap says which were skipped, so NULL never reads as '' or as a shifted value).
 * A CRC is linear in the text's bits, so a second CRC of the same text with something appended would be an
 * affine function of the first and add no bits; the same values in another order are a different linear map.
 * A table with a single value per row uses that value reversed instead. XORed over the rows, so the order rows
 * are read in does not matter. Computed in SQL on each side; the target's `tenant_bid` is simply not among the
 * columns, and the columns (with their nullability) are the source's on both sides.
 *
 * A NOT NULL column has no bit in the bitmap: were the target's copy NULL, its text would hold one separator
 * fewer than the source's. Measured here on 480k rows: 0.39 s, against 0.92 s for the earlier form (a bitmap
 * of every column and a CRC of the text reversed) and 1.4 s for MD5.
 */
export function checksumExpression(columns: readonly ColumnInfo[], alias: string): string {
  return `COALESCE(BIT_XOR(${rowHashExpression(columns, alias)}), 0)`;
}

/** One row's 64-bit hash, the term {@link checksumExpression} XORs over a range: rows compared one by one. */
export function rowHashExpression(columns: readonly ColumnInfo[], alias: string): string {
  const values = columns.map((c) => `${alias}.${ident(c.name, 'column')}`);
  const nullable = columns
    .filter((c) => c.nullable)
    .map((c) => `ISNULL(${alias}.${ident(c.name, 'column')})`);
  const parts = nullable.length === 0 ? values : [...values, `CONCAT(${nullable.join(', ')})`];
  const forward = `CONCAT_WS(${SEPARATOR}, ${parts.join(', ')})`;
  const backward =
    parts.length === 1
      ? `REVERSE(${forward})`
      : `CONCAT_WS(${SEPARATOR}, ${[...parts].reverse().join(', ')})`;
  return `((CRC32(${forward}) << 32) | CRC32(${backward}))`;
}

/** The WHERE clause of a key range, with its parameters. */
export function rangeCondition(
  key: readonly string[],
  range: KeyRange,
  alias?: string,
): { sql: string; params: SqlParam[] } {
  const parts: string[] = [];
  const params: SqlParam[] = [];
  if (range.after !== null) {
    const c = keyComparison(key, '>', range.after, alias);
    parts.push(`(${c.sql})`);
    params.push(...c.params);
  }
  if (range.upTo !== null) {
    const c = keyComparison(key, '<=', range.upTo, alias);
    parts.push(`(${c.sql})`);
    params.push(...c.params);
  }
  return { sql: parts.length === 0 ? '1 = 1' : parts.join(' AND '), params };
}

/**
 * COUNT(*) and checksum of one key range of a table, leaving out the rows whose keys are listed in
 * `exclude` (rows quarantined instead of copied).
 */
export async function rangeChecksum(
  session: SqlSession,
  spec: {
    database: string;
    table: string;
    columns: readonly ColumnInfo[];
    key: readonly string[];
    range: KeyRange;
    exclude?: readonly (readonly SqlParam[])[];
  },
): Promise<Checksum> {
  const where = rangeCondition(spec.key, spec.range, 'a');
  const params = [...where.params];
  let excluded = '';
  if (spec.exclude !== undefined && spec.exclude.length > 0) {
    const tuple =
      spec.key.length === 1
        ? `a.${ident(spec.key[0] ?? '')}`
        : `(${spec.key.map((k) => `a.${ident(k)}`).join(', ')})`;
    const one = spec.key.length === 1 ? '?' : `(${spec.key.map(() => '?').join(', ')})`;
    excluded = ` AND ${tuple} NOT IN (${spec.exclude.map(() => one).join(', ')})`;
    for (const k of spec.exclude) params.push(...k);
  }
  const [row] = await session.query(
    `SELECT COUNT(*) AS n, ${checksumExpression(spec.columns, 'a')} AS s FROM ${qualified(spec.database, spec.table)} a WHERE ${where.sql}${excluded}`,
    params,
  );
  return { rows: row === undefined ? 0 : num(row, 'n'), sum: row === undefined ? '0' : str(row, 's') };
}
