import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFolderArchive } from '../../lambdas/core/archive/folder.ts';
import { loadConfig } from '../../lambdas/core/config/load.ts';
import { InputError } from '../../lambdas/core/errors.ts';
import { ident } from '../../lambdas/core/identifiers.ts';
import { ensureLedger } from '../../lambdas/core/ledger/runs.ts';
import { TABLE_OPTIONS, TENANT_TABLES } from '../../lambdas/core/ledger/schema.ts';
import type { SqlClient, SqlParam } from '../../lambdas/core/sql/port.ts';
import { gatherFinalReport, ReportRunUnknown } from '../../lambdas/golive/report.ts';
import {
  chartSpecs,
  renderHtml,
  renderMarkdown,
  writeFinalReport,
} from '../../lambdas/golive/report-render.ts';
import { createOutput } from '../../local/cli/output.ts';
import { runReportCommand } from '../../local/cli/report.ts';
import { demoConfig } from '../../local/demo/config.ts';
import packageJson from '../../package.json' with { type: 'json' };
import { mysqlClient, scratchDatabase } from '../support/mariadb.ts';

const CHROMIUM = '/usr/bin/chromium';
let db: Awaited<ReturnType<typeof scratchDatabase>>;
let target: SqlClient;

async function insert(table: string, columns: string[], rows: SqlParam[][]): Promise<void> {
  await target.batch(
    `INSERT INTO ${ident(table, 'table')} (${columns.map((c) => ident(c)).join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
    rows,
  );
}

const at = (hhmmss: string) => `2025-03-01 ${hhmmss}.000`;
const sha = (n: number) => n.toString(16).padStart(64, 'a');

/** A migration as the phases leave it in the ledger: two data runs (one rolled back), sync, three tenants' waves, go-live twice. */
async function seedLedger(client: SqlClient): Promise<void> {
  await ensureLedger(client);
  for (const table of TENANT_TABLES)
    await client.execute(
      `CREATE TABLE IF NOT EXISTS ${ident(table.name, 'table')} (\n${table.body}\n) ${TABLE_OPTIONS}`,
    );
  const run = (
    id: string,
    phase: string,
    status: string,
    from: string,
    to: string | null,
    error?: [string, string],
    parent?: string,
  ) => [
    id,
    phase,
    status,
    at(from),
    to === null ? null : at(to),
    error?.[0] ?? null,
    error?.[1] ?? null,
    parent ?? null,
  ];
  await insert(
    'migration_runs',
    [
      'run_id',
      'phase',
      'status',
      'started_at',
      'finished_at',
      'error_name',
      'error_message',
      'parent_run_id',
    ],
    [
      run('foundation-1', 'foundation', 'succeeded', '08:00:00', '08:00:05'),
      run('data-1', 'data', 'rolled_back', '08:01:00', '08:02:00', [
        'ChunkChecksumMismatch',
        'order_orders chunk 3 differs',
      ]),
      run('data-2', 'data', 'succeeded', '08:05:00', '08:09:30'),
      run('sync-1', 'sync', 'succeeded', '08:10:00', '08:10:20'),
      run('sync-2', 'sync', 'succeeded', '08:15:00', '08:15:20'),
      run('sync-3', 'sync', 'succeeded', '08:20:00', '08:20:20'),
      run('sync-4', 'sync', 'failed', '08:25:00', '08:25:10', [
        'DatabaseUnreachable',
        'connect ECONNREFUSED',
      ]),
      run('application-1', 'application', 'succeeded', '08:30:00', '08:50:00'),
      run('sync-drain', 'sync', 'succeeded', '08:31:00', '08:31:30', undefined, 'application-1'),
      run('integration-1', 'integration', 'succeeded', '08:55:00', '08:56:00'),
      run('golive-0', 'golive', 'failed', '08:57:00', '08:58:00', ['GoLiveRefused', 'a tenant not switched']),
      run('golive-1', 'golive', 'succeeded', '09:00:00', '09:20:00'),
      run('rollback-1', 'rollback', 'succeeded', '09:30:00', '09:31:00'),
    ],
  );
  await insert(
    'migration_progress',
    [
      'run_id',
      'phase',
      'table_name',
      'status',
      'started_at',
      'completed_at',
      'records_total',
      'records_migrated',
    ],
    [
      ['data-2', 'data', 'user_users', 'completed', at('08:05:00'), at('08:07:00'), 1000, 1000],
      ['data-2', 'data', 'order_orders', 'completed', at('08:06:00'), at('08:09:30'), 2400, 2400],
    ],
  );
  const chunk = (
    runId: string,
    table: string,
    no: number,
    rows: number,
    status: string,
    sums: [string | null, string | null],
    when: string,
    isolated: boolean,
  ) => [runId, table, no, rows, sums[0], sums[1], status, isolated ? at('09:10:00') : null, at(when)];
  await insert(
    'migration_chunks',
    [
      'run_id',
      'table_name',
      'chunk_no',
      'rows_copied',
      'source_checksum',
      'target_checksum',
      'status',
      'isolated_at',
      'updated_at',
    ],
    [
      chunk('data-1', 'order_orders', 1, 400, 'rolled_back', ['a', 'a'], '08:01:30', false),
      chunk('data-1', 'order_orders', 2, 400, 'rolled_back', ['b', 'c'], '08:01:40', false),
      ...[1, 2, 3, 4].map((no) =>
        chunk(
          'data-2',
          'user_users',
          no,
          250,
          'validated',
          [`u${no}`, `u${no}`],
          `08:0${5 + Math.floor(no / 2)}:${no % 2 === 0 ? '00' : '30'}`,
          true,
        ),
      ),
      ...[1, 2, 3, 4].map((no) =>
        chunk(
          'data-2',
          'order_orders',
          no,
          400,
          'validated',
          [`o${no}`, `o${no}`],
          `08:0${6 + Math.floor(no / 2)}:${no % 2 === 0 ? '00' : '30'}`,
          true,
        ),
      ),
      chunk('data-2', 'order_orders', 5, 400, 'mismatch', ['o5', 'x5'], '08:08:30', false),
      chunk('data-2', 'order_orders', 6, 400, 'copied', [null, null], '08:09:00', false),
    ],
  );
  const pass = (
    runId: string,
    table: string,
    finished: string,
    lag: number,
    reverse: number | null,
    applied: number,
  ) => [runId, table, at(finished), lag, reverse, applied, reverse === null ? 0 : 3];
  await insert(
    'migration_sync_passes',
    [
      'run_id',
      'table_name',
      'finished_at',
      'lag_seconds',
      'reverse_lag_seconds',
      'rows_applied',
      'reverse_applied',
    ],
    [
      pass('sync-1', 'user_users', '08:10:20', 12.5, null, 40),
      pass('sync-1', 'order_orders', '08:10:19', 30, null, 120),
      pass('sync-2', 'user_users', '08:15:20', 5, null, 10),
      pass('sync-2', 'order_orders', '08:15:18', 8, null, 30),
      pass('sync-drain', 'user_users', '08:31:30', 2, 1.5, 4),
      pass('sync-drain', 'order_orders', '08:31:29', 3, 2.5, 6),
      pass('sync-3', 'user_users', '08:20:20', 4, null, 2),
      pass('sync-3', 'order_orders', '08:20:19', 6, null, 5),
    ],
  );
  const route = (runId: string, tenant: string, to: string, why: string, when: string) => [
    runId,
    'tenant',
    tenant,
    to,
    100,
    why,
    at(when),
  ];
  await insert(
    'traffic_routing_history',
    ['run_id', 'scope', 'tenant_bid', 'target', 'weight', 'reason', 'changed_at'],
    [
      route('application-1', 'acme', 'paused', 'wave 1: paused for the drain', '08:31:00'),
      route('application-1', 'acme', 'saas', 'wave 1: switched, drained by sync-drain', '08:32:00'),
      route('application-1', 'beta', 'paused', 'wave 2: paused for the drain', '08:40:00'),
      route('application-1', 'beta', 'saas', 'wave 2: switched', '08:41:00'),
      route('application-1', 'gamma', 'paused', 'wave 3: paused for the drain', '08:45:00'),
      route('application-1', 'gamma', 'legacy', 'wave 3 rolled back: alarm api-5xx', '08:46:00'),
      route('rollback-1', 'acme', 'legacy', 'after go-live, not in the report of golive-1', '09:30:30'),
    ],
  );
  await insert(
    'tenant_migration_status',
    ['tenant_bid', 'status', 'note', 'switched_at', 'run_id', 'baked'],
    [
      ['acme', 'switched', 'wave 1', '2025-03-01 08:32:00.000000', 'application-1', 1],
      ['beta', 'switched', 'wave 2', '2025-03-01 08:41:00.000000', 'application-1', 1],
      ['gamma', 'rolled_back', 'wave 3 rolled back', null, null, 0],
    ],
  );
  await insert(
    'traffic_routing',
    ['scope', 'tenant_bid', 'target', 'weight'],
    [
      ['tenant', 'acme', 'saas', 100],
      ['tenant', 'beta', 'saas', 100],
      ['tenant', 'gamma', 'legacy', 100],
    ],
  );
  await insert(
    'migration_quarantine',
    ['run_id', 'table_name', 'row_key', 'reason', 'row_data', 'created_at'],
    [['data-2', 'order_orders', '["o-77"]', 'no tenant: user_bid is empty', '{}', at('08:08:00')]],
  );
  await insert(
    'migration_sync_conflicts',
    [
      'table_name',
      'row_key',
      'target_tenant',
      'source_tenant',
      'run_id',
      'first_seen_at',
      'last_seen_at',
      'resolved_at',
    ],
    [
      ['order_orders', '["o-12"]', 'acme', 'beta', 'sync-2', at('08:15:10'), at('08:20:10'), null],
      ['user_users', '["u-5"]', 'acme', 'gamma', 'sync-1', at('08:10:10'), at('08:15:10'), at('08:15:10')],
    ],
  );
  const check = (
    runId: string,
    name: string,
    kind: string,
    tenant: string | null,
    passed: boolean,
    detail: string,
    ms: number,
    when: string,
  ) => [runId, name, kind, tenant, passed, detail, ms, at(when)];
  await insert(
    'migration_health_checks',
    ['run_id', 'name', 'kind', 'tenant_bid', 'passed', 'detail', 'duration_ms', 'checked_at'],
    [
      check('golive-0', 'tenants switched', 'gate', null, false, 'gamma is not switched', 3, '08:57:30'),
      check('golive-1', 'orders count', 'query', null, true, '2400 rows', 120, '09:05:00'),
      check(
        'golive-1',
        'legacy api',
        'http',
        'acme',
        false,
        'HTTP 503 </script><script>alert(1)</script>',
        340,
        '09:05:01',
      ),
      check('golive-1', 'alarms quiet', 'alarm', null, true, 'no alarm in 15 min', 45, '09:05:02'),
    ],
  );
  const part = (table: string, no: number, rows: number, size: number, seconds: number) => [
    'golive-1',
    table,
    no,
    'archived',
    `legacy-archive/golive-1/${table}/part-${no}.jsonl.gz`,
    rows,
    size,
    sha(no * 1000 + size),
    `c-${table}-${no}`,
    seconds,
  ];
  await insert(
    'migration_archive_chunks',
    [
      'run_id',
      'table_name',
      'chunk_no',
      'status',
      'object_key',
      'rows_archived',
      'bytes',
      'sha256',
      'checksum',
      'seconds',
    ],
    [
      part('user_users', 1, 600, 12_345, 1.5),
      part('user_users', 2, 400, 8_000, 1.1),
      part('order_orders', 1, 1000, 30_000, 2.5),
      part('order_orders', 2, 1000, 31_000, 2.4),
      part('order_orders', 3, 400, 2_500_000, 0.9),
    ],
  );
  await insert(
    'migration_archives',
    ['run_id', 'table_name', 'manifest_key', 'rows_archived', 'objects', 'bytes', 'checksum', 'archived_at'],
    [
      [
        'golive-1',
        'order_orders',
        'legacy-archive/golive-1/order_orders/manifest.json',
        2400,
        3,
        2_561_000,
        'c-order_orders',
        at('09:12:00'),
      ],
      [
        'golive-1',
        'user_users',
        'legacy-archive/golive-1/user_users/manifest.json',
        1000,
        2,
        20_345,
        'c-user_users',
        at('09:11:00'),
      ],
    ],
  );
  await insert(
    'migration_archive_restores',
    ['archive_run_id', 'table_name', 'restored_into', 'verified', 'detail', 'checked_at'],
    [['golive-1', 'user_users', 'smt_restore.user_users', true, 'checksum equal, 1000 rows', at('09:15:00')]],
  );
}

/**
 * Renders a page in headless Chromium with the network blocked and returns the DOM after its scripts ran, and
 * Chromium's log (console messages and uncaught errors).
 */
async function renderInChromium(html: string): Promise<{ dom: string; log: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'smt-report-'));
  const page = join(dir, 'report.html');
  writeFileSync(page, html);
  const { stdout, stderr } = await promisify(execFile)(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${join(dir, 'profile')}`,
      '--host-resolver-rules=MAP * ~NOTFOUND',
      '--enable-logging=stderr',
      '--v=0',
      '--window-size=1280,2000',
      '--virtual-time-budget=10000',
      '--dump-dom',
      `file://${page}`,
    ],
    { timeout: 90_000, maxBuffer: 64 * 1024 * 1024 },
  );
  return { dom: stdout, log: stderr };
}

/** Each chart figure of the DOM: its id, the pixels the page counted, and the canvas's drawn size. */
function figures(dom: string) {
  return [...dom.matchAll(/<figure data-chart="([^"]+)"([^>]*)>([\s\S]*?)<\/figure>/g)].map((m) => {
    const canvas = /<canvas\b[^>]*>/.exec(m[3] ?? '')?.[0] ?? '';
    return {
      id: m[1],
      drawn: Number(/data-drawn="(\d+)"/.exec(m[2] ?? '')?.[1] ?? 0),
      width: Number(/\swidth="(\d+)"/.exec(canvas)?.[1] ?? 0),
      height: Number(/\sheight="(\d+)"/.exec(canvas)?.[1] ?? 0),
    };
  });
}

beforeAll(async () => {
  db = await scratchDatabase('rep');
  target = mysqlClient(db.name);
  await seedLedger(target);
});

afterAll(async () => {
  await target?.close();
  await db?.drop();
});

describe('the final report', () => {
  it('gathers the latest golive run and everything the ledger holds up to its end', async () => {
    const report = await gatherFinalReport(target, { now: new Date('2025-03-02T00:00:00Z') });
    expect(report.version).toBe(packageJson.version);
    expect(report.generatedAt).toBe('2025-03-02T00:00:00.000Z');
    expect(report.runId).toBe('golive-1');
    expect(report.golive).toMatchObject({
      status: 'succeeded',
      startedAt: '2025-03-01T09:00:00.000Z',
      seconds: 1200,
    });
    expect(report.until).toBe('2025-03-01T09:20:00.000Z');
    // Sync passes that succeeded are counted, not listed; a run after the golive run's end is not in it.
    expect(report.runs.map((r) => r.runId)).toEqual([
      'foundation-1',
      'data-1',
      'data-2',
      'sync-4',
      'application-1',
      'integration-1',
      'golive-0',
      'golive-1',
    ]);
    expect(report.runs[1]).toMatchObject({
      status: 'rolled_back',
      error: { name: 'ChunkChecksumMismatch', message: 'order_orders chunk 3 differs' },
      finishedAt: '2025-03-01T08:02:00.000Z',
    });
    expect(report.syncPasses).toEqual({
      count: 5,
      failed: 1,
      firstStartedAt: '2025-03-01T08:10:00.000Z',
      lastFinishedAt: '2025-03-01T08:31:30.000Z',
    });
    expect(report.tables.find((t) => t.table === 'user_users')).toMatchObject({
      phase: 'data',
      recordsMigrated: 1000,
      seconds: 120,
      rowsPerSecond: 8,
    });

    // Chunks of the copy that stands (data-2), not of the rolled-back run.
    const orders = report.chunks.find((c) => c.table === 'order_orders');
    expect(orders).toEqual({
      table: 'order_orders',
      runId: 'data-2',
      chunks: 6,
      rows: 2400,
      byStatus: { copied: 1, mismatch: 1, validated: 4 },
      checksum: { equal: 4, differs: 1, notCompared: 1 },
      isolated: 4,
    });
    expect(report.chunks.find((c) => c.table === 'user_users')?.checksum).toEqual({
      equal: 4,
      differs: 0,
      notCompared: 0,
    });
    const rowsOver = (table: string) =>
      report.throughput.series.find((s) => s.table === table)?.points.reduce((n, p) => n + p.rows, 0);
    expect(rowsOver('order_orders')).toBe(2400);
    expect(rowsOver('user_users')).toBe(1000);
    // Chunks from 08:05:30 to 08:09:00: 5 s buckets (under 120 of them), every bucket of the span, empty ones as 0.
    expect(report.throughput.bucketSeconds).toBe(5);
    const points = report.throughput.series[0]?.points ?? [];
    expect(points[0]?.at).toBe('2025-03-01T08:05:30.000Z');
    expect(points).toHaveLength(43);
    expect(points.find((p) => p.at === '2025-03-01T08:08:30.000Z' && p.rows > 0)?.rowsPerSecond).toBe(80);

    expect(
      report.sync.passes.map((p) => [p.runId, p.lagSeconds, p.reverseLagSeconds, p.rowsApplied]),
    ).toEqual([
      ['sync-1', 30, null, 160],
      ['sync-2', 8, null, 40],
      ['sync-3', 6, null, 7],
      ['sync-drain', 3, 2.5, 10],
    ]);
    expect(report.sync.tables).toEqual([
      {
        table: 'order_orders',
        runId: 'sync-drain',
        finishedAt: '2025-03-01T08:31:29.000Z',
        lagSeconds: 3,
        reverseLagSeconds: 2.5,
      },
      {
        table: 'user_users',
        runId: 'sync-drain',
        finishedAt: '2025-03-01T08:31:30.000Z',
        lagSeconds: 2,
        reverseLagSeconds: 1.5,
      },
    ]);

    expect(report.switches.changes.map((c) => `${c.tenant}→${c.route}`)).toEqual([
      'acme→paused',
      'acme→saas',
      'beta→paused',
      'beta→saas',
      'gamma→paused',
      'gamma→legacy',
    ]);
    expect(report.switches.changes[1]).toMatchObject({
      at: '2025-03-01T08:32:00.000Z',
      runId: 'application-1',
      reason: 'wave 1: switched, drained by sync-drain',
    });
    expect(report.switches.tenants).toEqual([
      expect.objectContaining({
        tenant: 'acme',
        status: 'switched',
        route: 'saas',
        baked: true,
        switchedAt: '2025-03-01T08:32:00.000Z',
      }),
      expect.objectContaining({ tenant: 'beta', status: 'switched', route: 'saas' }),
      expect.objectContaining({ tenant: 'gamma', status: 'rolled_back', route: 'legacy', switchedAt: null }),
    ]);

    expect(report.quarantine).toEqual({
      total: 1,
      byReason: [{ table: 'order_orders', reason: 'no tenant: user_bid is empty', rows: 1 }],
      rows: [
        {
          table: 'order_orders',
          rowKey: '["o-77"]',
          reason: 'no tenant: user_bid is empty',
          runId: 'data-2',
          at: '2025-03-01T08:08:00.000Z',
        },
      ],
    });
    expect(report.conflicts).toMatchObject({
      open: 1,
      resolved: 1,
      byTable: [{ table: 'order_orders', open: 1 }],
      rows: [{ rowKey: '["o-12"]', targetTenant: 'acme', sourceTenant: 'beta' }],
    });

    expect(report.health?.map((h) => [h.name, h.passed, h.durationMs])).toEqual([
      ['orders count', true, 120],
      ['legacy api', false, 340],
      ['alarms quiet', true, 45],
    ]);
    expect(report.archive?.tables.map((t) => [t.table, t.rows, t.objects, t.bytes])).toEqual([
      ['order_orders', 2400, 3, 2_561_000],
      ['user_users', 1000, 2, 20_345],
    ]);
    expect(report.archive?.objects).toHaveLength(5);
    expect(report.archive?.objects[0]).toEqual({
      table: 'order_orders',
      chunkNo: 1,
      status: 'archived',
      objectKey: 'legacy-archive/golive-1/order_orders/part-1.jsonl.gz',
      rows: 1000,
      bytes: 30_000,
      sha256: sha(31_000),
      checksum: 'c-order_orders-1',
      seconds: 2.5,
    });
    expect(report.archive?.restores).toEqual([
      {
        table: 'user_users',
        restoredInto: 'smt_restore.user_users',
        verified: true,
        detail: 'checksum equal, 1000 rows',
        checkedAt: '2025-03-01T09:15:00.000Z',
      },
    ]);
  });

  it('reports on the golive run named, up to its end, with its own checks only', async () => {
    const report = await gatherFinalReport(target, { runId: 'golive-0' });
    expect(report.golive?.status).toBe('failed');
    expect(report.runs.at(-1)?.runId).toBe('golive-0');
    expect(report.health?.map((h) => h.name)).toEqual(['tenants switched']);
    expect(report.archive?.tables).toEqual([]);
  });

  it('refuses a run id the ledger does not have, as bad input; reports any other run as of its end', async () => {
    await expect(gatherFinalReport(target, { runId: 'golive-9' })).rejects.toThrow(
      /no run "golive-9" in smt_rep_\w+: name one of its runs \(latest: /,
    );
    const refused = await gatherFinalReport(target, { runId: 'golive-9' }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ReportRunUnknown);
    expect(refused).toBeInstanceOf(InputError);
    // A data run: the report of that run, the migration as it stood at its end (go-live not yet).
    const data = await gatherFinalReport(target, { runId: 'data-2' });
    expect(data.subject).toMatchObject({ runId: 'data-2', phase: 'data' });
    expect(data.golive).toBeNull();
    expect(data.until).toBe(data.subject?.finishedAt);
    expect(data.runs.every((r) => r.startedAt <= data.until)).toBe(true);
    expect(data.runs.some((r) => r.phase === 'golive')).toBe(false);
    const html = renderHtml(data);
    expect(html).toContain('Migration report: ');
    expect(html).toContain('(data run data-2)');
  });

  it('reports the migration so far when no golive run exists, golive sections not yet', async () => {
    const early = await scratchDatabase('rep');
    const client = mysqlClient(early.name);
    try {
      // No ledger at all: nothing, and no failure.
      const nothing = await gatherFinalReport(client);
      expect(nothing).toMatchObject({
        runId: null,
        golive: null,
        runs: [],
        tables: [],
        archive: null,
        health: null,
      });
      await ensureLedger(client);
      await client.execute(
        "INSERT INTO migration_runs (run_id, phase, status, started_at, finished_at) VALUES ('foundation-7', 'foundation', 'succeeded', ?, ?)",
        [at('07:00:00'), at('07:00:02')],
      );
      const report = await gatherFinalReport(client, { now: new Date('2025-03-01T07:30:00Z') });
      expect(report).toMatchObject({
        runId: null,
        golive: null,
        archive: null,
        health: null,
        until: '2025-03-01T07:30:00.000Z',
      });
      expect(report.runs.map((r) => r.runId)).toEqual(['foundation-7']);
      const markdown = renderMarkdown(report);
      expect(markdown).toContain('# Migration report: smt_rep_');
      expect(markdown).toContain('(so far)');
      expect(markdown).toMatch(/## Archive of the legacy tables\n\nNot yet/);
      expect(markdown).toMatch(/## Health checks\n\nNot yet/);
      const archive = createFolderArchive(mkdtempSync(join(tmpdir(), 'smt-report-')));
      const { keys } = await writeFinalReport(archive, report);
      expect(keys.html).toBe('reports/final/so-far/report.html');
    } finally {
      await client.close();
      await early.drop();
    }
  });

  it('writes JSON, Markdown and HTML for the run and as the latest', async () => {
    const report = await gatherFinalReport(target);
    const folder = mkdtempSync(join(tmpdir(), 'smt-report-'));
    const archive = createFolderArchive(folder);
    const written = await writeFinalReport(archive, report);
    expect(written).toEqual({
      keys: {
        json: 'reports/final/golive-1/report.json',
        md: 'reports/final/golive-1/report.md',
        html: 'reports/final/golive-1/report.html',
      },
      latest: {
        json: 'reports/final/latest/report.json',
        md: 'reports/final/latest/report.md',
        html: 'reports/final/latest/report.html',
      },
    });
    const json: unknown = JSON.parse(readFileSync(join(folder, 'reports/final/latest/report.json'), 'utf8'));
    expect(json).toEqual(JSON.parse(JSON.stringify(report)));
    const markdown = readFileSync(join(folder, 'reports/final/golive-1/report.md'), 'utf8');
    expect(markdown).toBe(renderMarkdown(report));
    expect(markdown).toContain('| legacy api | http | acme | NO | 340 ms |');
    expect(markdown).toContain('| order_orders | data-2 | 6 | 2,400 | 4 | 1 | 1 | 4 |');
    expect(markdown).toContain(
      '| 2025-03-01 08:46:00 | gamma | legacy | application-1 | wave 3 rolled back: alarm api-5xx |',
    );
    expect(readFileSync(join(folder, 'reports/final/latest/report.html'), 'utf8')).toBe(renderHtml(report));
  });

  it('renders one offline HTML file whose charts all draw in headless Chromium, without errors', async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`).toBe(true);
    const report = await gatherFinalReport(target);
    const html = renderHtml(report);
    expect(html).not.toMatch(/\s(?:src|href)\s*=\s*["']?(?:https?:)?\/\//i);
    expect(html).not.toMatch(/<link\b/i);
    // Every chart of the report: timeline, rows, throughput, chunks, lag, switches, set-aside, archive, health.
    const expected = chartSpecs(report).map((c) => c.id);
    expect(expected).toEqual([
      'timeline',
      'rows',
      'throughput',
      'chunks',
      'lag',
      'switches',
      'set-aside',
      'archive',
      'health',
    ]);

    const { dom, log } = await renderInChromium(html);
    expect(log).not.toMatch(/Uncaught|CONSOLE\(\d+\)\].*error/i);
    expect(dom).not.toContain('data-errors=');
    expect(dom).toContain(`data-charts-drawn="${expected.length}"`);
    const drawn = figures(dom);
    expect(drawn.map((f) => f.id)).toEqual(expected);
    for (const figure of drawn) {
      expect(figure.width, figure.id ?? '').toBeGreaterThan(100);
      expect(figure.height, figure.id ?? '').toBeGreaterThan(100);
      expect(figure.drawn, figure.id ?? '').toBeGreaterThan(500);
    }
    // The health check's detail is text on the page, not markup.
    expect(dom).toContain('HTTP 503 &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;');
  });

  it('shows when the charts cannot draw: the same check fails on a page without its chart library', async () => {
    const report = await gatherFinalReport(target);
    const broken = renderHtml(report).replace(
      /<script>\/\*!\n \* Chart\.js[\s\S]*?<\/script>/,
      '<script></script>',
    );
    expect(broken.length).toBeLessThan(renderHtml(report).length - 100_000);
    const { dom } = await renderInChromium(broken);
    expect(dom).toMatch(/data-errors="[^"]*Chart is not defined/);
    expect(dom).not.toContain('data-charts-drawn=');
    expect(figures(dom).every((f) => f.drawn === 0 && f.width === 0)).toBe(true);
  });

  it('report writes the files into the archive and says where; --open without a display says it cannot', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'smt-report-'));
    const loaded = loadConfig({
      defaults: demoConfig,
      cwd,
      env: { TARGET_DATABASE_URL: db.url.raw, ARCHIVE_URL: join(cwd, 'archive') },
    });
    const stderr = new PassThrough();
    let log = '';
    stderr.on('data', (d: Buffer) => {
      log += d.toString();
    });
    const out = createOutput({ json: true, stdout: new PassThrough(), stderr });
    const opened: string[] = [];
    const outcome = await runReportCommand(
      loaded,
      { open: true, env: {}, opener: async (path) => void opened.push(path) },
      out,
      cwd,
    );
    const html = join(cwd, 'archive', 'reports', 'final', 'golive-1', 'report.html');
    expect(outcome).toMatchObject({
      code: 0,
      json: { status: 'WRITTEN', runId: 'golive-1', golive: 'succeeded', files: { html }, opened: false },
    });
    expect(outcome.html).toBe(html);
    expect(existsSync(html)).toBe(true);
    expect(existsSync(join(cwd, 'archive', 'reports', 'final', 'latest', 'report.md'))).toBe(true);
    expect(log).toContain(`HTML:     ${html}`);
    expect(log).toContain(`no display here (DISPLAY is not set). Open ${html} in a browser.`);
    expect(opened).toEqual([]);

    const shown = await runReportCommand(
      loaded,
      {
        runId: 'golive-0',
        open: true,
        env: { DISPLAY: ':0' },
        opener: async (path) => void opened.push(path),
      },
      out,
      cwd,
    );
    expect(shown.json).toMatchObject({ runId: 'golive-0', opened: true });
    expect(opened).toEqual([join(cwd, 'archive', 'reports', 'final', 'golive-0', 'report.html')]);

    await expect(runReportCommand(loaded, { runId: 'nope', open: false }, out, cwd)).rejects.toBeInstanceOf(
      InputError,
    );

    const empty = await scratchDatabase('rep');
    try {
      const nothing = await runReportCommand(
        loadConfig({
          defaults: demoConfig,
          cwd,
          env: { TARGET_DATABASE_URL: empty.url.raw, ARCHIVE_URL: join(cwd, 'none') },
        }),
        { open: false },
        out,
        cwd,
      );
      expect(nothing).toEqual({ code: 1, json: { status: 'NO_DATA', runId: null }, html: null });
      expect(log).toContain(`Nothing to report: no run in ${empty.name} yet`);
      expect(existsSync(join(cwd, 'none'))).toBe(false);
    } finally {
      await empty.drop();
    }
  });
});
