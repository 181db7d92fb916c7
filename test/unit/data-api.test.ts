import {
  BadRequestException,
  BatchExecuteStatementCommand,
  BeginTransactionCommand,
  CommitTransactionCommand,
  DatabaseResumingException,
  ExecuteStatementCommand,
  RDSDataClient,
  RollbackTransactionCommand,
} from '@aws-sdk/client-rds-data';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { DatabaseError, ResponseTooLarge, TransientDatabaseError } from '../../lambdas/core/errors.ts';
import { createDataApiClient } from '../../lambdas/core/sql/data-api.ts';
import { typed } from '../../lambdas/core/sql/port.ts';

const resourceArn = 'arn:aws:rds:eu-west-1:123456789012:cluster:shifu-target';
const secretArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:shifu-target-AbCdEf';
const database = 'shifu_saas';
const target = { resourceArn, secretArn, database };

const sdk = new RDSDataClient({
  region: 'eu-west-1',
  credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
});
const mock = mockClient(sdk);
let sleeps: number[];

function client(options: { maxAttempts?: number } = {}) {
  return createDataApiClient({
    client: sdk,
    ...target,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...options,
  });
}

const resuming = () => new DatabaseResumingException({ message: 'The database is resuming', $metadata: {} });

beforeEach(() => {
  mock.reset();
  sleeps = [];
});

describe('RDS Data API adapter requests', () => {
  it('sends ? values as named parameters, with type hints where the Data API accepts them', async () => {
    mock.on(ExecuteStatementCommand).resolves({ records: [], columnMetadata: [] });
    await client().query(
      'SELECT * FROM t WHERE a = ? AND b = ? AND c = ? AND d = ? AND e = ? AND f = ? AND g = ? AND h = ? AND i = ? AND j = ? AND k = ? AND l = ? AND m = ?',
      [
        42,
        'text',
        null,
        true,
        2.5,
        18446744073709551615n,
        Buffer.from([0, 255]),
        typed('DECIMAL', '12.50'),
        typed('TIMESTAMP', '2024-01-02 03:04:05.123'),
        typed('TIMESTAMP', '2024-01-02 03:04:05.123456'),
        typed('DATE', '2024-01-02'),
        typed('JSON', '{"a":1}'),
        typed('TIME', '12:00:00'),
      ],
    );
    expect(mock.commandCalls(ExecuteStatementCommand)[0]?.args[0].input).toEqual({
      ...target,
      sql: 'SELECT * FROM t WHERE a = :p1 AND b = :p2 AND c = :p3 AND d = :p4 AND e = :p5 AND f = :p6 AND g = :p7 AND h = :p8 AND i = :p9 AND j = :p10 AND k = :p11 AND l = :p12 AND m = :p13',
      parameters: [
        { name: 'p1', value: { longValue: 42 } },
        { name: 'p2', value: { stringValue: 'text' } },
        { name: 'p3', value: { isNull: true } },
        { name: 'p4', value: { booleanValue: true } },
        { name: 'p5', value: { doubleValue: 2.5 } },
        // A bigint compares exactly with an integer column as DECIMAL (a plain string compares as a double on MySQL).
        { name: 'p6', value: { stringValue: '18446744073709551615' }, typeHint: 'DECIMAL' },
        { name: 'p7', value: { blobValue: Buffer.from([0, 255]) } },
        { name: 'p8', value: { stringValue: '12.50' }, typeHint: 'DECIMAL' },
        { name: 'p9', value: { stringValue: '2024-01-02 03:04:05.123' }, typeHint: 'TIMESTAMP' },
        // Finer than the TIMESTAMP hint's format: sent as a plain string, which MySQL converts exactly.
        { name: 'p10', value: { stringValue: '2024-01-02 03:04:05.123456' } },
        { name: 'p11', value: { stringValue: '2024-01-02' }, typeHint: 'DATE' },
        { name: 'p12', value: { stringValue: '{"a":1}' }, typeHint: 'JSON' },
        { name: 'p13', value: { stringValue: '12:00:00' }, typeHint: 'TIME' },
      ],
      includeResultMetadata: true,
      resultSetOptions: { decimalReturnType: 'STRING', longReturnType: 'STRING' },
    });
  });

  it('asks DDL to keep running after the call times out, and nothing else', async () => {
    mock.on(ExecuteStatementCommand).resolves({ numberOfRecordsUpdated: 0 });
    await client().execute(
      'ALTER TABLE `user_users` ADD COLUMN `tenant_bid` VARCHAR(32) NOT NULL, ALGORITHM=INSTANT',
    );
    await client().execute('UPDATE t SET a = 1');
    const [ddl, dml] = mock.commandCalls(ExecuteStatementCommand).map((c) => c.args[0].input);
    expect(ddl).toEqual({
      ...target,
      sql: 'ALTER TABLE `user_users` ADD COLUMN `tenant_bid` VARCHAR(32) NOT NULL, ALGORITHM=INSTANT',
      continueAfterTimeout: true,
    });
    expect(dml).toEqual({ ...target, sql: 'UPDATE t SET a = 1' });
  });

  it('turns records into the JS values mysql2 gives, by column metadata', async () => {
    mock.on(ExecuteStatementCommand).resolves({
      columnMetadata: [
        { name: 'id', label: 'id', typeName: 'BIGINT' },
        { name: 'big', label: 'big', typeName: 'BIGINT UNSIGNED' },
        { name: 'n', label: 'n', typeName: 'INT' },
        { name: 'price', label: 'price', typeName: 'DECIMAL' },
        { name: 'ratio', label: 'ratio', typeName: 'DOUBLE' },
        { name: 'at', label: 'at', typeName: 'DATETIME' },
        { name: 'doc', label: 'doc', typeName: 'JSON' },
        { name: 'hash', label: 'hash', typeName: 'BINARY' },
        { name: 'flag', label: 'flag', typeName: 'BIT' },
        { name: 'active', label: 'active', typeName: 'TINYINT' },
        { name: 'gone', label: 'gone', typeName: 'VARCHAR' },
        { name: 'user_bid', label: 'owner', typeName: 'VARCHAR' },
      ],
      records: [
        [
          { stringValue: '42' },
          { stringValue: '18446744073709551615' },
          { longValue: 7 },
          { stringValue: '1999.99' },
          { doubleValue: 0.25 },
          { stringValue: '2024-02-29 23:59:59' },
          { stringValue: '{"a": 1}' },
          { blobValue: new Uint8Array([1, 2, 3]) },
          { booleanValue: true },
          { booleanValue: false },
          { isNull: true },
          { stringValue: 'u1' },
        ],
      ],
    });
    expect(await client().query('SELECT …')).toEqual([
      {
        id: 42,
        big: '18446744073709551615',
        n: 7,
        price: '1999.99',
        ratio: 0.25,
        at: '2024-02-29 23:59:59',
        doc: '{"a": 1}',
        hash: Buffer.from([1, 2, 3]),
        flag: Buffer.from([1]),
        active: 0,
        gone: null,
        owner: 'u1',
      },
    ]);
  });

  it('runs every statement of a transaction with its id, then commits', async () => {
    mock.on(BeginTransactionCommand).resolves({ transactionId: 'tx-1' });
    mock.on(ExecuteStatementCommand).resolves({ numberOfRecordsUpdated: 1 });
    mock.on(CommitTransactionCommand).resolves({ transactionStatus: 'Transaction Committed' });
    const result = await client().transaction(async (tx) => {
      await tx.execute('INSERT INTO t VALUES (?)', [1]);
      return 'done';
    });
    expect(result).toBe('done');
    expect(mock.commandCalls(BeginTransactionCommand)[0]?.args[0].input).toEqual(target);
    expect(mock.commandCalls(ExecuteStatementCommand)[0]?.args[0].input).toEqual({
      ...target,
      sql: 'INSERT INTO t VALUES (:p1)',
      parameters: [{ name: 'p1', value: { longValue: 1 } }],
      transactionId: 'tx-1',
    });
    expect(mock.commandCalls(CommitTransactionCommand)[0]?.args[0].input).toEqual({
      resourceArn,
      secretArn,
      transactionId: 'tx-1',
    });
    expect(mock.commandCalls(RollbackTransactionCommand)).toHaveLength(0);
  });

  it('rolls back and rethrows the error when the work throws', async () => {
    mock.on(BeginTransactionCommand).resolves({ transactionId: 'tx-2' });
    mock.on(RollbackTransactionCommand).resolves({ transactionStatus: 'Rollback Complete' });
    const failure = new Error('boom');
    await expect(
      client().transaction(async () => {
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(mock.commandCalls(RollbackTransactionCommand)[0]?.args[0].input).toEqual({
      resourceArn,
      secretArn,
      transactionId: 'tx-2',
    });
    expect(mock.commandCalls(CommitTransactionCommand)).toHaveLength(0);
  });

  it('sends a batch as one BatchExecuteStatement inside a transaction', async () => {
    mock.on(BeginTransactionCommand).resolves({ transactionId: 'tx-3' });
    mock.on(BatchExecuteStatementCommand).resolves({ updateResults: [{}, {}] });
    mock.on(CommitTransactionCommand).resolves({});
    await client().batch('INSERT INTO t (a, b) VALUES (?, ?)', [
      [1, 'x'],
      [2, null],
    ]);
    expect(mock.commandCalls(BatchExecuteStatementCommand)[0]?.args[0].input).toEqual({
      ...target,
      sql: 'INSERT INTO t (a, b) VALUES (:p1, :p2)',
      parameterSets: [
        [
          { name: 'p1', value: { longValue: 1 } },
          { name: 'p2', value: { stringValue: 'x' } },
        ],
        [
          { name: 'p1', value: { longValue: 2 } },
          { name: 'p2', value: { isNull: true } },
        ],
      ],
      transactionId: 'tx-3',
    });
    expect(mock.commandCalls(CommitTransactionCommand)).toHaveLength(1);
  });

  it('retries a resuming cluster outside a transaction, backing off', async () => {
    mock
      .on(ExecuteStatementCommand)
      .rejectsOnce(resuming())
      .rejectsOnce(resuming())
      .resolves({ numberOfRecordsUpdated: 3 });
    expect(await client().execute('DELETE FROM t')).toEqual({ affectedRows: 3 });
    expect(mock.commandCalls(ExecuteStatementCommand)).toHaveLength(3);
    expect(sleeps).toEqual([250, 500]);
  });

  it('gives up after the last attempt with a TransientDatabaseError naming the cause', async () => {
    mock.on(ExecuteStatementCommand).rejects(resuming());
    const error = await client({ maxAttempts: 3 })
      .execute('DELETE FROM t')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransientDatabaseError);
    expect((error as TransientDatabaseError).code).toBe('DatabaseResumingException');
    expect(mock.commandCalls(ExecuteStatementCommand)).toHaveLength(3);
  });

  it('does not retry inside a transaction: the caller retries the whole unit', async () => {
    mock.on(BeginTransactionCommand).resolves({ transactionId: 'tx-4' });
    mock.on(ExecuteStatementCommand).rejects(resuming());
    mock.on(RollbackTransactionCommand).resolves({});
    await expect(client().transaction((tx) => tx.execute('UPDATE t SET a = 1'))).rejects.toBeInstanceOf(
      TransientDatabaseError,
    );
    expect(mock.commandCalls(ExecuteStatementCommand)).toHaveLength(1);
    expect(mock.commandCalls(RollbackTransactionCommand)).toHaveLength(1);
  });

  it('reports the 1 MiB response limit as ResponseTooLarge, without retrying', async () => {
    mock.on(ExecuteStatementCommand).rejects(
      new BadRequestException({
        message: 'Database returned more than the allowed response size limit',
        $metadata: {},
      }),
    );
    await expect(client().query('SELECT body FROM wide')).rejects.toBeInstanceOf(ResponseTooLarge);
    expect(mock.commandCalls(ExecuteStatementCommand)).toHaveLength(1);
  });

  it('refuses a statement whose placeholders and values do not match', async () => {
    await expect(client().query('SELECT ? AS a', [])).rejects.toBeInstanceOf(DatabaseError);
    expect(mock.commandCalls(ExecuteStatementCommand)).toHaveLength(0);
  });
});
