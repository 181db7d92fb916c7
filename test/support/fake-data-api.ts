import { randomUUID } from 'node:crypto';
import {
  BadRequestException,
  BatchExecuteStatementCommand,
  type BatchExecuteStatementCommandInput,
  BeginTransactionCommand,
  type ColumnMetadata,
  CommitTransactionCommand,
  DatabaseErrorException,
  ExecuteStatementCommand,
  type ExecuteStatementCommandInput,
  type Field,
  NotFoundException,
  RDSDataClient,
  RollbackTransactionCommand,
  type SqlParameter,
  StatementTimeoutException,
} from '@aws-sdk/client-rds-data';
import { type AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import mysql from 'mysql2/promise';
import { mysqlUrl } from './mariadb.ts';

/**
 * An RDS Data API for tests: aws-sdk-client-mock answers the SDK's commands by running the statement on
 * the real MariaDB and shaping the answer as the Data API does for Aurora MySQL: records of `Field` unions,
 * `columnMetadata`, LONG and DECIMAL as strings when asked, BLOBs as bytes. It enforces the service's four
 * limits: 1 MiB per response and 64 KB per row (either ends the open transaction, as the real service does),
 * 4 MiB per request, and 45 s per statement (then `StatementTimeoutException`: the statement is stopped, or,
 * with `continueAfterTimeout`, goes on running on its connection).
 */
export interface FakeDataApi {
  readonly client: RDSDataClient;
  readonly mock: AwsClientStub<RDSDataClient>;
  /** How many responses were refused for size (the whole response, or one row). */
  tooLargeResponses: number;
  /** How many of those were refused for one row over the row limit. */
  tooLargeRows: number;
  /** How many statements timed out; how many of them went on running (`continueAfterTimeout`). */
  timedOut: number;
  continuedAfterTimeout: number;
  /** The largest request seen, in bytes (SQL and parameters). */
  largestRequest: number;
  /** Statements still running after their call timed out. */
  running(): number;
  close(): Promise<void>;
}

/** The service's limits; tests shrink them to meet them with small data. */
export interface DataApiLimits {
  /** @default 1 MiB */
  readonly responseLimitBytes?: number;
  /** @default 64 KB */
  readonly rowLimitBytes?: number;
  /** @default 4 MiB */
  readonly requestLimitBytes?: number;
  /** @default 45 s */
  readonly statementTimeoutMs?: number;
}

// mysql2 column type codes.
const INTEGER = new Map([
  [1, 'TINYINT'],
  [2, 'SMALLINT'],
  [3, 'INT'],
  [8, 'BIGINT'],
  [9, 'MEDIUMINT'],
  [13, 'YEAR'],
]);
const NAMES = new Map([
  [0, 'DECIMAL'],
  [246, 'DECIMAL'],
  [4, 'FLOAT'],
  [5, 'DOUBLE'],
  [7, 'TIMESTAMP'],
  [10, 'DATE'],
  [11, 'TIME'],
  [12, 'DATETIME'],
  [16, 'BIT'],
  [245, 'JSON'],
  [249, 'BLOB'],
  [250, 'BLOB'],
  [251, 'BLOB'],
  [252, 'BLOB'],
  [253, 'VARCHAR'],
  [254, 'CHAR'],
]);
const UNSIGNED_FLAG = 32;
const NOT_NULL_FLAG = 1;
const BINARY_CHARSET = 63;

interface FieldPacket {
  name: string;
  orgName: string;
  table: string;
  schema: string;
  columnType: number;
  columnLength: number;
  decimals: number;
  flags: number;
  characterSet: number;
}

function metadata(f: FieldPacket): ColumnMetadata {
  const integer = INTEGER.get(f.columnType);
  let typeName = integer ?? NAMES.get(f.columnType) ?? 'VARCHAR';
  if (f.characterSet === BINARY_CHARSET && (typeName === 'VARCHAR' || typeName === 'CHAR'))
    typeName = 'VARBINARY';
  if (f.characterSet !== BINARY_CHARSET && typeName === 'BLOB') typeName = 'TEXT';
  if (integer !== undefined && (f.flags & UNSIGNED_FLAG) !== 0) typeName += ' UNSIGNED';
  return {
    name: f.orgName || f.name,
    label: f.name,
    typeName,
    tableName: f.table,
    schemaName: f.schema,
    precision: f.columnLength,
    scale: f.decimals,
    nullable: (f.flags & NOT_NULL_FLAG) !== 0 ? 0 : 1,
    isSigned: (f.flags & UNSIGNED_FLAG) === 0,
  };
}

function toField(
  raw: Buffer | null,
  f: FieldPacket,
  options: ExecuteStatementCommandInput['resultSetOptions'],
): Field {
  if (raw === null) return { isNull: true };
  const text = (): string => raw.toString('utf8');
  if (INTEGER.has(f.columnType)) {
    return options?.longReturnType === 'STRING' ? { stringValue: text() } : { longValue: Number(text()) };
  }
  switch (NAMES.get(f.columnType)) {
    case 'DECIMAL':
      return options?.decimalReturnType === 'DOUBLE_OR_LONG'
        ? { doubleValue: Number(text()) }
        : { stringValue: text() };
    case 'FLOAT':
    case 'DOUBLE':
      return { doubleValue: Number(text()) };
    case 'BIT':
      return f.columnLength === 1 ? { booleanValue: raw[0] === 1 } : { blobValue: new Uint8Array(raw) };
    case 'BLOB':
    case 'VARCHAR':
    case 'CHAR':
      return f.characterSet === BINARY_CHARSET ? { blobValue: new Uint8Array(raw) } : { stringValue: text() };
    default:
      // DATE, TIME, DATETIME, TIMESTAMP, JSON: text (the server marks temporal columns binary, they are not).
      return { stringValue: text() };
  }
}

function fromField(field: Field | undefined): unknown {
  if (field === undefined || field.isNull) return null;
  if (field.stringValue !== undefined) return field.stringValue;
  if (field.longValue !== undefined) return field.longValue;
  if (field.doubleValue !== undefined) return field.doubleValue;
  if (field.booleanValue !== undefined) return field.booleanValue ? 1 : 0;
  if (field.blobValue !== undefined) return Buffer.from(field.blobValue);
  throw new Error(`fake Data API: unsupported parameter ${JSON.stringify(field)}`);
}

// `:p1` → `?`, with the values in the order the names appear.
function positional(
  sql: string,
  parameters: readonly SqlParameter[] = [],
): { sql: string; values: unknown[] } {
  const byName = new Map(parameters.map((p) => [p.name, p.value]));
  const values: unknown[] = [];
  const text = sql.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, (_, name: string) => {
    if (!byName.has(name))
      throw new BadRequestException({ message: `missing parameter ${name}`, $metadata: {} });
    values.push(fromField(byName.get(name)));
    return '?';
  });
  return { sql: text, values };
}

function recordSize(record: Field[]): number {
  let bytes = 0;
  for (const field of record) {
    if (field.stringValue !== undefined) bytes += Buffer.byteLength(field.stringValue);
    else if (field.blobValue !== undefined) bytes += field.blobValue.length;
    else bytes += 8;
  }
  return bytes;
}

function parameterSize(parameters: readonly SqlParameter[] = []): number {
  return parameters.reduce(
    (n, p) => n + Buffer.byteLength(JSON.stringify(p.value ?? null)) + (p.name?.length ?? 0),
    0,
  );
}

export async function fakeDataApi(options: { database: string } & DataApiLimits): Promise<FakeDataApi> {
  const url = mysqlUrl(options.database);
  const limit = options.responseLimitBytes ?? 1024 * 1024;
  const rowLimit = options.rowLimitBytes ?? 64 * 1024;
  const requestLimit = options.requestLimitBytes ?? 4 * 1024 * 1024;
  const statementTimeout = options.statementTimeoutMs ?? 45_000;
  const stillRunning = new Set<Promise<unknown>>();
  const pool = mysql.createPool({
    host: url.host,
    port: url.port,
    user: url.user,
    ...(url.password === undefined ? {} : { password: url.password }),
    database: url.database,
    connectionLimit: 4,
    charset: 'utf8mb4_unicode_ci',
    // Raw bytes of every value: the shaping above decides what the Data API would send.
    typeCast: (field, next) => (field.type === 'GEOMETRY' ? next() : field.buffer()),
  });
  const transactions = new Map<string, mysql.PoolConnection>();
  const client = new RDSDataClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  const mock = mockClient(client);
  const state: FakeDataApi = {
    client,
    mock,
    tooLargeResponses: 0,
    tooLargeRows: 0,
    timedOut: 0,
    continuedAfterTimeout: 0,
    largestRequest: 0,
    running: () => stillRunning.size,
    async close() {
      await Promise.allSettled([...stillRunning]);
      for (const conn of transactions.values()) conn.release();
      transactions.clear();
      mock.restore();
      await pool.end();
    },
  };

  const connectionFor = async (transactionId: string | undefined) => {
    if (transactionId === undefined) {
      const conn = await pool.getConnection();
      await conn.query("SET time_zone = '+00:00'");
      return { conn, release: () => conn.release() };
    }
    const conn = transactions.get(transactionId);
    if (conn === undefined) {
      throw new NotFoundException({ message: `Transaction ${transactionId} is not found`, $metadata: {} });
    }
    return { conn, release: () => {} };
  };

  const run = async (conn: mysql.PoolConnection, sql: string, values: unknown[]) => {
    try {
      return await conn.query({ sql, values, rowsAsArray: true });
    } catch (error) {
      const e = error as { sqlMessage?: string; message: string };
      throw new DatabaseErrorException({ message: e.sqlMessage ?? e.message, $metadata: {} });
    }
  };

  const checkRequest = (sql: string, parameters: readonly SqlParameter[] = []) => {
    const bytes = Buffer.byteLength(sql) + parameterSize(parameters);
    state.largestRequest = Math.max(state.largestRequest, bytes);
    if (bytes > requestLimit)
      throw new BadRequestException({
        message: `Request size ${bytes} exceeds the limit of ${requestLimit} bytes`,
        $metadata: {},
      });
  };

  /**
   * Runs a statement under the statement timeout. On timeout the call fails with StatementTimeoutException; the
   * statement is stopped (KILL QUERY), or with `continueAfterTimeout` left running, its connection held until it
   * ends. `release` is called when the connection is free again.
   */
  const timed = async (
    conn: mysql.PoolConnection,
    sql: string,
    values: unknown[],
    continueAfterTimeout: boolean,
    release: () => void,
  ) => {
    const work = run(conn, sql, values);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), statementTimeout);
    });
    const first = await Promise.race([
      work.then(
        () => 'done' as const,
        () => 'done' as const,
      ),
      timeout,
    ]);
    clearTimeout(timer);
    if (first === 'done') {
      release();
      return work;
    }
    state.timedOut += 1;
    if (continueAfterTimeout) {
      state.continuedAfterTimeout += 1;
      const rest = work
        .catch(() => undefined)
        .finally(() => {
          stillRunning.delete(rest);
          release();
        });
      stillRunning.add(rest);
    } else {
      const killer = await pool.getConnection();
      try {
        await killer.query(`KILL QUERY ${conn.threadId}`);
      } finally {
        killer.release();
      }
      await work.catch(() => undefined);
      release();
    }
    throw new StatementTimeoutException({
      message: 'Request timed out',
      $metadata: {},
      dbConnectionId: conn.threadId,
    });
  };

  mock.on(ExecuteStatementCommand).callsFake(async (input: ExecuteStatementCommandInput) => {
    checkRequest(input.sql ?? '', input.parameters);
    const { conn, release } = await connectionFor(input.transactionId);
    // From the statement on, `timed` frees the connection (at once, or when a statement left running ends).
    let handedOver = false;
    try {
      const { sql, values } = positional(input.sql ?? '', input.parameters);
      handedOver = true;
      const [result, fields] = await timed(conn, sql, values, input.continueAfterTimeout === true, release);
      if (!Array.isArray(result)) {
        return {
          numberOfRecordsUpdated: (result as { affectedRows: number }).affectedRows,
          generatedFields: [],
        };
      }
      const packets = (fields ?? []) as unknown as FieldPacket[];
      const records = (result as (Buffer | null)[][]).map((row) =>
        row.map((raw, i) => toField(raw, packets[i] as FieldPacket, input.resultSetOptions)),
      );
      const sizes = records.map(recordSize);
      const rowTooLarge = sizes.some((n) => n > rowLimit);
      if (rowTooLarge || sizes.reduce((a, b) => a + b, 0) > limit) {
        state.tooLargeResponses += 1;
        if (rowTooLarge) state.tooLargeRows += 1;
        if (input.transactionId !== undefined) {
          await conn.query('ROLLBACK');
          conn.release();
          transactions.delete(input.transactionId);
        }
        throw new BadRequestException({
          message: rowTooLarge
            ? `Packet for query is too large: a row of the result is over ${rowLimit} bytes`
            : 'Database returned more than the allowed response size limit',
          $metadata: {},
        });
      }
      return {
        records,
        numberOfRecordsUpdated: 0,
        ...(input.includeResultMetadata ? { columnMetadata: packets.map(metadata) } : {}),
      };
    } finally {
      if (!handedOver) release();
    }
  });

  mock.on(BatchExecuteStatementCommand).callsFake(async (input: BatchExecuteStatementCommandInput) => {
    checkRequest(input.sql ?? '', (input.parameterSets ?? []).flat());
    const { conn, release } = await connectionFor(input.transactionId);
    try {
      const updateResults = [];
      for (const set of input.parameterSets ?? []) {
        const { sql, values } = positional(input.sql ?? '', set);
        await run(conn, sql, values);
        updateResults.push({ generatedFields: [] });
      }
      return { updateResults };
    } finally {
      release();
    }
  });

  mock.on(BeginTransactionCommand).callsFake(async () => {
    const conn = await pool.getConnection();
    await conn.query("SET time_zone = '+00:00'");
    await conn.query('START TRANSACTION');
    const transactionId = randomUUID();
    transactions.set(transactionId, conn);
    return { transactionId };
  });

  const end = (statement: 'COMMIT' | 'ROLLBACK') => async (input: { transactionId?: string | undefined }) => {
    const id = input.transactionId ?? '';
    const conn = transactions.get(id);
    if (conn === undefined)
      throw new NotFoundException({ message: `Transaction ${id} is not found`, $metadata: {} });
    transactions.delete(id);
    try {
      await conn.query(statement);
    } finally {
      conn.release();
    }
    return { transactionStatus: statement === 'COMMIT' ? 'Transaction Committed' : 'Rollback Complete' };
  };
  mock.on(CommitTransactionCommand).callsFake(end('COMMIT'));
  mock.on(RollbackTransactionCommand).callsFake(end('ROLLBACK'));
  return state;
}
