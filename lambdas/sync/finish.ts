import { giveLockBack } from '../core/ledger/phase-run.ts';
import { nowText, setRunStatus, succeedRun } from '../core/ledger/runs.ts';
import { sourceClock } from '../core/sql/clock.ts';
import { num, numOrNull, str, strOrNull } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { secondsBetween } from './clock-math.ts';
import type { TablePass } from './schema.ts';

/** What a pass did, as Finish Sync returns it (and `run sync` prints). */
export interface SyncSummary {
  readonly runId: string;
  readonly tables: TablePass[];
  readonly rowsApplied: number;
  readonly rowsDeleted: number;
  /** Reverse sync: legacy rows written and deleted from the target's rows of switched tenants. */
  readonly reverseApplied: number;
  readonly reverseDeleted: number;
  readonly chunksChecked: number;
  readonly chunksRepaired: number;
  /** Chunks written again while they were compared: the next pass looks again. */
  readonly chunksChanging: number;
  /** Tenant conflicts open now (every table, every pass). */
  readonly openConflicts: number;
  /** The largest table lag of this pass, in seconds; null when no table's is known. */
  readonly maxLagSeconds: number | null;
}

/**
 * How stale a table without a change column may be: the time since the slice checked longest ago was checked (the
 * clocks of its last `slices` passes); null until every slice has been checked once.
 */
async function reconcileLag(deps: TaskDeps, table: string, now: string): Promise<number | null> {
  const slices = deps.config.sync.slices;
  const rows = await deps.target.query(
    `SELECT r.source_clock AS clock FROM migration_sync_passes p JOIN migration_runs r ON r.run_id = p.run_id
      WHERE p.table_name = ? AND p.slice_no IS NOT NULL AND r.status IN ('succeeded', 'running') AND r.source_clock IS NOT NULL
      ORDER BY r.started_at DESC LIMIT ?`,
    [table, slices],
  );
  if (rows.length < slices) return null;
  const oldest = rows.map((r) => str(r, 'clock')).sort()[0];
  return oldest === undefined ? null : secondsBetween(oldest, now);
}

export function tablePass(row: Record<string, unknown>): TablePass {
  const r = row as Parameters<typeof num>[0];
  return {
    table: str(r, 'table_name'),
    changeColumn: strOrNull(r, 'change_column'),
    rowsLookedAt: num(r, 'rows_looked_at'),
    rowsApplied: num(r, 'rows_applied'),
    rowsDeleted: num(r, 'rows_deleted'),
    rowsQuarantined: num(r, 'rows_quarantined'),
    rowsWaiting: num(r, 'rows_waiting'),
    conflicts: num(r, 'conflicts'),
    chunksChecked: num(r, 'chunks_checked'),
    chunksRepaired: num(r, 'chunks_repaired'),
    chunksChanging: num(r, 'chunks_changing'),
    lagSeconds: numOrNull(r, 'lag_seconds'),
    pendingRows: numOrNull(r, 'pending_rows'),
    reverseApplied: num(r, 'reverse_applied'),
    reverseDeleted: num(r, 'reverse_deleted'),
    reverseLagSeconds: numOrNull(r, 'reverse_lag_seconds'),
  };
}

/**
 * The pass succeeded: each table's next slice is the one after this pass's, the lag of tables without a change
 * column is worked out, the run ends `succeeded` and the lock is given up; the lag goes to CloudWatch (its alarm
 * bound is `sync.maxLagSeconds`).
 */
export async function finishSync(deps: TaskDeps, runId: string): Promise<SyncSummary> {
  const now = await sourceClock(deps.source);
  const [run] = await deps.target.query('SELECT source_clock FROM migration_runs WHERE run_id = ?', [runId]);
  const clock = run === undefined ? now : (strOrNull(run, 'source_clock') ?? now);
  const passes = await deps.target.query(
    'SELECT * FROM migration_sync_passes WHERE run_id = ? ORDER BY table_name',
    [runId],
  );
  for (const p of passes) {
    const table = str(p, 'table_name');
    if (p.slice_no !== null)
      await deps.target.execute(
        `INSERT INTO migration_sync_watermarks (table_name, watermark, last_run_id, last_run_at, next_slice) VALUES (?, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE next_slice = VALUES(next_slice), last_run_id = VALUES(last_run_id), last_run_at = VALUES(last_run_at)`,
        [table, clock, runId, nowText(), (num(p, 'slice_no') + 1) % deps.config.sync.slices],
      );
    if (strOrNull(p, 'change_column') === null) {
      await deps.target.execute(
        'UPDATE migration_sync_passes SET lag_seconds = ? WHERE run_id = ? AND table_name = ?',
        [await reconcileLag(deps, table, now), runId, table],
      );
    }
  }
  // Conflicts this pass saw and left open, per table (a row seen by catch-up and reconciliation counts once).
  await deps.target.execute(
    `UPDATE migration_sync_passes p SET conflicts = (SELECT COUNT(*) FROM migration_sync_conflicts c
        WHERE c.table_name = p.table_name AND c.run_id = p.run_id AND c.resolved_at IS NULL) WHERE p.run_id = ?`,
    [runId],
  );
  await deps.target.execute('UPDATE migration_sync_passes SET finished_at = ? WHERE run_id = ?', [
    nowText(),
    runId,
  ]);
  const tables = (
    await deps.target.query('SELECT * FROM migration_sync_passes WHERE run_id = ? ORDER BY table_name', [
      runId,
    ])
  ).map(tablePass);
  const [open] = await deps.target.query(
    'SELECT COUNT(*) AS n FROM migration_sync_conflicts WHERE resolved_at IS NULL',
  );
  const lags = tables.flatMap((t) => (t.lagSeconds === null ? [] : [t.lagSeconds]));
  const sum = (f: (t: TablePass) => number) => tables.reduce((s, t) => s + f(t), 0);
  const summary: SyncSummary = {
    runId,
    tables,
    rowsApplied: sum((t) => t.rowsApplied),
    rowsDeleted: sum((t) => t.rowsDeleted),
    reverseApplied: sum((t) => t.reverseApplied),
    reverseDeleted: sum((t) => t.reverseDeleted),
    chunksChecked: sum((t) => t.chunksChecked),
    chunksRepaired: sum((t) => t.chunksRepaired),
    chunksChanging: sum((t) => t.chunksChanging),
    openConflicts: open === undefined ? 0 : num(open, 'n'),
    maxLagSeconds: lags.length === 0 ? null : Math.max(...lags),
  };
  const reverseLags = tables.flatMap((t) => (t.reverseLagSeconds === null ? [] : [t.reverseLagSeconds]));
  deps.metrics.put('sync', {
    SyncRowsApplied: summary.rowsApplied,
    SyncRowsDeleted: summary.rowsDeleted,
    ReverseSyncRowsApplied: summary.reverseApplied,
    ReverseSyncRowsDeleted: summary.reverseDeleted,
    ...(reverseLags.length === 0 ? {} : { ReverseSyncLagSeconds: Math.max(...reverseLags) }),
    TenantConflicts: summary.openConflicts,
    ...(summary.maxLagSeconds === null ? {} : { SyncLagSeconds: summary.maxLagSeconds }),
  });
  // Open conflicts per tenant (the tenant the target holds them in): each tenant's own series.
  const byTenant = new Map(deps.config.tenants.map((t) => [t.bid, 0]));
  for (const r of await deps.target.query(
    'SELECT target_tenant AS t, COUNT(*) AS n FROM migration_sync_conflicts WHERE resolved_at IS NULL GROUP BY target_tenant',
  ))
    byTenant.set(str(r, 't'), Number(r.n));
  // Each tenant's lag is its owner's direction: forward while legacy owns its writes, reverse once switched.
  const switched = new Set(
    (await deps.target.query("SELECT tenant_bid FROM tenant_migration_status WHERE status = 'switched'")).map(
      (r) => str(r, 'tenant_bid'),
    ),
  );
  const forwardLag = lags.length === 0 ? null : Math.max(...lags);
  const reverse = tables.flatMap((t) => (t.reverseLagSeconds === null ? [] : [t.reverseLagSeconds]));
  const reverseLag = reverse.length === 0 ? null : Math.max(...reverse);
  for (const [tenant, n] of byTenant) {
    const lag = switched.has(tenant) ? reverseLag : forwardLag;
    deps.metrics.put(
      'sync',
      { TenantConflicts: n, ...(lag === null ? {} : { SyncLagSeconds: lag }) },
      tenant,
    );
  }
  await succeedRun(deps.target, runId);
  return summary;
}

/**
 * The pass ended without finishing: `interrupted` (an error that may pass; the next start resumes it) or `failed`
 * (nothing to undo: every repair was one transaction, so the target is as consistent as before it; the next pass
 * starts afresh). The lock is given up either way.
 */
export async function endSync(
  deps: TaskDeps,
  runId: string | null,
  execution: string,
  error: { Error: string; Cause?: string | undefined } | undefined,
  status: 'interrupted' | 'failed',
): Promise<{ runId: string | null; status: string }> {
  if (runId === null) return { runId, status };
  await setRunStatus(deps.target, runId, status, {
    from: ['running'],
    ...(error === undefined ? {} : { error: { name: error.Error, message: error.Cause ?? error.Error } }),
  });
  await giveLockBack(deps.target, runId, execution);
  return { runId, status };
}
