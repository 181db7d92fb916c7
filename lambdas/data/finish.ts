import { qualified } from '../core/identifiers.ts';
import { acquireLock, releaseLock } from '../core/ledger/lock.ts';
import { beginOwnRollback, rollbackFailure } from '../core/ledger/phase-run.ts';
import { findRuns, nowText, setRunStatus, succeedRun, targetHasTable } from '../core/ledger/runs.ts';
import { keyComparison, parseKeyTuple } from '../core/sql/keyset.ts';
import type { SqlParam } from '../core/sql/port.ts';
import { num, str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { quarantinedKeys } from './compare.ts';
import { copyJob, copyKey, exactKeyValues, runContext, tableInfo } from './context.ts';
import { dropStaleQuarantine } from './exact.ts';
import { rebuildIndexes } from './indexes.ts';
import { planLevels } from './plan.ts';

const PHASE = 'data' as const;

/** The run succeeded: tenants are migrated, and the sync watermark starts where this copy began. */
export async function finishData(deps: TaskDeps, runId: string, execution: string) {
  const [run] = await deps.target.query('SELECT started_at FROM migration_runs WHERE run_id = ?', [runId]);
  const startedAt = run === undefined ? nowText() : str(run, 'started_at');
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
  await succeedRun(deps.target, runId);
  await releaseLock(deps.target, execution, runId);
  return {
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

/** What a data rollback has not removed yet: rows in migrated tables, and indexes it has not rebuilt. */
export interface DataLeftovers {
  /** Tables that still hold rows (`rows` null: the table is missing, so it could not be emptied). */
  readonly tables: { readonly table: string; readonly rows: number | null }[];
  /** Secondary indexes the copy dropped that are not back. */
  readonly indexes: { readonly table: string; readonly index: string }[];
}

/** Reads what data runs left on the target: rows in the tables they planned, indexes not rebuilt. */
export async function dataLeftovers(deps: TaskDeps, runIds: readonly string[]): Promise<DataLeftovers> {
  if (runIds.length === 0) return { tables: [], indexes: [] };
  const marks = runIds.map(() => '?').join(', ');
  const planned = await deps.target.query(
    `SELECT DISTINCT table_name FROM migration_chunks WHERE run_id IN (${marks}) ORDER BY table_name`,
    [...runIds],
  );
  const present = new Set(
    (
      await deps.targetServer.query(
        'SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
        [deps.targetUrl.database],
      )
    ).map((r) => str(r, 't')),
  );
  const tables: DataLeftovers['tables'] = [];
  for (const row of planned) {
    const table = str(row, 'table_name');
    if (!present.has(table)) {
      tables.push({ table, rows: null });
      continue;
    }
    const [counted] = await deps.target.query(
      `SELECT COUNT(*) AS n FROM ${qualified(deps.targetUrl.database, table)}`,
    );
    const rows = counted === undefined ? 0 : num(counted, 'n');
    if (rows > 0) tables.push({ table, rows });
  }
  const indexes = (
    await deps.target.query(
      `SELECT DISTINCT table_name, index_name FROM migration_deferred_indexes
        WHERE run_id IN (${marks}) AND rebuilt_at IS NULL ORDER BY table_name, index_name`,
      [...runIds],
    )
  ).map((r) => ({ table: str(r, 'table_name'), index: str(r, 'index_name') }));
  return { tables, indexes };
}

/** The leftovers in one line, for messages and the ledger. */
export function describeLeftovers(left: DataLeftovers): string {
  const parts: string[] = [];
  for (const t of left.tables)
    parts.push(
      t.rows === null
        ? `${t.table}: table missing (renamed or dropped), not emptied`
        : `${t.table}: ${t.rows.toLocaleString('en-US')} rows`,
    );
  if (left.indexes.length > 0)
    parts.push(
      `${left.indexes.length} indexes not rebuilt (${left.indexes.map((i) => `${i.table}.${i.index}`).join(', ')})`,
    );
  return parts.length === 0 ? 'nothing' : parts.join('; ');
}

/** Deletes every recorded chunk range of `runs` in `table`. */
async function emptyTable(deps: TaskDeps, runs: readonly string[], table: string): Promise<number> {
  const target = qualified(deps.targetUrl.database, table);
  let undone = 0;
  for (const runId of runs) {
    const chunks = await deps.target.query(
      'SELECT chunk_no, key_from, key_to FROM migration_chunks WHERE run_id = ? AND table_name = ?',
      [runId, table],
    );
    if (chunks.length === 0) continue;
    // An empty table needs no range deletes (a second run's ranges, a rollback finished before).
    const [any] = await deps.target.query(`SELECT 1 AS found FROM ${target} LIMIT 1`);
    if (any !== undefined) {
      const info = tableInfo(await runContext(deps, runId), table);
      const key = copyKey(info);
      for (const chunk of chunks) {
        const parts: string[] = [];
        const params: SqlParam[] = [];
        for (const [field, op] of [
          ['key_from', '>'],
          ['key_to', '<='],
        ] as const) {
          if (chunk[field] === null) continue;
          const c = keyComparison(key, op, exactKeyValues(info, key, parseKeyTuple(str(chunk, field))));
          parts.push(`(${c.sql})`);
          params.push(...c.params);
        }
        const result = await deps.target.execute(
          `DELETE FROM ${target}${parts.length > 0 ? ` WHERE ${parts.join(' AND ')}` : ''}`,
          params,
        );
        undone += result.affectedRows;
      }
    }
    await deps.target.execute(
      "UPDATE migration_chunks SET status = 'rolled_back' WHERE run_id = ? AND table_name = ?",
      [runId, table],
    );
  }
  return undone;
}

/**
 * Undoes the data phase: the rows in every recorded chunk range of every data run not yet rolled back (children
 * first; chunk ranges cover their tables' whole key space, so the migrated tables end empty), their quarantine rows
 * and sync watermarks, and the indexes the copies dropped are rebuilt. The source is never written.
 *
 * - `own`: the phase's Catch, for the run that failed (`runId` null: its start failed and closed it, nothing to
 *   undo). It takes the run over from its own work unless a rollback state machine stopped it.
 * - `phase`: the rollback state machine, which holds the lock as `rollbackRunId`.
 *
 * Every run is `rolling_back` before anything is deleted, so a rollback killed half-way is found again. A table
 * that cannot be emptied (renamed, dropped, connections lost) does not stop the others; then the runs end
 * `rollback_failed` and {@link RollbackIncomplete} says what is left and how to finish. The lock is given up.
 */
export async function rollbackData(
  deps: TaskDeps,
  request:
    | {
        kind: 'own';
        runId: string | null;
        execution: string;
        error?: { Error: string; Cause?: string | undefined } | undefined;
      }
    | { kind: 'phase'; rollbackRunId: string; execution: string },
): Promise<{ rolledBack: boolean; undone: number; runs: string[]; rollbackRunId: string | null }> {
  if (request.kind === 'own' && request.runId === null)
    return { rolledBack: false, undone: 0, runs: [], rollbackRunId: null };
  if (!(await targetHasTable(deps.targetServer, deps.targetUrl.database, 'migration_chunks')))
    return { rolledBack: false, undone: 0, runs: [], rollbackRunId: null };
  const { execution } = request;
  if (request.kind === 'own')
    await beginOwnRollback(deps.target, PHASE, request.runId as string, execution, request.error);
  // The rollback state machine took the lock in Take Lock; a retry after an error that may pass takes it again.
  else
    await acquireLock(deps.target, {
      runId: request.rollbackRunId,
      phase: PHASE,
      kind: 'rollback',
      owner: execution,
    });
  try {
    const runs = (
      await findRuns(deps.target, "phase = ? AND status NOT IN ('rolled_back', 'refused')", [PHASE], 10_000)
    ).map((r) => r.runId);
    for (const runId of runs)
      await setRunStatus(deps.target, runId, 'rolling_back', {
        from: ['succeeded', 'failed', 'interrupted', 'stopping', 'running', 'rollback_failed'],
      });
    await deps.target.execute("UPDATE migration_progress SET status = 'rolling_back' WHERE phase = ?", [
      PHASE,
    ]);
    const failures: { what: string; error: unknown }[] = [];
    let undone = 0;
    const order = await tablesChildrenFirst(deps, runs);
    const present = new Set(
      (
        await deps.targetServer.query(
          'SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
          [deps.targetUrl.database],
        )
      ).map((r) => str(r, 't')),
    );
    for (const table of order) {
      try {
        if (!present.has(table)) throw new Error(`${table} is not in ${deps.targetUrl.database}`);
        undone += await emptyTable(deps, runs, table);
        await deps.target.execute(
          "UPDATE migration_progress SET status = 'rolled_back', records_migrated = 0 WHERE phase = ? AND table_name = ?",
          [PHASE, table],
        );
      } catch (error) {
        failures.push({ what: table, error });
      }
    }
    const marks = runs.map(() => '?').join(', ');
    const cleanups: [string, () => Promise<unknown>][] = [
      [
        'quarantine',
        () => deps.target.execute(`DELETE FROM migration_quarantine WHERE run_id IN (${marks})`, runs),
      ],
      // The watermarks said where sync would start from the copy: with the copy gone, so are they.
      ['sync watermarks', () => deps.target.execute('DELETE FROM migration_sync_watermarks')],
      // Table by table: a table that is missing does not keep the others' indexes from coming back.
      ...runs.flatMap((runId) =>
        order
          .filter((table) => present.has(table))
          .map((table): [string, () => Promise<unknown>] => [
            `indexes of ${table}`,
            () => rebuildIndexes(deps, runId, table),
          ]),
      ),
    ];
    if (runs.length === 0) cleanups.shift();
    for (const [what, work] of cleanups) {
      try {
        await work();
      } catch (error) {
        failures.push({ what, error });
      }
    }
    const left = await dataLeftovers(deps, runs);
    const rollbackRunId = request.kind === 'phase' ? request.rollbackRunId : null;
    if (failures.length > 0 || left.tables.length > 0 || left.indexes.length > 0) {
      const said = failures.map((f) => `${f.what}: ${(f.error as Error).message}`.slice(0, 200));
      const incomplete = rollbackFailure(
        `the data rollback stopped half-way: ${said.join('; ') || 'rows came back while it ran'}. Left on the target: ${describeLeftovers(left)}. Fix the cause (restore a renamed table, reconnect), then finish it: npx shifu-migrate rollback`,
        failures.map((f) => f.error),
      );
      const error = { name: incomplete.name, message: incomplete.message };
      for (const runId of runs)
        await setRunStatus(deps.target, runId, 'rollback_failed', { from: ['rolling_back'], error });
      if (rollbackRunId !== null) await setRunStatus(deps.target, rollbackRunId, 'failed', { error });
      throw incomplete;
    }
    for (const runId of runs)
      await setRunStatus(deps.target, runId, 'rolled_back', { from: ['rolling_back'] });
    // Tables the runs never planned were marked rolling_back too: nothing of them was there to remove.
    await deps.target.execute(
      "UPDATE migration_progress SET status = 'rolled_back', records_migrated = 0 WHERE phase = ? AND status = 'rolling_back'",
      [PHASE],
    );
    await deps.target.execute(
      "UPDATE tenant_migration_status SET status = 'pending' WHERE status = 'migrated'",
    );
    if (rollbackRunId !== null) await setRunStatus(deps.target, rollbackRunId, 'succeeded');
    return { rolledBack: true, undone, runs, rollbackRunId };
  } finally {
    await releaseLock(deps.target, execution).catch(() => undefined);
  }
}

/** The tables the runs planned, children before parents (the reverse of the copy's levels). */
async function tablesChildrenFirst(deps: TaskDeps, runs: readonly string[]): Promise<string[]> {
  if (runs.length === 0) return [];
  const planned = new Set(
    (
      await deps.target.query(
        `SELECT DISTINCT table_name FROM migration_chunks WHERE run_id IN (${runs.map(() => '?').join(', ')})`,
        [...runs],
      )
    ).map((r) => str(r, 'table_name')),
  );
  const ordered: string[] = [];
  for (const runId of runs) {
    const context = await runContext(deps, runId);
    for (const p of planLevels(deps, context.schema.tables).flat().reverse())
      if (planned.has(p.table) && !ordered.includes(p.table)) ordered.push(p.table);
  }
  for (const table of planned) if (!ordered.includes(table)) ordered.push(table);
  return ordered;
}
