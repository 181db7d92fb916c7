import {
  BatchExecuteStatementCommand,
  BeginTransactionCommand,
  type ColumnMetadata,
  CommitTransactionCommand,
  ExecuteStatementCommand,
  type ExecuteStatementCommandInput,
  type Field,
  type RDSDataClient,
  RollbackTransactionCommand,
  type SqlParameter,
} from '@aws-sdk/client-rds-data';
import {
  DatabaseError,
  ResponseTooLarge,
  RowTooLarge,
  StatementStillRunning,
  StatementTimedOut,
  TransientDatabaseError,
} from '../errors.ts';
import type { ExecResult, Row, SqlClient, SqlParam, SqlSession, SqlValue } from './port.ts';
import { isTypedParam } from './port.ts';
import { isDdl, toNamedPlaceholders } from './statements.ts';

/** Options of the RDS Data API adapter. */
export interface DataApiClientOptions {
  /** The SDK client, created once per container by the caller. */
  readonly client: RDSDataClient;
  readonly resourceArn: string;
  readonly secretArn: string;
  readonly database: string;
  /**
   * Attempts for a statement that fails transiently outside a transaction (cluster resuming, throttling,
   * service unavailable). Inside a transaction nothing is retried here: the whole unit is retried by the caller.
   * @default 8
   */
  readonly maxAttempts?: number;
  /**
   * First backoff delay in ms; doubles per attempt, capped at 10 s.
   * @default 250
   */
  readonly baseDelayMs?: number;
  /** Replaced in tests. @default setTimeout-based sleep */
  readonly sleep?: (ms: number) => Promise<void>;
  /**
   * How often a DDL statement left running past the 45 s of its call is looked for on the server.
   * @default 5 s
   */
  readonly pollMs?: number;
}

// Exceptions after which the statement did not run, or runs again harmlessly outside a transaction.
const TRANSIENT_NAMES = new Set([
  'DatabaseResumingException',
  'DatabaseUnavailableException',
  'ServiceUnavailableError',
  'ThrottlingException',
  'TooManyRequestsException',
  'InternalServerErrorException',
]);
const TOO_LARGE = /allowed response size limit|response size.*exceed/i;
const ROW_TOO_LARGE = /packet for query is too large/i;
const LINK_FAILURE = /communications link failure|connection (?:reset|closed)/i;

function mapError(error: unknown, sql: string, continuing = false): Error {
  const name = error instanceof Error ? error.name : 'Error';
  const message = error instanceof Error ? error.message : String(error);
  const where = ` in: ${sql.length > 160 ? `${sql.slice(0, 160)}…` : sql}`;
  if (ROW_TOO_LARGE.test(message)) return new RowTooLarge(`${message}${where}`, name, { cause: error });
  if (TOO_LARGE.test(message)) return new ResponseTooLarge(`${message}${where}`, name, { cause: error });
  if (name === 'StatementTimeoutException')
    return continuing
      ? new StatementStillRunning(
          `the statement outlived the Data API's 45 s and goes on running${where}`,
          name,
          {
            cause: error,
          },
        )
      : new StatementTimedOut(
          `the statement ran longer than the Data API's 45 s and was stopped${where}`,
          name,
          {
            cause: error,
          },
        );
  if (TRANSIENT_NAMES.has(name) || LINK_FAILURE.test(message)) {
    return new TransientDatabaseError(`${name}: ${message}${where}`, name, { cause: error });
  }
  return new DatabaseError(`${message}${where}`, name, { cause: error });
}

// The Data API accepts TIMESTAMP hints only as YYYY-MM-DD HH:MM:SS[.FFF]; finer values go as plain
// strings, which MySQL converts with full precision.
const TIMESTAMP_HINT_FORMAT = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,3})?$/;

function toSqlParameter(name: string, param: SqlParam): SqlParameter {
  if (param === null) return { name, value: { isNull: true } };
  if (typeof param === 'boolean') return { name, value: { booleanValue: param } };
  // DECIMAL keeps every digit in comparisons with integer columns (a plain string compares as a double on MySQL).
  if (typeof param === 'bigint')
    return { name, value: { stringValue: param.toString() }, typeHint: 'DECIMAL' };
  if (typeof param === 'number') {
    if (!Number.isFinite(param)) throw new DatabaseError(`cannot send ${param} as a SQL parameter`);
    return Number.isSafeInteger(param)
      ? { name, value: { longValue: param } }
      : { name, value: { doubleValue: param } };
  }
  if (typeof param === 'string') return { name, value: { stringValue: param } };
  if (param instanceof Uint8Array) return { name, value: { blobValue: param } };
  if (isTypedParam(param)) {
    if (param.typeHint === 'TIMESTAMP' && !TIMESTAMP_HINT_FORMAT.test(param.value)) {
      return { name, value: { stringValue: param.value } };
    }
    return { name, value: { stringValue: param.value }, typeHint: param.typeHint };
  }
  throw new DatabaseError(`unsupported SQL parameter ${String(param)}`);
}

const INTEGER_TYPES = new Set(['TINYINT', 'SMALLINT', 'MEDIUMINT', 'INT', 'INTEGER', 'BIGINT', 'YEAR']);

// Integers arrive as strings (longReturnType STRING) so that BIGINT beyond 2^53 keeps every digit.
function integerValue(text: string): number | string {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : text;
}

function baseType(meta: ColumnMetadata | undefined): string {
  return (meta?.typeName ?? '').toUpperCase().split(/[\s(]/)[0] ?? '';
}

/** One Data API field as the JS value the mysql2 adapter gives for the same column. */
export function fromField(field: Field, meta: ColumnMetadata | undefined): SqlValue {
  if (field.isNull === true) return null;
  const type = baseType(meta);
  if (field.blobValue !== undefined) return Buffer.from(field.blobValue);
  if (field.booleanValue !== undefined) {
    const bit = field.booleanValue ? 1 : 0;
    return type === 'BIT' ? Buffer.from([bit]) : bit;
  }
  if (field.longValue !== undefined) return field.longValue;
  if (field.doubleValue !== undefined) return field.doubleValue;
  if (field.stringValue !== undefined) {
    return INTEGER_TYPES.has(type) ? integerValue(field.stringValue) : field.stringValue;
  }
  throw new DatabaseError(`unsupported Data API field ${JSON.stringify(Object.keys(field))}`);
}

/** Opens a Data API client. Statements run in autocommit unless inside {@link SqlClient.transaction}. */
export function createDataApiClient(options: DataApiClientOptions): SqlClient {
  const { client, resourceArn, secretArn, database } = options;
  const maxAttempts = options.maxAttempts ?? 8;
  const baseDelayMs = options.baseDelayMs ?? 250;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const target = { resourceArn, secretArn, database };

  async function send<T>(sql: string, transactionId: string | undefined, call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await call();
      } catch (error) {
        const mapped = mapError(error, sql, isDdl(sql));
        const retry = mapped instanceof TransientDatabaseError && transactionId === undefined;
        if (!retry || attempt >= maxAttempts) throw mapped;
        await sleep(Math.min(baseDelayMs * 2 ** (attempt - 1), 10_000));
      }
    }
  }

  function statementInput(
    sql: string,
    params: readonly SqlParam[],
    transactionId: string | undefined,
    withResults: boolean,
  ): ExecuteStatementCommandInput {
    const named = toNamedPlaceholders(sql);
    if (named.names.length !== params.length) {
      throw new DatabaseError(
        `statement has ${named.names.length} placeholders but ${params.length} values: ${sql}`,
      );
    }
    return {
      ...target,
      sql: named.sql,
      ...(params.length > 0
        ? { parameters: params.map((p, i) => toSqlParameter(named.names[i] ?? '', p)) }
        : {}),
      ...(withResults
        ? {
            includeResultMetadata: true,
            resultSetOptions: { decimalReturnType: 'STRING', longReturnType: 'STRING' },
          }
        : {}),
      ...(isDdl(sql) ? { continueAfterTimeout: true } : {}),
      ...(transactionId === undefined ? {} : { transactionId }),
    };
  }

  function session(transactionId: string | undefined): SqlSession {
    return {
      async query(sql, params = []): Promise<Row[]> {
        const input = statementInput(sql, params, transactionId, true);
        const out = await send(sql, transactionId, () => client.send(new ExecuteStatementCommand(input)));
        const columns = out.columnMetadata ?? [];
        const labels = columns.map((c, i) => c.label ?? c.name ?? `column_${i + 1}`);
        return (out.records ?? []).map((record) => {
          const row: Record<string, SqlValue> = {};
          record.forEach((field, i) => {
            row[labels[i] ?? `column_${i + 1}`] = fromField(field, columns[i]);
          });
          return row;
        });
      },
      async execute(sql, params = []): Promise<ExecResult> {
        const input = statementInput(sql, params, transactionId, false);
        const out = await send(sql, transactionId, () => client.send(new ExecuteStatementCommand(input)));
        return { affectedRows: out.numberOfRecordsUpdated ?? 0 };
      },
      async batch(sql, paramSets): Promise<void> {
        if (paramSets.length === 0) return;
        const named = toNamedPlaceholders(sql);
        const parameterSets = paramSets.map((params) => {
          if (params.length !== named.names.length) {
            throw new DatabaseError(
              `statement has ${named.names.length} placeholders but ${params.length} values`,
            );
          }
          return params.map((p, i) => toSqlParameter(named.names[i] ?? '', p));
        });
        const input = {
          ...target,
          sql: named.sql,
          parameterSets,
          ...(transactionId === undefined ? {} : { transactionId }),
        };
        await send(sql, transactionId, () => client.send(new BatchExecuteStatementCommand(input)));
      },
    };
  }

  async function transaction<T>(work: (tx: SqlSession) => Promise<T>): Promise<T> {
    const begun = await send('BEGIN', undefined, () => client.send(new BeginTransactionCommand(target)));
    const transactionId = begun.transactionId;
    if (transactionId === undefined) throw new DatabaseError('BeginTransaction returned no transactionId');
    let result: T;
    try {
      result = await work(session(transactionId));
    } catch (error) {
      await client
        .send(new RollbackTransactionCommand({ resourceArn, secretArn, transactionId }))
        .catch(() => {
          // The Data API ends a transaction on some errors (e.g. response too large); nothing left to roll back.
        });
      throw error;
    }
    await send('COMMIT', transactionId, () =>
      client.send(new CommitTransactionCommand({ resourceArn, secretArn, transactionId })),
    );
    return result;
  }

  const autocommit = session(undefined);
  return {
    adapter: 'data-api',
    database,
    ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
    // Requests stay far below the Data API's request limits; rows for one statement are a few hundred KiB.
    maxStatementBytes: 512 * 1024,
    // ExecuteStatement has no prepared statements: `prepared` is ignored.
    preparesStatements: false,
    ...autocommit,
    // Outside a transaction a batch is still all or nothing.
    batch: (sql, paramSets) => transaction((tx) => tx.batch(sql, paramSets)),
    transaction,
    close: async () => {
      // The SDK client is shared per container and owned by the caller.
    },
  };
}
