import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createFolderArchive } from '../../lambdas/core/archive/folder.ts';
import { ConfigSchema } from '../../lambdas/core/config/schema.ts';
import { qualified } from '../../lambdas/core/identifiers.ts';
import { METRICS_NAMESPACE, SERVICE_NAME } from '../../lambdas/core/metrics.ts';
import { powertoolsMetrics } from '../../lambdas/core/observability.ts';
import { createDataApiClient } from '../../lambdas/core/sql/data-api.ts';
import { scalarNumber } from '../../lambdas/core/sql/rows.ts';
import { parseDatabaseUrl } from '../../lambdas/core/sql/url.ts';
import type { TaskDeps } from '../../lambdas/core/task.ts';
import { demoConfig } from '../../local/demo/config.ts';
import { DEMO_TABLES } from '../../local/demo/schema.ts';
import { seedDemo } from '../../local/demo/seed.ts';
import { loadDefinition } from '../../local/engine/definition.ts';
import { localInvoker, localSubstitutions } from '../../local/engine/functions.ts';
import { runLocal } from '../../local/engine/run.ts';
import { type FakeDataApi, fakeDataApi } from '../support/fake-data-api.ts';
import { mysqlClient, scratchDatabase } from '../support/mariadb.ts';

const ACCOUNT = '123456789012';
const cluster = `arn:aws:rds:us-east-1:${ACCOUNT}:cluster:shifu`;
const secret = `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:shifu-AbCdEf`;

/**
 * The data phase end to end through the RDS Data API adapter: source, target and information_schema are each
 * an aws-sdk-client-mock RDSDataClient answering from MariaDB in the Data API's shapes, 1 MiB response limit
 * included. The copy takes the client-side path (no server-side INSERT … SELECT through the Data API) and
 * reads in keyset pages that halve whenever a page would exceed 1 MiB (the demo has lessons over 64 KB).
 */
describe('data phase through the RDS Data API', () => {
  let source: Awaited<ReturnType<typeof scratchDatabase>>;
  let target: Awaited<ReturnType<typeof scratchDatabase>>;
  const fakes: FakeDataApi[] = [];

  beforeAll(async () => {
    source = await scratchDatabase('dapi_src');
    target = await scratchDatabase('dapi_tgt');
    const admin = mysqlClient('information_schema');
    try {
      await seedDemo({ client: admin, database: source.name, users: 150, reset: false });
      // A lesson of several hundred KB, multi-byte characters included: over the Data API's 64 KB per row, it is
      // read in slices (which cut characters in two) and must arrive exactly.
      await admin.execute(
        `UPDATE ${qualified(source.name, 'shifu_outlines')} SET content = CONCAT(REPEAT('第三课：变量与作用域 🙂 lesson text, ', 9000), 'END') ORDER BY id LIMIT 1`,
      );
    } finally {
      await admin.close();
    }
  });
  afterAll(async () => {
    for (const fake of fakes) await fake.close();
    await source?.drop();
    await target?.drop();
  });

  async function dataApi(database: string, responseLimitBytes?: number) {
    const fake = await fakeDataApi({
      database,
      ...(responseLimitBytes === undefined ? {} : { responseLimitBytes }),
    });
    fakes.push(fake);
    return {
      fake,
      client: createDataApiClient({ client: fake.client, resourceArn: cluster, secretArn: secret, database }),
    };
  }

  it('runs foundation and data with every chunk validated, paging under the response limit', async () => {
    // A demo this small has one lesson over 64 KB: a 256 KiB limit makes its pages overflow as 1 MiB would at scale.
    const src = await dataApi(source.name, 256 * 1024);
    const tgt = await dataApi(target.name);
    const server = await dataApi('information_schema');
    const urls = {
      sourceUrl: parseDatabaseUrl(`rdsdata://${cluster}/${source.name}?secret=${secret}`),
      targetUrl: parseDatabaseUrl(`rdsdata://${cluster}/${target.name}?secret=${secret}`),
    };
    const config = ConfigSchema.parse({
      ...demoConfig(),
      source: { url: urls.sourceUrl.raw },
      target: { url: urls.targetUrl.raw },
      archive: { url: 'unused' },
      chunking: { rowsPerChunk: 2_000, maxConcurrency: 2, copyPath: 'auto' },
    });
    const emf: Record<string, unknown>[] = [];
    const deps: Omit<TaskDeps, 'signal'> = {
      config,
      ...urls,
      source: src.client,
      target: tgt.client,
      targetServer: server.client,
      archive: createFolderArchive(mkdtempSync(join(tmpdir(), 'smt-dapi-'))),
      // The Lambda's sink: Powertools' CloudWatch Embedded Metric Format records, on stdout (kept below).
      metrics: powertoolsMetrics(new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE_NAME })),
    };
    const write = process.stdout.write.bind(process.stdout);
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation((chunk, ...rest) => {
      const text = String(chunk);
      if (!text.startsWith('{"_aws"')) return write(chunk, ...(rest as []));
      for (const line of text.split('\n')) if (line !== '') emf.push(JSON.parse(line));
      return true;
    });
    try {
      for (const phase of ['foundation', 'data']) {
        const { result } = runLocal({
          definition: loadDefinition(phase, localSubstitutions()),
          input: {},
          invoke: localInvoker(deps),
          archive: deps.archive,
          timeScale: 0,
        });
        const outcome = await result;
        expect(outcome, `${phase}: ${outcome.error} ${outcome.cause}`).toMatchObject({
          status: 'SUCCEEDED',
        });
      }
    } finally {
      stdout.mockRestore();
    }
    // Every row arrived or was quarantined, through pages the Data API could return.
    const direct = mysqlClient('information_schema');
    let copiedRows = 0;
    let heldRows = 0;
    try {
      for (const { name } of DEMO_TABLES) {
        const rows = scalarNumber(
          await direct.query(`SELECT COUNT(*) AS n FROM ${qualified(source.name, name)}`),
        );
        const copied = scalarNumber(
          await direct.query(`SELECT COUNT(*) AS n FROM ${qualified(target.name, name)}`),
        );
        const held = scalarNumber(
          await direct.query(
            `SELECT COUNT(*) AS n FROM ${qualified(target.name, 'migration_quarantine')} WHERE table_name = ?`,
            [name],
          ),
        );
        expect(copied + held, name).toBe(rows);
        copiedRows += copied;
        heldRows += held;
      }
      const chunks = await direct.query(
        `SELECT DISTINCT status FROM ${qualified(target.name, 'migration_chunks')}`,
      );
      expect(chunks).toEqual([{ status: 'validated' }]);
    } finally {
      await direct.close();
    }
    expect(src.fake.tooLargeResponses, 'pages of long lessons were halved').toBeGreaterThan(0);
    expect(src.fake.tooLargeRows, 'rows over 64 KB were read in slices').toBeGreaterThan(0);
    // The largest lesson arrived byte for byte (checked here by the server's own SHA-2, not the product's).
    const check = mysqlClient('information_schema');
    try {
      const digest = async (database: string) =>
        check.query(
          `SELECT id, LENGTH(content) AS bytes, SHA2(content, 256) AS sha FROM ${qualified(database, 'shifu_outlines')} ORDER BY LENGTH(content) DESC LIMIT 3`,
        );
      const before = await digest(source.name);
      expect(Number(before[0]?.bytes)).toBeGreaterThan(400_000);
      expect(await digest(target.name)).toEqual(before);
    } finally {
      await check.close();
    }
    // What CloudWatch would chart: one Powertools EMF record per chunk, adding up to the rows copied and quarantined.
    const sum = (name: string) => emf.reduce((s, r) => s + Number(r[name] ?? 0), 0);
    expect(sum('RowsCopied')).toBe(copiedRows);
    expect(sum('RowsQuarantined')).toBe(heldRows);
    expect(sum('ChecksumMismatches')).toBe(0);
    expect(emf[0]).toMatchObject({
      Phase: 'data',
      service: SERVICE_NAME,
      _aws: {
        CloudWatchMetrics: [
          {
            Namespace: 'ShifuMigrate',
            Dimensions: [['service', 'Phase']],
            Metrics: expect.arrayContaining([{ Name: 'RowsCopied', Unit: 'Count' }]),
          },
        ],
      },
    });
  });
});
