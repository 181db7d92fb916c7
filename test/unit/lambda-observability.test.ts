import { Metrics } from '@aws-lambda-powertools/metrics';
import { RDSDataClient } from '@aws-sdk/client-rds-data';
import { GetObjectCommand, type GetObjectCommandOutput, S3Client } from '@aws-sdk/client-s3';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { METRICS_NAMESPACE, metricDimensions, SERVICE_NAME } from '../../lambdas/core/metrics.ts';
import { demoConfig } from '../../local/demo/config.ts';

const s3 = mockClient(S3Client);
const cluster = 'arn:aws:rds:eu-west-1:123456789012:cluster:saas';
const secret = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:saas-AbCdEf';
const VERSION = 'config/5555555555555555.json';
const saved = { ...process.env };

/** What a Lambda function prints on stdout during `work`: its JSON log lines and EMF records, parsed. */
async function printed(
  work: () => Promise<unknown>,
): Promise<{ lines: Record<string, unknown>[]; error?: unknown }> {
  const lines: Record<string, unknown>[] = [];
  const capture = (chunk: unknown) => {
    for (const line of String(chunk).split('\n')) if (line.startsWith('{')) lines.push(JSON.parse(line));
    return true;
  };
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(capture);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(capture);
  try {
    await work();
    return { lines };
  } catch (error) {
    return { lines, error };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

function context(requestId: string): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: 'shifu-migrate-rollback-in-flight',
    functionVersion: '3',
    invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:shifu-migrate-rollback-in-flight:3',
    memoryLimitInMB: '256',
    awsRequestId: requestId,
    logGroupName: '/aws/lambda/shifu-migrate-rollback-in-flight',
    logStreamName: 'stream',
    getRemainingTimeInMillis: () => 120_000,
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

beforeAll(() => {
  process.env.AWS_REGION = 'eu-west-1';
  // What Lambda sets for a container started on demand: Powertools counts its first invocation as a cold start.
  process.env.AWS_LAMBDA_INITIALIZATION_TYPE = 'on-demand';
  process.env.SHIFU_MIGRATE_ARCHIVE = 's3://shifu-archive/migration';
  process.env.SHIFU_MIGRATE_CONFIG_KEY = VERSION;
  process.env.SHIFU_MIGRATE_STATE_MACHINES = '{}';
  const { archive: _archive, ...rest } = demoConfig();
  const stored = {
    ...rest,
    source: { url: `rdsdata://${cluster}/shifu_legacy?secret=${secret}` },
    target: { url: `rdsdata://${cluster}/shifu_saas?secret=${secret}` },
  };
  s3.on(GetObjectCommand).resolves({
    Body: {
      transformToByteArray: async () => new Uint8Array(Buffer.from(JSON.stringify(stored))),
    } as unknown as NonNullable<GetObjectCommandOutput['Body']>,
  });
});
afterAll(() => {
  process.env = saved;
});
afterEach(() => vi.restoreAllMocks());

describe('a Lambda entry point, with Powertools', () => {
  it('logs JSON lines with the Lambda context and the event keys, and counts the cold start once', async () => {
    const { inFlight: handler } = await import('../../lambdas/control/handler.ts');
    const event = { step: 'in-flight', runs: [], config: VERSION };
    const first = await printed(() => handler(event, context('req-1')));
    expect(first.error).toBeUndefined();
    const logs = first.lines.filter((l) => 'message' in l);
    expect(logs.map((l) => l.message)).toEqual(['task started', 'task ended']);
    for (const line of logs) {
      expect(line).toMatchObject({
        level: 'INFO',
        service: SERVICE_NAME,
        task: 'rollback-in-flight',
        step: 'in-flight',
        function_name: 'shifu-migrate-rollback-in-flight',
        function_request_id: 'req-1',
        cold_start: true,
      });
    }
    expect(logs[1]?.durationMs).toEqual(expect.any(Number));
    const coldStart = first.lines.filter((l) => '_aws' in l);
    expect(coldStart).toEqual([
      expect.objectContaining({
        _aws: expect.objectContaining({
          CloudWatchMetrics: [
            {
              Namespace: METRICS_NAMESPACE,
              Dimensions: [['service', 'function_name']],
              Metrics: [{ Name: 'ColdStart', Unit: 'Count' }],
            },
          ],
        }),
        service: SERVICE_NAME,
        function_name: 'shifu-migrate-rollback-in-flight',
        ColdStart: 1,
      }),
    ]);

    // A second invocation: a warm container, and keys of the first invocation gone. A step of another function
    // (the state machine names the wrong one) is refused.
    const bad = await printed(() =>
      handler({ step: 'lock', phase: 'data', runs: [], execution: 'x', config: VERSION }, context('req-2')),
    );
    expect((bad.error as Error).name).toBe('InvalidTaskInput');
    const failed = bad.lines.filter((l) => 'message' in l);
    expect(failed.map((l) => [l.level, l.message])).toEqual([
      ['INFO', 'task started'],
      ['ERROR', 'task failed'],
    ]);
    expect(failed[1]).toMatchObject({
      step: 'lock',
      execution: 'x',
      function_request_id: 'req-2',
      cold_start: false,
      error: expect.objectContaining({
        name: 'InvalidTaskInput',
        message: expect.stringContaining('rollback-in-flight runs in-flight, not step "lock"'),
      }),
    });
    expect(bad.lines.some((l) => '_aws' in l)).toBe(false);
  });

  it("writes a task's metrics as one EMF record per call, under the dimensions the alarms read", async () => {
    const { powertoolsMetrics } = await import('../../lambdas/core/observability.ts');
    const sink = powertoolsMetrics(new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE_NAME }));
    const { lines } = await printed(async () => {
      sink.put('data', { RowsCopied: 500, ChunkDuration: 42 });
      sink.put('data', {});
      sink.put('data', { ChecksumMismatches: 1 });
    });
    expect(lines).toHaveLength(2);
    const dimensions = Object.keys(metricDimensions('data'));
    expect(lines[0]).toEqual({
      _aws: {
        Timestamp: expect.any(Number),
        CloudWatchMetrics: [
          {
            Namespace: 'ShifuMigrate',
            Dimensions: [dimensions],
            Metrics: [
              { Name: 'RowsCopied', Unit: 'Count' },
              { Name: 'ChunkDuration', Unit: 'Milliseconds' },
            ],
          },
        ],
      },
      ...metricDimensions('data'),
      RowsCopied: 500,
      ChunkDuration: 42,
    });
    expect(lines[1]).toMatchObject({ ...metricDimensions('data'), ChecksumMismatches: 1 });
    expect(lines[1]).not.toHaveProperty('RowsCopied');
  });

  it('gives a tenant its own series: the Tenant dimension with the phase', async () => {
    const { powertoolsMetrics } = await import('../../lambdas/core/observability.ts');
    const sink = powertoolsMetrics(new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE_NAME }));
    const { lines } = await printed(async () => {
      sink.put('sync', { TenantConflicts: 3 }, 'acme');
      sink.put('sync', { TenantConflicts: 1 });
    });
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ ...metricDimensions('sync', 'acme'), TenantConflicts: 3 });
    expect(
      (lines[0] as { _aws: { CloudWatchMetrics: { Dimensions: string[][] }[] } })._aws.CloudWatchMetrics[0]
        ?.Dimensions,
    ).toEqual([Object.keys(metricDimensions('sync', 'acme'))]);
    // The next record, without a tenant, is the phase's again.
    expect(lines[1]).not.toHaveProperty('Tenant');
  });
});

describe('X-Ray on Lambda', () => {
  it('instruments the SDK clients the functions create', async () => {
    vi.resetModules();
    vi.stubEnv('AWS_EXECUTION_ENV', 'AWS_Lambda_nodejs24.x');
    vi.stubEnv('AWS_XRAY_CONTEXT_MISSING', 'IGNORE_ERROR');
    try {
      const { traced } = await import('../../lambdas/core/observability.ts');
      const { openSql } = await import('../../lambdas/core/sql/open.ts');
      const plain = new RDSDataClient({ region: 'eu-west-1' });
      expect(plain.middlewareStack.identify().join(' ')).not.toMatch(/XRay/i);
      expect(traced(plain).middlewareStack.identify().join(' ')).toMatch(/XRay/i);
      // openSql wraps the Data API client it creates with what it is given.
      const wrapped: object[] = [];
      openSql(
        {
          kind: 'rdsdata',
          region: 'ap-south-1',
          resourceArn: cluster,
          secretArn: secret,
          database: 'x',
          raw: '',
        },
        {
          awsClient: (c) => {
            wrapped.push(c);
            return traced(c);
          },
        },
      );
      expect(wrapped).toHaveLength(1);
      expect(wrapped[0]).toBeInstanceOf(RDSDataClient);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
