import packageJson from '../../package.json' with { type: 'json' };
import { InputError } from '../core/errors.ts';
import type { Row, SqlClient, SqlParam } from '../core/sql/port.ts';
import { num, numOrNull, str, strOrNull } from '../core/sql/rows.ts';

/**
 * The migration's final report, read from the ledger in the target database: what ran when, what was copied and
 * how fast, what was compared, how far sync lagged, when each tenant was switched, what was set aside, what the
 * go-live archived and checked. Times are ISO-8601 UTC. `report-render.ts` turns it into Markdown and HTML.
 */
export interface FinalReport {
  /** The shifu-migrate version that wrote the report. */
  readonly version: string;
  readonly generatedAt: string;
  /** The target database the ledger is in. */
  readonly database: string;
  /** The golive run reported on; null before the first one: the migration so far. */
  readonly runId: string | null;
  /** That golive run; null: not yet. */
  readonly golive: ReportRun | null;
  /** A run of another phase the report was asked for: the migration as of that run's end. */
  readonly subject: ReportRun | null;
  /** Runs, sync passes and route changes count up to here: the golive run's end, else the report's time. */
  readonly until: string;
  /** Every run by its start, but sync passes that succeeded (counted in `syncPasses`, drawn in `sync`). */
  readonly runs: readonly ReportRun[];
  readonly syncPasses: {
    readonly count: number;
    readonly failed: number;
    readonly firstStartedAt: string | null;
    readonly lastFinishedAt: string | null;
  };
  /** Per phase and table, as `migration_progress` has it. */
  readonly tables: readonly ReportTable[];
  readonly throughput: Throughput;
  /** The chunks of the copy that stands (each table's data run): compared, isolation-checked. */
  readonly chunks: readonly ChunkStatus[];
  readonly sync: SyncSection;
  readonly switches: SwitchSection;
  readonly quarantine: QuarantineSection;
  readonly conflicts: ConflictSection;
  /** The golive run's archive of the legacy tables; null: not yet. */
  readonly archive: ArchiveSection | null;
  /** The golive run's health checks; null: not yet. */
  readonly health: readonly HealthCheck[] | null;
}

/** A run of the ledger, with how long it took (null while it runs). */
export interface ReportRun {
  readonly runId: string;
  readonly phase: string;
  readonly status: string;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly seconds: number | null;
  readonly error: { readonly name: string; readonly message: string } | null;
  /** The run that started this one (a drain's application run). */
  readonly parentRunId: string | null;
}

/** A table in a phase, as `migration_progress` has it; rows/s over its start to completion. */
export interface ReportTable {
  readonly phase: string;
  readonly table: string;
  readonly status: string;
  readonly recordsTotal: number;
  readonly recordsMigrated: number;
  readonly startedAt: string | null;
  readonly completedAt: string | null;
  readonly seconds: number | null;
  readonly rowsPerSecond: number | null;
}

/** Rows copied per time bucket, per table, by the time the ledger last changed each chunk (copied, compared). */
export interface Throughput {
  /** 0 when no chunk was copied. */
  readonly bucketSeconds: number;
  readonly series: readonly {
    readonly table: string;
    readonly points: readonly {
      readonly at: string;
      readonly rows: number;
      readonly rowsPerSecond: number;
    }[];
  }[];
}

/** One table's chunks: compared by checksum (source against target), checked for tenant isolation. */
export interface ChunkStatus {
  readonly table: string;
  readonly runId: string;
  readonly chunks: number;
  readonly rows: number;
  /** Chunks per ledger status: `validated`, `changing`, `mismatch`, … */
  readonly byStatus: Readonly<Record<string, number>>;
  readonly checksum: { readonly equal: number; readonly differs: number; readonly notCompared: number };
  /** Chunks whose key range passed the tenant isolation check. */
  readonly isolated: number;
}

/** Sync's lag over time, pass by pass, and each table's last pass. */
export interface SyncSection {
  /** Sync passes that finished, oldest first: the largest lag over their tables. At most the last 2,000. */
  readonly passes: readonly {
    readonly runId: string;
    readonly finishedAt: string;
    readonly lagSeconds: number | null;
    readonly reverseLagSeconds: number | null;
    readonly rowsApplied: number;
    readonly reverseApplied: number;
    readonly conflicts: number;
  }[];
  /** Each table's last finished pass. */
  readonly tables: readonly {
    readonly table: string;
    readonly runId: string;
    readonly finishedAt: string;
    readonly lagSeconds: number | null;
    readonly reverseLagSeconds: number | null;
  }[];
}

/** The switch waves: every route change, and each tenant's state now. */
export interface SwitchSection {
  /** Every route change, oldest first: which tenant went where, by which run, why. */
  readonly changes: readonly {
    readonly at: string;
    readonly runId: string;
    readonly scope: string;
    readonly tenant: string;
    readonly route: string;
    readonly weight: number;
    readonly reason: string;
  }[];
  readonly tenants: readonly {
    readonly tenant: string;
    readonly status: string;
    readonly route: string | null;
    readonly switchedAt: string | null;
    readonly runId: string | null;
    readonly baked: boolean;
    readonly note: string;
  }[];
}

/** Rows no rule gives a tenant, set aside by the copy and sync. */
export interface QuarantineSection {
  readonly total: number;
  readonly byReason: readonly { readonly table: string; readonly reason: string; readonly rows: number }[];
  /** The first {@link LISTED} rows. */
  readonly rows: readonly {
    readonly table: string;
    readonly rowKey: string;
    readonly reason: string;
    readonly runId: string;
    readonly at: string;
  }[];
}

/** Rows whose tenant the rules now say is another: recorded, left as the target has them. */
export interface ConflictSection {
  readonly open: number;
  readonly resolved: number;
  readonly byTable: readonly { readonly table: string; readonly open: number }[];
  /** The first {@link LISTED} open conflicts. */
  readonly rows: readonly {
    readonly table: string;
    readonly rowKey: string;
    readonly targetTenant: string;
    readonly sourceTenant: string | null;
    readonly firstSeenAt: string;
    readonly lastSeenAt: string;
  }[];
}

/** The golive run's archive of the legacy tables: per table, per object, and the restores checked. */
export interface ArchiveSection {
  readonly tables: readonly {
    readonly table: string;
    readonly manifestKey: string;
    readonly rows: number;
    readonly objects: number;
    readonly bytes: number;
    readonly checksum: string;
    readonly archivedAt: string;
  }[];
  readonly objects: readonly {
    readonly table: string;
    readonly chunkNo: number;
    readonly status: string;
    readonly objectKey: string | null;
    readonly rows: number;
    readonly bytes: number;
    readonly sha256: string | null;
    readonly checksum: string | null;
    readonly seconds: number | null;
  }[];
  readonly restores: readonly {
    readonly table: string;
    readonly restoredInto: string;
    readonly verified: boolean;
    readonly detail: string;
    readonly checkedAt: string;
  }[];
}

/** One of the golive run's health checks. */
export interface HealthCheck {
  readonly name: string;
  readonly kind: string;
  readonly tenant: string | null;
  readonly passed: boolean;
  readonly detail: string;
  readonly durationMs: number;
  readonly checkedAt: string;
}

/** A run id the report was asked for that is not a golive run of this ledger. */
export class ReportRunUnknown extends InputError {
  override name = 'ReportRunUnknown';
}

/** Quarantined rows and open conflicts listed by name; the rest are counted. */
export const LISTED = 100;
const SYNC_PASSES = 2_000;
/** Rows per read of the archive's objects: well under the Data API's 1 MiB per response. */
const PAGE_ROWS = 1_000;
/** Throughput buckets: the smallest of these giving at most {@link BUCKETS} buckets. */
const BUCKET_SECONDS = [
  1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 21_600, 43_200, 86_400,
];
const BUCKETS = 120;

/** A ledger DATETIME (UTC, `YYYY-MM-DD HH:MM:SS[.fff]`) as ISO-8601 UTC; other text as it is. */
export function isoUtc(text: string): string {
  const date = new Date(`${text.trim().replace(' ', 'T')}Z`);
  return Number.isNaN(date.getTime()) ? text : date.toISOString();
}

const iso = (row: Row, name: string) => isoUtc(str(row, name));
const isoOrNull = (row: Row, name: string) => {
  const text = strOrNull(row, name);
  return text === null ? null : isoUtc(text);
};
const seconds = (from: string | null, to: string | null) =>
  from === null || to === null ? null : (Date.parse(to) - Date.parse(from)) / 1000;
/** An ISO time as a DATETIME(3) parameter. */
const param = (isoTime: string) => isoTime.replace('T', ' ').replace('Z', '');

/**
 * Gathers the final report from the ledger. `runId` names a golive run; without it, the latest golive run, or the
 * migration so far when there is none. Ledger tables an older version did not make read as empty.
 */
export async function gatherFinalReport(
  target: SqlClient,
  options: { runId?: string; now?: Date } = {},
): Promise<FinalReport> {
  const now = (options.now ?? new Date()).toISOString();
  const present = new Set(
    (
      await target.query(
        'SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()',
      )
    ).map((r) => str(r, 't')),
  );
  const read = async (table: string, sql: string, params: readonly SqlParam[] = []) =>
    present.has(table) ? target.query(sql, params) : [];

  const asked = await reportRun(target, present, options.runId);
  const golive = asked?.phase === 'golive' || options.runId === undefined ? asked : null;
  const subject = golive === null ? asked : null;
  const until = asked?.finishedAt ?? now;
  const runRows = await read(
    'migration_runs',
    `SELECT run_id, phase, status, started_at, finished_at, error_name, error_message, parent_run_id
       FROM migration_runs WHERE started_at <= ? AND (phase <> 'sync' OR status <> 'succeeded')
      ORDER BY started_at, run_id`,
    [param(until)],
  );
  const [passes] = await read(
    'migration_runs',
    `SELECT COUNT(*) AS n, COALESCE(SUM(status NOT IN ('succeeded', 'running')), 0) AS failed,
            MIN(started_at) AS first_started, MAX(finished_at) AS last_finished
       FROM migration_runs WHERE phase = 'sync' AND started_at <= ?`,
    [param(until)],
  );
  const goliveId = golive?.runId ?? null;
  return {
    version: packageJson.version,
    generatedAt: now,
    database: target.database,
    runId: goliveId,
    golive,
    subject,
    until,
    runs: runRows.map(runOf),
    syncPasses: {
      count: passes === undefined ? 0 : num(passes, 'n'),
      failed: passes === undefined ? 0 : num(passes, 'failed'),
      firstStartedAt: passes === undefined ? null : isoOrNull(passes, 'first_started'),
      lastFinishedAt: passes === undefined ? null : isoOrNull(passes, 'last_finished'),
    },
    tables: (
      await read(
        'migration_progress',
        `SELECT phase, table_name, status, records_total, records_migrated, started_at, completed_at
           FROM migration_progress ORDER BY phase, table_name`,
      )
    ).map((r) => {
      const startedAt = isoOrNull(r, 'started_at');
      const completedAt = isoOrNull(r, 'completed_at');
      const took = seconds(startedAt, completedAt);
      const migrated = num(r, 'records_migrated');
      return {
        phase: str(r, 'phase'),
        table: str(r, 'table_name'),
        status: str(r, 'status'),
        recordsTotal: num(r, 'records_total'),
        recordsMigrated: migrated,
        startedAt,
        completedAt,
        seconds: took,
        rowsPerSecond: took === null || took <= 0 ? null : Math.round(migrated / took),
      };
    }),
    throughput: present.has('migration_progress') ? await throughput(target, present) : empty.throughput,
    chunks: present.has('migration_progress') ? await chunkStatus(target, present) : [],
    sync: await sync(read, until),
    switches: await switches(read, until),
    quarantine: await quarantine(read),
    conflicts: await conflicts(read),
    archive: goliveId === null ? null : await archive(read, goliveId),
    health:
      goliveId === null
        ? null
        : (
            await read(
              'migration_health_checks',
              `SELECT name, kind, tenant_bid, passed, detail, duration_ms, checked_at
                 FROM migration_health_checks WHERE run_id = ? ORDER BY checked_at, id`,
              [goliveId],
            )
          ).map((r) => ({
            name: str(r, 'name'),
            kind: str(r, 'kind'),
            tenant: strOrNull(r, 'tenant_bid'),
            passed: num(r, 'passed') === 1,
            detail: str(r, 'detail'),
            durationMs: num(r, 'duration_ms'),
            checkedAt: iso(r, 'checked_at'),
          })),
  };
}

const empty = { throughput: { bucketSeconds: 0, series: [] } satisfies Throughput };

type Read = (table: string, sql: string, params?: readonly SqlParam[]) => Promise<Row[]>;

function runOf(r: Row): ReportRun {
  const startedAt = iso(r, 'started_at');
  const finishedAt = isoOrNull(r, 'finished_at');
  const errorName = strOrNull(r, 'error_name');
  return {
    runId: str(r, 'run_id'),
    phase: str(r, 'phase'),
    status: str(r, 'status'),
    startedAt,
    finishedAt,
    seconds: seconds(startedAt, finishedAt),
    error: errorName === null ? null : { name: errorName, message: strOrNull(r, 'error_message') ?? '' },
    parentRunId: strOrNull(r, 'parent_run_id'),
  };
}

/** The run reported on: the one named (of any phase), else the latest golive run (null: none yet). */
async function reportRun(
  target: SqlClient,
  present: ReadonlySet<string>,
  runId: string | undefined,
): Promise<ReportRun | null> {
  if (!present.has('migration_runs')) {
    if (runId === undefined) return null;
    throw new ReportRunUnknown(`no run ${JSON.stringify(runId)}: ${target.database} has no ledger yet`);
  }
  const columns = 'run_id, phase, status, started_at, finished_at, error_name, error_message, parent_run_id';
  if (runId === undefined) {
    const [latest] = await target.query(
      `SELECT ${columns} FROM migration_runs WHERE phase = 'golive' ORDER BY started_at DESC, run_id DESC LIMIT 1`,
    );
    return latest === undefined ? null : runOf(latest);
  }
  const [run] = await target.query(`SELECT ${columns} FROM migration_runs WHERE run_id = ?`, [runId]);
  if (run !== undefined) return runOf(run);
  const recent = await target.query('SELECT run_id FROM migration_runs ORDER BY started_at DESC LIMIT 5');
  throw new ReportRunUnknown(
    `no run ${JSON.stringify(runId)} in ${target.database}: ${
      recent.length === 0
        ? 'no run yet'
        : `name one of its runs (latest: ${recent.map((r) => str(r, 'run_id')).join(', ')}; npx shifu-migrate status lists them), or none for the latest go-live or the migration so far`
    }`,
  );
}

/** The chunks of each table's data run (the copy `migration_progress` refers to). */
const DATA_CHUNKS = `migration_chunks c
  JOIN migration_progress p ON p.phase = 'data' AND p.run_id = c.run_id AND p.table_name = c.table_name`;
const COPIED = "c.status IN ('copied', 'validated', 'changing', 'mismatch')";

async function throughput(target: SqlClient, present: ReadonlySet<string>): Promise<Throughput> {
  if (!present.has('migration_chunks')) return empty.throughput;
  const [span] = await target.query(
    `SELECT MIN(c.updated_at) AS first, MAX(c.updated_at) AS last FROM ${DATA_CHUNKS} WHERE ${COPIED}`,
  );
  const first = span === undefined ? null : isoOrNull(span, 'first');
  const last = span === undefined ? null : isoOrNull(span, 'last');
  if (first === null || last === null) return empty.throughput;
  const spanSeconds = (Date.parse(last) - Date.parse(first)) / 1000;
  const bucket = BUCKET_SECONDS.find((b) => spanSeconds / b < BUCKETS) ?? 86_400;
  const origin = Math.floor(Date.parse(first) / 1000 / bucket) * bucket * 1000;
  const count = Math.floor((Date.parse(last) - origin) / 1000 / bucket) + 1;
  const rows = await target.query(
    `SELECT c.table_name, FLOOR(TIMESTAMPDIFF(SECOND, ?, c.updated_at) / ?) AS bucket, SUM(c.rows_copied) AS n
       FROM ${DATA_CHUNKS} WHERE ${COPIED} GROUP BY c.table_name, bucket ORDER BY c.table_name, bucket`,
    [param(new Date(origin).toISOString()), bucket],
  );
  const tables = new Map<string, number[]>();
  for (const r of rows) {
    const table = str(r, 'table_name');
    const counts = tables.get(table) ?? new Array<number>(count).fill(0);
    const at = Math.min(count - 1, Math.max(0, num(r, 'bucket')));
    counts[at] = (counts[at] ?? 0) + num(r, 'n');
    tables.set(table, counts);
  }
  return {
    bucketSeconds: bucket,
    series: [...tables].map(([table, counts]) => ({
      table,
      points: counts.map((n, i) => ({
        at: new Date(origin + i * bucket * 1000).toISOString(),
        rows: n,
        rowsPerSecond: Math.round((n / bucket) * 10) / 10,
      })),
    })),
  };
}

async function chunkStatus(target: SqlClient, present: ReadonlySet<string>): Promise<ChunkStatus[]> {
  if (!present.has('migration_chunks')) return [];
  const rows = await target.query(
    `SELECT c.table_name, c.run_id, c.status, COUNT(*) AS chunks, COALESCE(SUM(c.rows_copied), 0) AS n,
            SUM(c.source_checksum IS NOT NULL AND c.target_checksum IS NOT NULL AND c.source_checksum = c.target_checksum) AS equal,
            SUM(c.source_checksum IS NOT NULL AND c.target_checksum IS NOT NULL AND c.source_checksum <> c.target_checksum) AS differs,
            SUM(c.isolated_at IS NOT NULL) AS isolated
       FROM ${DATA_CHUNKS} GROUP BY c.table_name, c.run_id, c.status ORDER BY c.table_name, c.status`,
  );
  const tables = new Map<string, ChunkStatus>();
  for (const r of rows) {
    const table = str(r, 'table_name');
    const was = tables.get(table);
    const chunks = num(r, 'chunks');
    const equal = num(r, 'equal');
    const differs = num(r, 'differs');
    tables.set(table, {
      table,
      runId: str(r, 'run_id'),
      chunks: (was?.chunks ?? 0) + chunks,
      rows: (was?.rows ?? 0) + num(r, 'n'),
      byStatus: { ...was?.byStatus, [str(r, 'status')]: chunks },
      checksum: {
        equal: (was?.checksum.equal ?? 0) + equal,
        differs: (was?.checksum.differs ?? 0) + differs,
        notCompared: (was?.checksum.notCompared ?? 0) + chunks - equal - differs,
      },
      isolated: (was?.isolated ?? 0) + num(r, 'isolated'),
    });
  }
  return [...tables.values()];
}

async function sync(read: Read, until: string): Promise<SyncSection> {
  const passes = await read(
    'migration_sync_passes',
    `SELECT run_id, MAX(finished_at) AS finished_at, MAX(lag_seconds) AS lag, MAX(reverse_lag_seconds) AS reverse_lag,
            SUM(rows_applied) AS applied, SUM(reverse_applied) AS reverse_applied, SUM(conflicts) AS conflicts
       FROM migration_sync_passes WHERE finished_at IS NOT NULL AND finished_at <= ?
      GROUP BY run_id ORDER BY finished_at DESC, run_id DESC LIMIT ${SYNC_PASSES}`,
    [param(until)],
  );
  const tables = await read(
    'migration_sync_passes',
    `SELECT p.table_name, p.run_id, p.finished_at, p.lag_seconds, p.reverse_lag_seconds FROM migration_sync_passes p
       JOIN (SELECT table_name, MAX(finished_at) AS last FROM migration_sync_passes
              WHERE finished_at IS NOT NULL AND finished_at <= ? GROUP BY table_name) l
         ON l.table_name = p.table_name AND l.last = p.finished_at
      ORDER BY p.table_name, p.run_id`,
    [param(until)],
  );
  return {
    passes: passes.reverse().map((r) => ({
      runId: str(r, 'run_id'),
      finishedAt: iso(r, 'finished_at'),
      lagSeconds: numOrNull(r, 'lag'),
      reverseLagSeconds: numOrNull(r, 'reverse_lag'),
      rowsApplied: num(r, 'applied'),
      reverseApplied: num(r, 'reverse_applied'),
      conflicts: num(r, 'conflicts'),
    })),
    tables: tables.map((r) => ({
      table: str(r, 'table_name'),
      runId: str(r, 'run_id'),
      finishedAt: iso(r, 'finished_at'),
      lagSeconds: numOrNull(r, 'lag_seconds'),
      reverseLagSeconds: numOrNull(r, 'reverse_lag_seconds'),
    })),
  };
}

async function switches(read: Read, until: string): Promise<SwitchSection> {
  const changes = await read(
    'traffic_routing_history',
    `SELECT run_id, scope, tenant_bid, target, weight, reason, changed_at FROM traffic_routing_history
      WHERE changed_at <= ? ORDER BY changed_at, id`,
    [param(until)],
  );
  const tenants = await read(
    'tenant_migration_status',
    `SELECT s.tenant_bid, s.status, s.note, s.switched_at, s.run_id, s.baked, r.target AS route
       FROM tenant_migration_status s LEFT JOIN traffic_routing r ON r.scope = 'tenant' AND r.tenant_bid = s.tenant_bid
      ORDER BY s.tenant_bid`,
  );
  return {
    changes: changes.map((r) => ({
      at: iso(r, 'changed_at'),
      runId: str(r, 'run_id'),
      scope: str(r, 'scope'),
      tenant: str(r, 'tenant_bid'),
      route: str(r, 'target'),
      weight: num(r, 'weight'),
      reason: str(r, 'reason'),
    })),
    tenants: tenants.map((r) => ({
      tenant: str(r, 'tenant_bid'),
      status: str(r, 'status'),
      route: strOrNull(r, 'route'),
      switchedAt: isoOrNull(r, 'switched_at'),
      runId: strOrNull(r, 'run_id'),
      baked: num(r, 'baked') === 1,
      note: str(r, 'note'),
    })),
  };
}

async function quarantine(read: Read): Promise<QuarantineSection> {
  const byReason = await read(
    'migration_quarantine',
    'SELECT table_name, reason, COUNT(*) AS n FROM migration_quarantine GROUP BY table_name, reason ORDER BY table_name, reason',
  );
  const rows = await read(
    'migration_quarantine',
    `SELECT table_name, row_key, reason, run_id, created_at FROM migration_quarantine ORDER BY id LIMIT ${LISTED}`,
  );
  return {
    total: byReason.reduce((n, r) => n + num(r, 'n'), 0),
    byReason: byReason.map((r) => ({
      table: str(r, 'table_name'),
      reason: str(r, 'reason'),
      rows: num(r, 'n'),
    })),
    rows: rows.map((r) => ({
      table: str(r, 'table_name'),
      rowKey: str(r, 'row_key'),
      reason: str(r, 'reason'),
      runId: str(r, 'run_id'),
      at: iso(r, 'created_at'),
    })),
  };
}

async function conflicts(read: Read): Promise<ConflictSection> {
  const [counts] = await read(
    'migration_sync_conflicts',
    `SELECT COALESCE(SUM(resolved_at IS NULL), 0) AS open, COALESCE(SUM(resolved_at IS NOT NULL), 0) AS resolved
       FROM migration_sync_conflicts`,
  );
  const byTable = await read(
    'migration_sync_conflicts',
    'SELECT table_name, COUNT(*) AS n FROM migration_sync_conflicts WHERE resolved_at IS NULL GROUP BY table_name ORDER BY table_name',
  );
  const rows = await read(
    'migration_sync_conflicts',
    `SELECT table_name, row_key, target_tenant, source_tenant, first_seen_at, last_seen_at FROM migration_sync_conflicts
      WHERE resolved_at IS NULL ORDER BY first_seen_at, table_name, row_key LIMIT ${LISTED}`,
  );
  return {
    open: counts === undefined ? 0 : num(counts, 'open'),
    resolved: counts === undefined ? 0 : num(counts, 'resolved'),
    byTable: byTable.map((r) => ({ table: str(r, 'table_name'), open: num(r, 'n') })),
    rows: rows.map((r) => ({
      table: str(r, 'table_name'),
      rowKey: str(r, 'row_key'),
      targetTenant: str(r, 'target_tenant'),
      sourceTenant: strOrNull(r, 'source_tenant'),
      firstSeenAt: iso(r, 'first_seen_at'),
      lastSeenAt: iso(r, 'last_seen_at'),
    })),
  };
}

async function archive(read: Read, runId: string): Promise<ArchiveSection> {
  const tables = await read(
    'migration_archives',
    `SELECT table_name, manifest_key, rows_archived, objects, bytes, checksum, archived_at FROM migration_archives
      WHERE run_id = ? ORDER BY table_name`,
    [runId],
  );
  const objects: Row[] = [];
  // Page by page (a table of a billion rows is thousands of objects): the Data API answers 1 MiB at most.
  for (let after: Row | undefined; ; ) {
    const page = await read(
      'migration_archive_chunks',
      `SELECT table_name, chunk_no, status, object_key, rows_archived, bytes, sha256, checksum, seconds
         FROM migration_archive_chunks
        WHERE run_id = ?${after === undefined ? '' : ' AND (table_name > ? OR (table_name = ? AND chunk_no > ?))'}
        ORDER BY table_name, chunk_no LIMIT ${PAGE_ROWS}`,
      after === undefined
        ? [runId]
        : [runId, str(after, 'table_name'), str(after, 'table_name'), num(after, 'chunk_no')],
    );
    objects.push(...page);
    after = page.at(-1);
    if (page.length < PAGE_ROWS) break;
  }
  const restores = await read(
    'migration_archive_restores',
    `SELECT table_name, restored_into, verified, detail, checked_at FROM migration_archive_restores
      WHERE archive_run_id = ? ORDER BY checked_at, id`,
    [runId],
  );
  return {
    tables: tables.map((r) => ({
      table: str(r, 'table_name'),
      manifestKey: str(r, 'manifest_key'),
      rows: num(r, 'rows_archived'),
      objects: num(r, 'objects'),
      bytes: num(r, 'bytes'),
      checksum: str(r, 'checksum'),
      archivedAt: iso(r, 'archived_at'),
    })),
    objects: objects.map((r) => ({
      table: str(r, 'table_name'),
      chunkNo: num(r, 'chunk_no'),
      status: str(r, 'status'),
      objectKey: strOrNull(r, 'object_key'),
      rows: num(r, 'rows_archived'),
      bytes: num(r, 'bytes'),
      sha256: strOrNull(r, 'sha256'),
      checksum: strOrNull(r, 'checksum'),
      seconds: numOrNull(r, 'seconds'),
    })),
    restores: restores.map((r) => ({
      table: str(r, 'table_name'),
      restoredInto: str(r, 'restored_into'),
      verified: num(r, 'verified') === 1,
      detail: str(r, 'detail'),
      checkedAt: iso(r, 'checked_at'),
    })),
  };
}
