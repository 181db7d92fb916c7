import { ident, qualified } from '../core/identifiers.ts';
import { finishRun, newRunId, nowText, startRun, succeedRun, targetHasTable } from '../core/ledger/runs.ts';
import { keyComparison } from '../core/sql/keyset.ts';
import { num, str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { copyKey, runContext, tableInfo } from './context.ts';
import { rebuildIndexes } from './indexes.ts';
import { planLevels } from './plan.ts';

const PHASE = 'data' as const;

/** The run succeeded: tenants are migrated, and the sync watermark starts where this copy began. */
export async function finishData(deps: TaskDeps, runId: string) {
  const [run] = await deps.target.query('SELECT started_at FROM migration_runs WHERE run_id = ?', [runId]);
  const startedAt = run === undefined ? nowText() : str(run, 'started_at');
  const totals = await deps.target.query(
    'SELECT table_name, SUM(rows_copied) AS n, COUNT(*) AS chunks FROM migration_chunks WHERE run_id = ? GROUP BY table_name',
    [runId],
  );
  for (const row of totals) {
    await deps.target.execute(
      `INSERT INTO migration_sync_watermarks (table_name, watermark, last_run_id, last_run_at) VALUES (?, ?, ?, ?)
       ON DUPLICATE KEY UPDATE watermark = VALUES(watermark), last_run_id = VALUES(last_run_id), last_run_at = VALUES(last_run_at)`,
      [str(row, 'table_name'), startedAt, runId, nowText()],
    );
  }
  const quarantined = await deps.target.query(
    'SELECT COUNT(*) AS n FROM migration_quarantine WHERE run_id = ?',
    [runId],
  );
  await deps.target.execute(
    "UPDATE tenant_migration_status SET status = 'migrated' WHERE status IN ('pending', 'rolled_back')",
  );
  await succeedRun(deps.target, runId);
  return {
    runId,
    tables: totals.length,
    chunks: totals.reduce((s, r) => s + num(r, 'chunks'), 0),
    rows: totals.reduce((s, r) => s + num(r, 'n'), 0),
    quarantined: quarantined[0] === undefined ? 0 : num(quarantined[0], 'n'),
  };
}

/**
 * Removes what data runs copied: the rows in every recorded chunk range (children first), and their
 * quarantine rows. One run (the Catch), or every data run not yet rolled back (`rollback --phase data`).
 * The source is never written.
 */
export async function rollbackData(
  deps: TaskDeps,
  scope:
    | { runId: string; error?: { Error: string; Cause?: string | undefined } | undefined }
    | { phase: 'data' },
): Promise<{ rollbackRunId: string; undone: number }> {
  const rollbackRunId = 'runId' in scope ? scope.runId : newRunId('rollback');
  if (!(await targetHasTable(deps.targetServer, deps.targetUrl.database, 'migration_chunks')))
    return { rollbackRunId, undone: 0 };
  if (!('runId' in scope)) await startRun(deps.target, 'rollback', rollbackRunId);
  const runs =
    'runId' in scope
      ? [scope.runId]
      : (
          await deps.target.query(
            "SELECT run_id FROM migration_runs WHERE phase = ? AND status <> 'rolled_back'",
            [PHASE],
          )
        ).map((r) => str(r, 'run_id'));
  let undone = 0;
  for (const runId of runs) {
    const context = await runContext(deps, runId);
    const order = planLevels(deps, context.schema.tables)
      .flat()
      .map((p) => p.table)
      .reverse();
    for (const table of order) {
      const chunks = await deps.target.query(
        "SELECT chunk_no, key_from, key_to FROM migration_chunks WHERE run_id = ? AND table_name = ? AND status <> 'rolled_back'",
        [runId, table],
      );
      const key = copyKey(tableInfo(context, table));
      for (const chunk of chunks) {
        const parts: string[] = [];
        const params: (string | number)[] = [];
        for (const [field, op] of [
          ['key_from', '>'],
          ['key_to', '<='],
        ] as const) {
          if (chunk[field] === null) continue;
          const c = keyComparison(key, op, JSON.parse(str(chunk, field)) as (string | number)[]);
          parts.push(`(${c.sql})`);
          params.push(...(c.params as (string | number)[]));
        }
        const result = await deps.target.execute(
          `DELETE FROM ${qualified(deps.targetUrl.database, table)}${parts.length > 0 ? ` WHERE ${parts.join(' AND ')}` : ''}`,
          params,
        );
        undone += result.affectedRows;
        await deps.target.execute(
          "UPDATE migration_chunks SET status = 'rolled_back' WHERE run_id = ? AND table_name = ? AND chunk_no = ?",
          [runId, table, num(chunk, 'chunk_no')],
        );
      }
    }
    await deps.target.execute(`DELETE FROM ${ident('migration_quarantine')} WHERE run_id = ?`, [runId]);
    // The tables go back to what foundation made: with every index the copy deferred.
    await rebuildIndexes(deps, runId);
    const error =
      'runId' in scope && scope.error !== undefined
        ? { name: scope.error.Error, message: scope.error.Cause ?? scope.error.Error }
        : undefined;
    await finishRun(deps.target, runId, 'rolled_back', error);
  }
  await deps.target.execute(
    "UPDATE migration_progress SET status = 'rolled_back', records_migrated = 0 WHERE phase = ?",
    [PHASE],
  );
  await deps.target.execute(
    "UPDATE tenant_migration_status SET status = 'pending' WHERE status = 'migrated'",
  );
  if (!('runId' in scope)) await finishRun(deps.target, rollbackRunId, 'succeeded');
  return { rollbackRunId, undone };
}
