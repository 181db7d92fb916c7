import { ResponseTooLarge } from '../errors.ts';
import { ident, identList, qualified } from '../identifiers.ts';
import type { Row, SqlParam, SqlSession } from './port.ts';

/**
 * A lexicographic comparison of a (possibly composite) key with a tuple of values, in the form both
 * MySQL and MariaDB turn into an index range: `k1 >= ? AND (k1 > ? OR (k1 = ? AND k2 > ?))`.
 * (Row constructors such as `(k1, k2) > (?, ?)` are not range-optimised by every MariaDB version.)
 */
export function keyComparison(
  key: readonly string[],
  op: '>' | '>=' | '<' | '<=',
  values: readonly SqlParam[],
  alias?: string,
): { sql: string; params: SqlParam[] } {
  if (key.length === 0 || key.length !== values.length) {
    throw new TypeError(`key has ${key.length} columns but ${values.length} values`);
  }
  const column = (name: string) => `${alias === undefined ? '' : `${alias}.`}${ident(name, 'key column')}`;
  const strict = op === '>' || op === '<' ? op : op === '>=' ? '>' : '<';
  const first = column(key[0] ?? '');
  const branches: string[] = [];
  const params: SqlParam[] = [values[0] ?? null];
  for (let i = 0; i < key.length; i += 1) {
    const last = i === key.length - 1;
    const compare = last ? op : strict;
    const parts = key.slice(0, i).map((k) => `${column(k)} = ?`);
    parts.push(`${column(key[i] ?? '')} ${compare} ?`);
    branches.push(parts.length === 1 ? (parts[0] ?? '') : `(${parts.join(' AND ')})`);
    params.push(...values.slice(0, i + 1));
  }
  const bound = op === '>' || op === '>=' ? '>=' : '<=';
  return { sql: `${first} ${bound} ? AND (${branches.join(' OR ')})`, params };
}

/** A read of one key range, page by page. */
export interface KeysetRead {
  /** Database of the table; the session's own when omitted. */
  readonly schema?: string;
  readonly table: string;
  /** Columns to return; the key columns must be among them. */
  readonly columns: readonly string[];
  /** The key that orders the pages: the primary key, or a unique key of NOT NULL columns. */
  readonly key: readonly string[];
  /** Exclusive lower bound (key values); from the start when omitted. */
  readonly after?: readonly SqlParam[] | undefined;
  /** Inclusive upper bound (key values); to the end when omitted. */
  readonly upTo?: readonly SqlParam[] | undefined;
  /** Rows per page to start with. */
  readonly pageRows: number;
  /**
   * Turns the last row's key values into the next page's bound (e.g. an integer key beyond 2^53, which arrives
   * as its digits, into a bigint that compares exactly). As they are when omitted.
   */
  readonly boundOf?: (values: SqlParam[]) => SqlParam[];
}

/**
 * Reads a key range in pages of at most `pageRows` rows, with `WHERE key > last ORDER BY key LIMIT n`:
 * every page is an index range scan, however deep into the table. When the adapter answers
 * {@link ResponseTooLarge} (the Data API's 1 MiB limit), the page is halved and read again, down to one row.
 */
export async function* readKeyset(session: SqlSession, read: KeysetRead): AsyncGenerator<Row[]> {
  for (const k of read.key) {
    if (!read.columns.includes(k)) throw new TypeError(`key column ${k} must be among the columns read`);
  }
  const from = read.schema === undefined ? ident(read.table, 'table') : qualified(read.schema, read.table);
  const select = `SELECT ${identList(read.columns)} FROM ${from}`;
  const order = ` ORDER BY ${read.key.map((k) => `${ident(k)} ASC`).join(', ')}`;
  const upper = read.upTo === undefined ? undefined : keyComparison(read.key, '<=', read.upTo);
  let after = read.after;
  let pageRows = Math.max(1, Math.floor(read.pageRows));

  for (;;) {
    const lower = after === undefined ? undefined : keyComparison(read.key, '>', after);
    const where = [lower, upper].filter((c) => c !== undefined);
    const sql = `${select}${where.length > 0 ? ` WHERE ${where.map((c) => `(${c.sql})`).join(' AND ')}` : ''}${order} LIMIT ?`;
    const params = [...where.flatMap((c) => c.params), pageRows];
    let rows: Row[];
    try {
      rows = await session.query(sql, params);
    } catch (error) {
      if (error instanceof ResponseTooLarge && pageRows > 1) {
        pageRows = Math.max(1, Math.floor(pageRows / 2));
        continue;
      }
      if (error instanceof ResponseTooLarge) {
        throw new ResponseTooLarge(
          `one row of ${read.table} after key ${JSON.stringify(after ?? [])} is larger than the adapter can return`,
          error.code,
          { cause: error },
        );
      }
      throw error;
    }
    if (rows.length > 0) yield rows;
    if (rows.length < pageRows) return;
    const last = rows[rows.length - 1];
    if (last === undefined) return;
    const values = read.key.map((k) => last[k] ?? null);
    after = read.boundOf === undefined ? values : read.boundOf(values);
  }
}

/**
 * A key tuple as the ledger stores it (a JSON array: chunk bounds, quarantined row keys), with integers beyond
 * 2^53 kept as their exact digits instead of the nearest double. Servers compare such a string with a BIGINT
 * column exactly.
 */
export function parseKeyTuple(text: string): (string | number)[] {
  const parsed: unknown = JSON.parse(text, (_key, value: unknown, context?: { source?: string }) =>
    typeof value === 'number' &&
    !Number.isSafeInteger(value) &&
    context?.source !== undefined &&
    /^-?\d+$/.test(context.source)
      ? context.source
      : value,
  );
  if (!Array.isArray(parsed) || parsed.some((v) => typeof v !== 'string' && typeof v !== 'number'))
    throw new TypeError(`not a key tuple: ${text.slice(0, 100)}`);
  return parsed as (string | number)[];
}
