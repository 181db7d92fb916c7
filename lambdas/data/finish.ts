import { qualified } from '../core/identifiers.ts';
import { releaseLock } from '../core/ledger/lock.ts';
import { nowText, setRunStatus, succeedRun } from '../core/ledger/runs.ts';
import { setSyncSchedule } from '../core/schedule.ts';
import { num, str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { quarantinedKeys } from './compare.ts';
import { copyJob, runContext } from './context.ts';
import { dropStaleQuarantine } from './exact.ts';

/**
 * The run succeeded: tenants are migrated, and each table's sync watermark is the source's clock as this copy
 * began (a change after it may have missed the copy; sync reads from there, minus its overlap).
 */
export async function finishData(deps: TaskDeps, runId: string, execution: string) {
  // The source's clock as the copy began (a run recorded by an older version: the ledger's clock then).
  const [run] = await deps.target.query(
    'SELECT COALESCE(source_clock, started_at) AS began FROM migration_runs WHERE run_id = ?',
    [runId],
  );
  const startedAt = run === undefined ? nowText() : str(run, 'began');
  const totals = await deps.target.query(
    `SELECT table_name, SUM(rows_copied) AS n, COUNT(*) AS chunks, COALESCE(SUM(status = 'changing'), 0) AS changing
       FROM migration_chunks WHERE run_id = ? GROUP BY table_name`,
    [runId],
  );
  for (const row of totals) {
    await deps.target.execute(
      `INSERT INTO migration_sync_watermarks (table_name, watermark, last_run_id, last_run_at) VALUES (?, ?, ?, ?)
       ON DUPLICATE KEY UPDATE watermark = VALUES(watermark), last_run_id = VALUES(last_run_id), last_run_at = VALUES(last_run_at)`,
      [str(row, 'table_name'), startedAt, runId, nowText()],
    );
  }
  // Quarantine entries of rows the source has deleted since they were held (a live source) hold nothing.
  const context = await runContext(deps, runId);
  for (const row of totals) {
    const job = copyJob(context, str(row, 'table_name'));
    const held = await quarantinedKeys(deps, job.info.name, job);
    if (held.length > 0)
      await dropStaleQuarantine(
        deps,
        deps.target,
        job.info,
        job.key,
        { n: 0, after: null, upTo: null },
        held,
      );
  }
  const quarantined = await deps.target.query(
    'SELECT COUNT(*) AS n FROM migration_quarantine WHERE run_id = ?',
    [runId],
  );
  await deps.target.execute(
    "UPDATE tenant_migration_status SET status = 'migrated' WHERE status IN ('pending', 'rolled_back')",
  );
  // Each tenant's rows on the target (its own series in CloudWatch, a graph each on the dashboard).
  const perTenant = new Map(deps.config.tenants.map((t) => [t.bid, 0]));
  for (const row of totals) {
    const table = str(row, 'table_name');
    if (deps.config.tables[table]?.tenant === undefined) continue;
    for (const r of await deps.target.query(
      `SELECT tenant_bid, COUNT(*) AS n FROM ${qualified(deps.targetUrl.database, table)} GROUP BY tenant_bid`,
    ))
      perTenant.set(str(r, 'tenant_bid'), (perTenant.get(str(r, 'tenant_bid')) ?? 0) + Number(r.n));
  }
  for (const [tenant, rows] of perTenant) deps.metrics.put('data', { TenantRows: rows }, tenant);
  await succeedRun(deps.target, runId);
  // From now on sync keeps this copy in step: on AWS its schedule starts passes.
  const syncSchedule = await setSyncSchedule(deps.syncSchedule, 'ENABLED');
  await releaseLock(deps.target, execution, runId);
  return {
    /** The sync schedule: enabled (or unchanged), none locally, or failed with why. */
    syncSchedule,
    runId,
    tables: totals.length,
    chunks: totals.reduce((s, r) => s + num(r, 'chunks'), 0),
    rows: totals.reduce((s, r) => s + num(r, 'n'), 0),
    quarantined: quarantined[0] === undefined ? 0 : num(quarantined[0], 'n'),
    /** Chunks whose rows were still changing on the source when they were compared: the sync phase takes them. */
    changing: totals.reduce((s, r) => s + num(r, 'changing'), 0),
  };
}

/**
 * The run stopped on an error that may pass (the database unreachable, a transient error whose retries ran out,
 * a Lambda timeout): nothing is undone. The run becomes `interrupted` with the error, the lock is given up, and
 * `run data` resumes it where it stood.
 */
export async function interruptData(
  deps: TaskDeps,
  runId: string | null,
  execution: string,
  error: { Error: string; Cause?: string | undefined } | undefined,
): Promise<{ runId: string | null; chunksDone: number; chunksTotal: number }> {
  if (runId === null) return { runId, chunksDone: 0, chunksTotal: 0 };
  await setRunStatus(deps.target, runId, 'interrupted', {
    from: ['running'],
    ...(error === undefined ? {} : { error: { name: error.Error, message: error.Cause ?? error.Error } }),
  });
  await releaseLock(deps.target, execution, runId);
  const [chunks] = await deps.target.query(
    `SELECT COUNT(*) AS total, COALESCE(SUM(status IN ('copied', 'validated', 'changing')), 0) AS done
       FROM migration_chunks WHERE run_id = ?`,
    [runId],
  );
  return {
    runId,
    chunksDone: chunks === undefined ? 0 : num(chunks, 'done'),
    chunksTotal: chunks === undefined ? 0 : num(chunks, 'total'),
  };
}
