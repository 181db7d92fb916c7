import { ExecuteStatementCommand } from '@aws-sdk/client-rds-data';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../lambdas/core/config/schema.ts';
import { DatabaseError, StatementTimedOut } from '../../lambdas/core/errors.ts';
import { qualified } from '../../lambdas/core/identifiers.ts';
import { ensureLedger } from '../../lambdas/core/ledger/runs.ts';
import { createDataApiClient } from '../../lambdas/core/sql/data-api.ts';
import { scalarNumber } from '../../lambdas/core/sql/rows.ts';
import { parseDatabaseUrl } from '../../lambdas/core/sql/url.ts';
import { type TaskDeps, TimeRunningOut } from '../../lambdas/core/task.ts';
import { rebuildIndexes } from '../../lambdas/data/indexes.ts';
import { demoConfig } from '../../local/demo/config.ts';
import { type FakeDataApi, fakeDataApi } from '../support/fake-data-api.ts';
import { mysqlClient, scratchDatabase } from '../support/mariadb.ts';

const cluster = 'arn:aws:rds:us-east-1:123456789012:cluster:shifu';
const secret = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:shifu-AbCdEf';
const RUN = 'data-20261201T000000Z-abcdef';

/**
 * The Data API's statement limit, met: a statement is stopped at the limit and says so, and an index build that
 * outlives its call goes on running on the server, is polled until it ends, and is never submitted twice, even by
 * a task retried while it runs. The limit is shrunk to 150 ms so that a 600,000-row index build (about 0.8 s here)
 * outlives it.
 */
describe('the Data API statement limit', () => {
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  const fakes: FakeDataApi[] = [];
  const api = async (database: string) => {
    const fake = await fakeDataApi({ database, statementTimeoutMs: 150 });
    fakes.push(fake);
    return {
      fake,
      client: createDataApiClient({
        client: fake.client,
        resourceArn: cluster,
        secretArn: secret,
        database,
        pollMs: 50,
      }),
    };
  };

  beforeAll(async () => {
    db = await scratchDatabase('dapi_limits');
    const direct = mysqlClient(db.name);
    try {
      await ensureLedger(direct);
      await direct.execute('CREATE TABLE big (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(64) NOT NULL)');
      await direct.execute('INSERT INTO big SELECT seq, MD5(seq) FROM seq_1_to_600000');
    } finally {
      await direct.close();
    }
  }, 60_000);
  afterAll(async () => {
    for (const fake of fakes) await fake.close();
    await db?.drop();
  });

  it('stops a query at the limit and says it timed out', async () => {
    const { client } = await api(db.name);
    const failure = await client.query('SELECT SLEEP(2) AS s').catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(StatementTimedOut);
    expect(String((failure as Error).message)).toMatch(/longer than the Data API's 45 s and was stopped/);
  });

  it('polls an index build that outlives its call to completion, submitting it once, across a retried task', async () => {
    const target = await api(db.name);
    const server = await api('information_schema');
    const direct = mysqlClient(db.name);
    try {
      await direct.execute(
        `INSERT INTO migration_deferred_indexes (run_id, table_name, index_name, definition, dropped_at)
         VALUES (?, 'big', 'idx_v', 'KEY \`idx_v\` (\`v\`)', CURRENT_TIMESTAMP(3))`,
        [RUN],
      );
      const deps = (signal: AbortSignal) =>
        ({
          config: ConfigSchema.parse(demoConfig()),
          targetUrl: parseDatabaseUrl(`rdsdata://${cluster}/${db.name}?secret=${secret}`),
          target: target.client,
          targetServer: server.client,
          signal,
        }) as unknown as TaskDeps;
      // The first attempt runs out of time while the build runs (as a Lambda near its timeout would).
      const first = new AbortController();
      const attempt = rebuildIndexes(deps(first.signal), RUN, 'big');
      const abortWhenLeftRunning = setInterval(() => {
        if (target.fake.continuedAfterTimeout > 0)
          first.abort(new TimeRunningOut('the function has 30 s left'));
      }, 10);
      await expect(attempt).rejects.toBeInstanceOf(TimeRunningOut);
      clearInterval(abortWhenLeftRunning);
      // It stopped while the build went on: the server still runs it.
      expect(target.fake.running()).toBe(1);
      // Retried: the build is still running, so it is waited for, not submitted again.
      const built = await rebuildIndexes(deps(new AbortController().signal), RUN, 'big');
      expect(built).toBe(1);
      const alters = target.fake.mock
        .commandCalls(ExecuteStatementCommand)
        .filter((c) => /^ALTER TABLE/.test(c.args[0].input.sql ?? ''));
      expect(alters).toHaveLength(1);
      expect(alters[0]?.args[0].input.continueAfterTimeout).toBe(true);
      expect(target.fake.continuedAfterTimeout).toBe(1);
      const index = await direct.query(
        "SELECT COUNT(*) AS n FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'big' AND INDEX_NAME = 'idx_v'",
        [db.name],
      );
      expect(scalarNumber(index)).toBeGreaterThan(0);
      const [ledger] = await direct.query(
        `SELECT rebuilt_at IS NOT NULL AS done FROM ${qualified(db.name, 'migration_deferred_indexes')} WHERE run_id = ?`,
        [RUN],
      );
      expect(Number(ledger?.done)).toBe(1);
    } finally {
      await direct.close();
    }
  }, 60_000);

  it('refuses a request over the request limit with a clear error', async () => {
    const fake = await fakeDataApi({ database: db.name, requestLimitBytes: 64 * 1024 });
    fakes.push(fake);
    const client = createDataApiClient({
      client: fake.client,
      resourceArn: cluster,
      secretArn: secret,
      database: db.name,
    });
    await expect(client.query('SELECT LENGTH(?) AS n', ['x'.repeat(100 * 1024)])).rejects.toThrow(
      DatabaseError,
    );
    await expect(client.query('SELECT LENGTH(?) AS n', ['x'.repeat(100 * 1024)])).rejects.toThrow(
      /Request size \d+ exceeds the limit of 65536 bytes/,
    );
  });
});
