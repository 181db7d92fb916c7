import { ident, identList, qualified } from '../identifiers.ts';
import type { SqlParam, SqlSession } from './port.ts';
import { isTypedParam } from './port.ts';

/** A multi-row insert. */
export interface InsertRows {
  /** Database of the table; the session's own when omitted. */
  readonly schema?: string;
  readonly table: string;
  readonly columns: readonly string[];
  /** One array of values per row, in the order of `columns`. */
  readonly rows: readonly (readonly SqlParam[])[];
  /**
   * What a row whose primary or unique key exists already does: `error` fails the statement, `ignore` keeps
   * the existing row, `update` overwrites the `updateColumns` (an upsert, so a retried write duplicates nothing).
   * @default 'error'
   */
  readonly onDuplicate?: 'error' | 'ignore' | 'update';
  /** Columns overwritten on a duplicate key. @default every column */
  readonly updateColumns?: readonly string[];
  /** Largest statement to build, in bytes (the client's `maxStatementBytes`). */
  readonly maxStatementBytes: number;
  /**
   * Send prepared statements (the client's `preparesStatements`): every statement then has a power-of-two
   * row count, of at most 8,192 placeholders (1,000 rows of 12 columns go as 512 + 256 + 128 + 64 + 32 + 8),
   * so a table is written with at most a dozen statement texts, each parsed once per connection, and the values
   * travel in binary.
   * @default false
   */
  readonly prepared?: boolean;
}

// Upper bound of a value's size in the statement: UTF-16 units can take 3 bytes in utf8, escapes double some.
function estimateBytes(param: SqlParam): number {
  if (param === null) return 4;
  if (typeof param === 'string') return param.length * 3 + 2;
  if (param instanceof Uint8Array) return param.length * 2 + 3;
  if (typeof param === 'object' && isTypedParam(param)) return param.value.length * 3 + 2;
  return 24;
}

// Keeps any statement under 65,535 placeholders, the server-side prepared statement limit.
const MAX_PLACEHOLDERS = 60_000;

/**
 * Placeholders in one prepared statement: the driver keeps a definition (about 180 bytes) per placeholder of
 * every statement it has prepared on a connection, so this bounds its memory, with the pool's
 * maxPreparedStatements. With 1,024-row statements, a 2M-row copy's heap peaked at 835 MB, 150 MB of it these
 * definitions; with 512 rows of 12 columns, at 245 MB. Measured here: 256-row statements cost 10% more server CPU than 1,000-row ones.
 */
const MAX_PREPARED_PLACEHOLDERS = 8_192;

/**
 * Prepared statement texts by shape (head and tail) and row count. A 512-row text is tens of kilobytes; built
 * once, the same string also spares the driver hashing a new copy to find its prepared statement.
 */
const preparedTexts = new Map<string, Map<number, string>>();
const MAX_PREPARED_SHAPES = 256;

function preparedText(head: string, tuple: string, tail: string, rows: number): string {
  const shape = `${head}\u0000${tail}`;
  let texts = preparedTexts.get(shape);
  if (texts === undefined) {
    if (preparedTexts.size >= MAX_PREPARED_SHAPES) preparedTexts.clear();
    texts = new Map();
    preparedTexts.set(shape, texts);
  }
  let sql = texts.get(rows);
  if (sql === undefined) {
    sql = head + Array.from({ length: rows }, () => tuple).join(', ') + tail;
    texts.set(rows, sql);
  }
  return sql;
}

/** The rows' values in one list, row after row: the statement's parameters. */
function flatten(rows: readonly (readonly SqlParam[])[]): SqlParam[] {
  const values: SqlParam[] = [];
  for (const row of rows) for (const value of row) values.push(value);
  return values;
}

/**
 * Inserts rows with as few multi-row `INSERT … VALUES (…), (…)` statements as fit the byte budget.
 * Upserts use `ON DUPLICATE KEY UPDATE c = VALUES(c)`, which MySQL 8 and MariaDB both accept.
 * @returns the affected-row count the server reports, summed over the statements.
 */
export async function insertRows(session: SqlSession, spec: InsertRows): Promise<number> {
  if (spec.rows.length === 0) return 0;
  const target = spec.schema === undefined ? ident(spec.table, 'table') : qualified(spec.schema, spec.table);
  const mode = spec.onDuplicate ?? 'error';
  const head = `INSERT${mode === 'ignore' ? ' IGNORE' : ''} INTO ${target} (${identList(spec.columns)}) VALUES `;
  const tuple = `(${spec.columns.map(() => '?').join(', ')})`;
  const tail =
    mode === 'update'
      ? ` ON DUPLICATE KEY UPDATE ${(spec.updateColumns ?? spec.columns)
          .map((c) => `${ident(c)} = VALUES(${ident(c)})`)
          .join(', ')}`
      : '';
  const fixed = head.length + tail.length;
  const maxRows = Math.max(1, Math.floor(MAX_PLACEHOLDERS / spec.columns.length));
  const largestPrepared = Math.max(1, Math.floor(MAX_PREPARED_PLACEHOLDERS / spec.columns.length));

  let affected = 0;
  let batch: (readonly SqlParam[])[] = [];
  let bytes = fixed;
  const send = async (rows: readonly (readonly SqlParam[])[]): Promise<void> => {
    const result = spec.prepared
      ? await session.execute(preparedText(head, tuple, tail, rows.length), flatten(rows), { prepared: true })
      : await session.execute(head + rows.map(() => tuple).join(', ') + tail, flatten(rows));
    affected += result.affectedRows;
  };
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    if (spec.prepared) {
      for (let from = 0; from < batch.length; ) {
        const size = 2 ** Math.floor(Math.log2(Math.min(batch.length - from, largestPrepared)));
        await send(batch.slice(from, from + size));
        from += size;
      }
    } else {
      await send(batch);
    }
    batch = [];
    bytes = fixed;
  };
  for (const row of spec.rows) {
    if (row.length !== spec.columns.length) {
      throw new TypeError(`row has ${row.length} values for ${spec.columns.length} columns of ${spec.table}`);
    }
    let rowBytes = tuple.length + 2;
    for (const value of row) rowBytes += estimateBytes(value);
    if (batch.length > 0 && (bytes + rowBytes > spec.maxStatementBytes || batch.length >= maxRows))
      await flush();
    batch.push(row);
    bytes += rowBytes;
  }
  await flush();
  return affected;
}
