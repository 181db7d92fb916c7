import { ResponseTooLarge, RowTooLarge } from '../errors.ts';
import { ident, identList, qualified } from '../identifiers.ts';
import type { Row, SqlClient, SqlParam, SqlSession, SqlValue } from './port.ts';

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
  /**
   * Columns whose values may be large (TEXT, BLOB, JSON, long VARCHAR), and whether their bytes are the value
   * (binary) or UTF-8 text. A row too large for one response (the Data API's 64 KB) is read with these columns in
   * slices and put together again exactly; without them such a row fails the read.
   */
  readonly sliceable?: readonly { readonly name: string; readonly binary: boolean }[];
  /**
   * SQL expressions read in place of some columns, under the column's name (e.g. a FLOAT as `col + 0E0`: its exact
   * double instead of six digits). Not for key columns.
   */
  readonly expressions?: Readonly<Record<string, string>>;
}

/** The select list of a read: each column, or the expression given for it under its name. */
function selectList(read: KeysetRead, columns: readonly string[]): string {
  return columns
    .map((c) => {
      const expression = read.expressions?.[c];
      return expression === undefined ? ident(c) : `${expression} AS ${ident(c)}`;
    })
    .join(', ');
}

/** Bytes of one slice of a large value: one column per response, well under the Data API's 64 KB per row. */
export const SLICE_BYTES = 48 * 1024;

/** A value's bytes, as SUBSTRING counts them: the binary value itself, or the text as UTF-8. */
function bytesOf(column: { name: string; binary: boolean }): string {
  return column.binary
    ? ident(column.name)
    : `CAST(CAST(${ident(column.name)} AS CHAR CHARACTER SET utf8mb4) AS BINARY)`;
}

/**
 * Reads one row too large for a response: the first row of the range, its key; its small columns and the byte
 * lengths of the large ones; then each large value in slices of {@link SLICE_BYTES}, joined and decoded as the
 * adapter would have returned it whole (a Buffer for binary columns, a string otherwise). With a client, in one
 * transaction, so every slice sees the same row.
 */
async function readSlicedRow(
  session: SqlSession | SqlClient,
  read: KeysetRead,
  from: string,
  where: { sql: string; params: SqlParam[] }[],
): Promise<Row | undefined> {
  const sliced = read.sliceable ?? [];
  const work = async (s: SqlSession): Promise<Row | undefined> => {
    const order = read.key.map((k) => `${ident(k)} ASC`).join(', ');
    const [keyRow] = await s.query(
      `SELECT ${identList(read.key)} FROM ${from}${where.length > 0 ? ` WHERE ${where.map((c) => `(${c.sql})`).join(' AND ')}` : ''} ORDER BY ${order} LIMIT 1`,
      where.flatMap((c) => c.params),
    );
    if (keyRow === undefined) return undefined;
    const keyValues = read.key.map((k) => keyRow[k] ?? null);
    const exact = read.key.map((k) => `${ident(k)} = ?`).join(' AND ');
    const exactParams = read.boundOf === undefined ? keyValues : read.boundOf(keyValues);
    const small = read.columns.filter((c) => !sliced.some((l) => l.name === c));
    const lengths = sliced.map((c, i) => `LENGTH(${bytesOf(c)}) AS ${ident(`__len_${i}`)}`);
    const [head] = await s.query(
      `SELECT ${[selectList(read, small), ...lengths].filter((p) => p !== '').join(', ')} FROM ${from} WHERE ${exact}`,
      exactParams,
    );
    if (head === undefined) return undefined;
    const row: Record<string, SqlValue> = {};
    for (const c of small) row[c] = head[c] ?? null;
    for (const [i, c] of sliced.entries()) {
      const length = head[`__len_${i}`];
      if (length === null || length === undefined) {
        row[c.name] = null;
        continue;
      }
      const parts: Buffer[] = [];
      for (let pos = 1; pos <= Number(length); pos += SLICE_BYTES) {
        const [piece] = await s.query(
          `SELECT SUBSTRING(${bytesOf(c)}, ?, ?) AS ${ident('piece')} FROM ${from} WHERE ${exact}`,
          [pos, SLICE_BYTES, ...exactParams],
        );
        const value = piece?.piece;
        parts.push(Buffer.isBuffer(value) ? value : Buffer.from(String(value ?? ''), 'binary'));
      }
      const bytes = Buffer.concat(parts);
      row[c.name] = c.binary ? bytes : bytes.toString('utf8');
    }
    return row;
  };
  return 'transaction' in session ? session.transaction(work) : work(session);
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
  const select = `SELECT ${selectList(read, read.columns)} FROM ${from}`;
  const order = ` ORDER BY ${read.key.map((k) => `${ident(k)} ASC`).join(', ')}`;
  const upper = read.upTo === undefined ? undefined : keyComparison(read.key, '<=', read.upTo);
  let after = read.after;
  const fullPage = Math.max(1, Math.floor(read.pageRows));
  let pageRows = fullPage;

  for (;;) {
    const lower = after === undefined ? undefined : keyComparison(read.key, '>', after);
    const where = [lower, upper].filter((c) => c !== undefined);
    const sql = `${select}${where.length > 0 ? ` WHERE ${where.map((c) => `(${c.sql})`).join(' AND ')}` : ''}${order} LIMIT ?`;
    const params = [...where.flatMap((c) => c.params), pageRows];
    let rows: Row[];
    const asked = pageRows;
    try {
      rows = await session.query(sql, params);
      // A page that fitted: the next may be larger again, up to the size asked for (a few large rows do not
      // keep the rest of the range in small pages).
      pageRows = Math.min(fullPage, pageRows * 2);
    } catch (error) {
      // One row over the row limit: that row alone, and if it is still too large, in slices.
      if (error instanceof RowTooLarge && pageRows > 1) {
        pageRows = 1;
        continue;
      }
      if (error instanceof ResponseTooLarge && pageRows > 1) {
        pageRows = Math.max(1, Math.floor(pageRows / 2));
        continue;
      }
      if (error instanceof ResponseTooLarge && (read.sliceable ?? []).length > 0) {
        const row = await readSlicedRow(session, read, from, where);
        if (row === undefined) return;
        yield [row];
        const values = read.key.map((k) => row[k] ?? null);
        after = read.boundOf === undefined ? values : read.boundOf(values);
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
    if (rows.length < asked) return;
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
