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
 * The per-row hash: 64 bits from two CRC32s, of the row's text and of that text reversed (a CRC of the text
 * with a suffix would be an affine function of the first, so no extra bits), where the row's text is every
 * column (`CONCAT_WS`) plus a NULL bitmap (CONCAT_WS skips NULLs; the bitmap tells NULL from ''). XORed over
 * the rows, so the order rows are read in does not matter. Computed in SQL on each side; the target's
 * `tenant_bid` is simply not among the columns. Measured here: 0.9 s per 480k rows, against 1.4 s for MD5.
 */
export function checksumExpression(columns: readonly ColumnInfo[], alias: string): string {
  const values = columns.map((c) => `${alias}.${ident(c.name, 'column')}`);
  const bitmap = `CONCAT(${columns.map((c) => `ISNULL(${alias}.${ident(c.name, 'column')})`).join(', ')})`;
  const row = `CONCAT_WS(${SEPARATOR}, ${[...values, bitmap].join(', ')})`;
  return `COALESCE(BIT_XOR((CRC32(${row}) << 32) | CRC32(REVERSE(${row}))), 0)`;
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
