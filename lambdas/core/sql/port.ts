/**
 * The SQL port. Core logic sees only these types; the adapters (mysql2, RDS Data API) implement them and
 * return the same JS values for the same row:
 *
 * | SQL type                         | JS value                                                      |
 * |----------------------------------|---------------------------------------------------------------|
 * | integer types                    | `number`; BIGINT beyond ±2^53 as a decimal `string`           |
 * | DECIMAL                          | `string` (exact, e.g. `'12.50'`)                              |
 * | FLOAT, DOUBLE                    | `number`                                                      |
 * | DATE, DATETIME, TIMESTAMP, TIME  | `string` (`'YYYY-MM-DD HH:MM:SS[.ffffff]'`, UTC), never `Date` |
 * | JSON                             | `string` (the JSON text)                                      |
 * | CHAR, VARCHAR, TEXT, ENUM        | `string` (utf8mb4)                                            |
 * | BINARY, VARBINARY, BLOB, BIT     | `Buffer`                                                      |
 * | NULL                             | `null`                                                        |
 */

export type SqlValue = string | number | null | Buffer;

/** A result row keyed by column label (the alias when there is one). */
export type Row = Readonly<Record<string, SqlValue>>;

/** The SQL types that a string parameter can be marked with (the Data API sends them as `typeHint`). */
export type SqlTypeHint = 'DECIMAL' | 'TIMESTAMP' | 'DATE' | 'TIME' | 'JSON';

/** A string parameter that stands for a value of another SQL type. Build it with {@link typed}. */
export interface TypedParam {
  readonly typeHint: SqlTypeHint;
  readonly value: string;
}

/**
 * A statement parameter. Values are always sent as parameters, never spliced into SQL text.
 * `bigint` is sent as its decimal string; `boolean` as 1/0.
 */
export type SqlParam = SqlValue | bigint | boolean | Uint8Array | TypedParam;

export interface ExecResult {
  /** Rows the statement changed (for `ON DUPLICATE KEY UPDATE`: 1 per insert, 2 per update, as MySQL counts). */
  readonly affectedRows: number;
}

/** How to send one statement. */
export interface ExecOptions {
  /**
   * The same text is sent again and again with other values (a multi-row INSERT of a fixed row count): the
   * adapter may prepare it once per connection and send the values in the binary protocol, which spares the
   * server parsing every value as SQL text. mysql2 does (see {@link SqlClient.preparesStatements}); the Data
   * API has nothing to prepare and ignores it.
   */
  readonly prepared?: boolean;
}

/** What can run statements: a client, or a transaction in progress. Placeholders are `?`. */
export interface SqlSession {
  /** Runs a statement that returns rows. */
  query(sql: string, params?: readonly SqlParam[]): Promise<Row[]>;
  /** Runs a statement that changes something. */
  execute(sql: string, params?: readonly SqlParam[], options?: ExecOptions): Promise<ExecResult>;
  /** Runs one statement once per parameter set, all or nothing. */
  batch(sql: string, paramSets: readonly (readonly SqlParam[])[]): Promise<void>;
}

export interface SqlClient extends SqlSession {
  /** Which adapter this is, for messages and for choosing copy strategies. */
  readonly adapter: 'mysql' | 'data-api';
  /** The database (schema) statements run in. */
  readonly database: string;
  /** Largest statement, in bytes, that multi-row writers should build for this adapter. */
  readonly maxStatementBytes: number;
  /**
   * Whether `execute(…, { prepared: true })` prepares the statement on the server. Each distinct text then
   * holds a server-side statement per connection, so writers keep to a few shapes (insertRows: row counts
   * that are powers of two).
   */
  readonly preparesStatements: boolean;
  /**
   * How often a statement left running on the server after its call ended is looked for (the Data API's DDL
   * past 45 s); 5 s when omitted.
   */
  readonly pollMs?: number;
  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: SqlSession) => Promise<T>): Promise<T>;
  /** Releases connections. The client cannot be used afterwards. */
  close(): Promise<void>;
}

/** Marks a string parameter with the SQL type it stands for. */
export function typed(typeHint: SqlTypeHint, value: string): TypedParam {
  return { typeHint, value };
}

export function isTypedParam(param: SqlParam): param is TypedParam {
  return typeof param === 'object' && param !== null && !(param instanceof Uint8Array) && 'typeHint' in param;
}
