import mysql from 'mysql2/promise';
import {
  DatabaseAccessDenied,
  DatabaseError,
  DatabaseUnreachable,
  TransientDatabaseError,
} from '../errors.ts';
import { DEFAULT_MAX_STATEMENT_BYTES, type MysqlClientOptions, mysqlTlsOptions } from './mysql-options.ts';
import type { ExecResult, Row, SqlClient, SqlParam, SqlSession } from './port.ts';
import { isTypedParam } from './port.ts';
import type { MysqlUrl } from './url.ts';
import { redactUrl } from './url.ts';

// mysql2 error codes that mean "try again": the statement did not take effect, or the link broke.
const TRANSIENT_CODES = new Set([
  'ER_LOCK_DEADLOCK',
  'ER_LOCK_WAIT_TIMEOUT',
  'PROTOCOL_CONNECTION_LOST',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'ER_QUERY_INTERRUPTED',
  'ER_CONNECTION_KILLED',
  'ER_NET_READ_ERROR',
  'ER_NET_READ_INTERRUPTED',
  'ER_NET_WRITE_INTERRUPTED',
  'ER_NET_ERROR_ON_WRITE',
  'ER_CLIENT_INTERACTION_TIMEOUT',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR',
  'PROTOCOL_ENQUEUE_AFTER_QUIT',
  'EHOSTDOWN',
  'ENETUNREACH',
]);
// mysql2 errors without a code that mean the same: the connection broke under the statement.
const TRANSIENT_MESSAGES =
  /can't add new command when connection is in closed state|connection lost|server closed the connection/i;
// TLS set up in the URL that the server or its certificate does not satisfy: the URL must change.
const TLS_FAILURES =
  /^(HANDSHAKE_NO_SSL_SUPPORT|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|ERR_TLS_CERT_ALTNAME_INVALID)$/;
const ACCESS_DENIED = new Set([
  'ER_ACCESS_DENIED_ERROR',
  'ER_DBACCESS_DENIED_ERROR',
  'ER_ACCESS_DENIED_NO_PASSWORD_ERROR',
]);
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN']);

interface DriverError {
  code?: unknown;
  sqlMessage?: unknown;
  message?: unknown;
}

function mapError(error: unknown, url: string, sql?: string, label?: string): Error {
  const e = (typeof error === 'object' && error !== null ? error : {}) as DriverError;
  // mysql2 keeps the statement with its values spliced in: rows must not reach logs through an error's cause.
  if ('sql' in e) delete (e as { sql?: unknown }).sql;
  const code = typeof e.code === 'string' ? e.code : undefined;
  const text =
    typeof e.sqlMessage === 'string'
      ? e.sqlMessage
      : typeof e.message === 'string'
        ? e.message
        : String(error);
  if (code !== undefined && UNREACHABLE_CODES.has(code))
    return new DatabaseUnreachable(url, { cause: error, label });
  if (code !== undefined && ACCESS_DENIED.has(code)) {
    const which = label === undefined ? 'the database' : `the ${label} database`;
    const field = label === undefined ? 'its URL' : `${label}.url (or ${label.toUpperCase()}_DATABASE_URL)`;
    return new DatabaseAccessDenied(
      `${which} at ${url} refused the login: ${text}. Check the user, password and grants in ${field}`,
      { cause: error },
    );
  }
  if (code !== undefined && TLS_FAILURES.test(code)) {
    const field = label === undefined ? 'its URL' : `${label}.url`;
    return new DatabaseAccessDenied(
      `${label === undefined ? 'the database' : `the ${label} database`} at ${url}: TLS failed (${code}: ${text}). Check ssl and ssl-ca in ${field}`,
      { cause: error },
    );
  }
  const where = sql === undefined ? '' : ` in: ${sql.length > 160 ? `${sql.slice(0, 160)}…` : sql}`;
  if ((code !== undefined && TRANSIENT_CODES.has(code)) || TRANSIENT_MESSAGES.test(text)) {
    return new TransientDatabaseError(`${text}${where}`, code, { cause: error });
  }
  return new DatabaseError(`${text}${where}`, code, { cause: error });
}

// mysql2 escapes values itself (client-side prepared statements); we pass them separately, never in SQL text.
function toDriverParam(param: SqlParam): unknown {
  // mysql2 sends a bigint as an integer literal (text) or LONGLONG (binary): exact beyond 2^53, where a digit
  // string compared with an integer column is compared as a double by MySQL.
  if (typeof param === 'bigint') return param;
  if (typeof param === 'boolean') return param ? 1 : 0;
  if (param instanceof Uint8Array && !Buffer.isBuffer(param)) return Buffer.from(param);
  if (param !== null && typeof param === 'object' && !Buffer.isBuffer(param) && isTypedParam(param)) {
    return param.value;
  }
  if (typeof param === 'number' && !Number.isFinite(param)) {
    throw new DatabaseError(`cannot send ${param} as a SQL parameter`);
  }
  return param;
}

function toRows(result: unknown): Row[] {
  if (!Array.isArray(result)) throw new DatabaseError('statement returned no rows; use execute() for writes');
  return result as Row[];
}

function toExecResult(result: unknown): ExecResult {
  const header = result as { affectedRows?: unknown };
  return { affectedRows: typeof header.affectedRows === 'number' ? header.affectedRows : 0 };
}

type Queryable = Pick<mysql.PoolConnection, 'query' | 'execute'>;

function session(conn: Queryable, url: string, label?: string): SqlSession {
  const run = async (sql: string, params: readonly SqlParam[] = [], prepared = false): Promise<unknown> => {
    try {
      const values = params.map(toDriverParam);
      // Prepared: the server parses the text once per connection and takes the values in binary.
      const [result] = prepared ? await conn.execute({ sql, values }) : await conn.query({ sql, values });
      return result;
    } catch (error) {
      throw mapError(error, url, sql, label);
    }
  };
  return {
    query: async (sql, params) => toRows(await run(sql, params)),
    execute: async (sql, params, options) => toExecResult(await run(sql, params, options?.prepared)),
    batch: async (sql, paramSets) => {
      for (const params of paramSets) await run(sql, params);
    },
  };
}

// Every connection speaks UTC and escapes with backslashes (mysql2's escaping assumes it).
const SESSION_SETUP = [
  "SET time_zone = '+00:00'",
  // A metadata lock held by a process that froze (Ctrl-Z, a paused VM) fails a statement after two minutes, as an
  // error that may pass and is retried, instead of hanging silently for the server's default of a day.
  'SET SESSION lock_wait_timeout = 120',
  "SET SESSION sql_mode = TRIM(BOTH ',' FROM REPLACE(CONCAT(',', @@SESSION.sql_mode, ','), ',NO_BACKSLASH_ESCAPES,', ','))",
];
// MySQL 8 and MariaDB both refuse every write, DDL included, in a read-only session (ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION).
const READ_ONLY = 'SET SESSION TRANSACTION READ ONLY';

/** Opens a pooled mysql2 client. Connections are made lazily, on first use. */
export function createMysqlClient(
  url: MysqlUrl,
  options: MysqlClientOptions = {},
  /** The URL's TLS options, when the caller has read them already. */
  tls = url.tls === undefined ? undefined : mysqlTlsOptions(url.tls, url.raw),
): SqlClient {
  const shown = redactUrl(options.display ?? url.raw);
  const pool = mysql.createPool({
    host: url.host,
    port: url.port,
    user: url.user,
    ...(url.password === undefined ? {} : { password: url.password }),
    database: url.database,
    ...(tls === undefined ? {} : { ssl: tls }),
    connectionLimit: options.connectionLimit ?? 4,
    charset: 'utf8mb4_unicode_ci',
    timezone: 'Z',
    dateStrings: true,
    jsonStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: false,
    decimalNumbers: false,
    multipleStatements: false,
    connectTimeout: 10_000,
    // No stack captured per call for the driver's errors: mapError raises our own error where we awaited, and
    // the capture cost a tenth of a CPU-second per million rows copied.
    trace: false,
    // Server-side statements kept per connection (least recently used closed first): the few multi-row INSERT
    // shapes of the tables being copied. With insertRows' 8,192 placeholders at most per statement, the driver's
    // copies of their parameter definitions stay under 24 MB per connection.
    maxPreparedStatements: 16,
  });
  const ready = new WeakSet<object>();
  const setup = options.readOnly ? [...SESSION_SETUP, READ_ONLY] : SESSION_SETUP;
  const label = options.label;

  async function acquire(): Promise<mysql.PoolConnection> {
    let conn: mysql.PoolConnection;
    try {
      conn = await pool.getConnection();
    } catch (error) {
      throw mapError(error, shown, undefined, label);
    }
    const core = conn.connection as object;
    if (!ready.has(core)) {
      try {
        for (const statement of setup) await conn.query(statement);
      } catch (error) {
        conn.release();
        throw mapError(error, shown, undefined, label);
      }
      ready.add(core);
    }
    return conn;
  }

  async function withConnection<T>(work: (s: SqlSession) => Promise<T>): Promise<T> {
    const conn = await acquire();
    try {
      return await work(session(conn, shown, label));
    } finally {
      conn.release();
    }
  }

  async function transaction<T>(work: (tx: SqlSession) => Promise<T>): Promise<T> {
    const conn = await acquire();
    const control = async (statement: string): Promise<void> => {
      try {
        await conn.query(statement);
      } catch (error) {
        throw mapError(error, shown, statement, label);
      }
    };
    try {
      await control('START TRANSACTION');
      const result = await work(session(conn, shown, label));
      await control('COMMIT');
      return result;
    } catch (error) {
      await conn.query('ROLLBACK').catch(() => {
        // The connection may be gone; the server rolls back an open transaction when it closes.
      });
      throw error;
    } finally {
      conn.release();
    }
  }

  return {
    adapter: 'mysql',
    database: url.database,
    maxStatementBytes: options.maxStatementBytes ?? DEFAULT_MAX_STATEMENT_BYTES,
    query: (sql, params) => withConnection((s) => s.query(sql, params)),
    preparesStatements: true,
    execute: (sql, params, options) => withConnection((s) => s.execute(sql, params, options)),
    batch: (sql, paramSets) => transaction((tx) => tx.batch(sql, paramSets)),
    transaction,
    close: () => pool.end(),
  };
}
