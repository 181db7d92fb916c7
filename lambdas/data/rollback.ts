import { qualified } from '../core/identifiers.ts';
import { releaseLock } from '../core/ledger/lock.ts';
import { enterRollback, rollbackFailure } from '../core/ledger/phase-run.ts';
import { findRuns, nowText, setRunStatus, targetHasTable } from '../core/ledger/runs.ts';
import { setSyncSchedule } from '../core/schedule.ts';
import type { TableInfo } from '../core/schema/types.ts';
import { keyComparison, parseKeyTuple } from '../core/sql/keyset.ts';
import type { SqlParam } from '../core/sql/port.ts';
import { num, str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { FUNCTIONS, IN_FLIGHT_LIMIT_SECONDS } from '../registry.ts';
import { copyKey, exactKeyValues, rollbackContext, tableInfo } from './context.ts';
import { rebuildIndexes } from './indexes.ts';
import { planLevels } from './plan.ts';

const PHASE = 'data' as const;

/**
 * How long one rollback call works before it hands back to the state machine, which calls it again: two thirds of
 * the function's timeout (10 of 15 minutes), so the chunk range it is deleting when that time comes ends well inside
 * the timeout, and a rollback of any size finishes in bounded steps, each resumable from the ledger. Each step but
 * the last lasts at least this long, so an execution's time bounds its steps (test/infra/budget.test.ts).
 */
export const ROLLBACK_STEP_MS = (FUNCTIONS.DataRollbackFunctionArn.timeoutMinutes * 60 * 1000 * 2) / 3;

/** What a data rollback has not removed yet: rows in migrated tables, and indexes it has not rebuilt. */
export interface DataLeftovers {
  /** Tables that still hold rows (`rows` null: the table is missing, so it could not be emptied). */
  readonly tables: { readonly table: string; readonly rows: number | null }[];
  /** Secondary indexes the copy dropped that are not back. */
  readonly indexes: { readonly table: string; readonly index: string }[];
}

async function targetTableNames(deps: TaskDeps): Promise<Set<string>> {
  const rows = await deps.targetServer.query(
    'SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
    [deps.targetUrl.database],
  );
  return new Set(rows.map((r) => str(r, 't')));
}

/** Reads what data runs left on the target: rows in the tables they planned, indexes not rebuilt. */
export async function dataLeftovers(deps: TaskDeps, runIds: readonly string[]): Promise<DataLeftovers> {
  if (runIds.length === 0) return { tables: [], indexes: [] };
  const marks = runIds.map(() => '?').join(', ');
  const planned = await deps.target.query(
    `SELECT DISTINCT table_name FROM migration_chunks WHERE run_id IN (${marks}) ORDER BY table_name`,
    [...runIds],
  );
  const present = await targetTableNames(deps);
  const tables: DataLeftovers['tables'] = [];
  for (const row of planned) {
    const table = str(row, 'table_name');
    if (!present.has(table)) {
      tables.push({ table, rows: null });
      continue;
    }
    const [any] = await deps.target.query(
      `SELECT 1 AS found FROM ${qualified(deps.targetUrl.database, table)} LIMIT 1`,
    );
    if (any === undefined) continue;
    const [counted] = await deps.target.query(
      `SELECT COUNT(*) AS n FROM ${qualified(deps.targetUrl.database, table)}`,
    );
    tables.push({ table, rows: counted === undefined ? 0 : num(counted, 'n') });
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

/** One rollback call's budget: work stops after `deadline`, once `progressed` (chunks removed) is above zero. */
interface StepBudget {
  readonly deadline: number;
  progressed: number;
}

/**
 * Empties the table in one statement, whatever its size, and records that it did. False when the server refuses
 * and range deletes can still do it: a foreign key elsewhere references the table (a target table made before
 * foundation may have one), the user lacks the DROP privilege TRUNCATE needs, or a reader holds the table's
 * metadata lock past the lock wait (range deletes do not need it).
 */
async function truncate(deps: TaskDeps, target: string, table: string): Promise<boolean> {
  try {
    await deps.target.execute(`TRUNCATE TABLE ${target}`);
  } catch (error) {
    if (/foreign key|command denied|access denied|lock wait timeout/i.test((error as Error).message))
      return false;
    throw error;
  }
  await deps.target.execute(
    "UPDATE migration_progress SET truncated_at = ? WHERE phase = 'data' AND table_name = ?",
    [nowText(), table],
  );
  return true;
}

/**
 * Empties one table of what the runs copied, within the step's budget: a table whose content every data run built from
 * empty (recorded when its first chunks were planned) is truncated at once; otherwise its recorded chunk ranges are
 * deleted one by one, each marked `rolled_back` as it goes, so a later call goes on where this one stopped.
 */
async function emptyTable(
  deps: TaskDeps,
  runs: readonly string[],
  table: string,
  step: StepBudget,
): Promise<{ undone: number; truncated: boolean; finished: boolean }> {
  const target = qualified(deps.targetUrl.database, table);
  const marks = runs.map(() => '?').join(', ');
  const [pending] = await deps.target.query(
    `SELECT COUNT(*) AS n FROM migration_chunks WHERE run_id IN (${marks}) AND table_name = ? AND status <> 'rolled_back'`,
    [...runs, table],
  );
  // An earlier step emptied it already.
  if (pending === undefined || num(pending, 'n') === 0)
    return { undone: 0, truncated: false, finished: true };
  const [built] = await deps.target.query(
    "SELECT COALESCE(MAX(empty_at_start), 0) AS empty FROM migration_progress WHERE phase = 'data' AND table_name = ?",
    [table],
  );
  if (built !== undefined && num(built, 'empty') === 1 && (await truncate(deps, target, table))) {
    await deps.target.execute(
      `UPDATE migration_chunks SET status = 'rolled_back' WHERE run_id IN (${marks}) AND table_name = ?`,
      [...runs, table],
    );
    step.progressed++;
    return { undone: 0, truncated: true, finished: true };
  }
  let undone = 0;
  for (const runId of runs) {
    // Read only for a run that has chunks of the table left: one whose start ended before it wrote its structure
    // planned no chunks, and has nothing here to undo.
    let found: { info: TableInfo; key: string[] } | undefined;
    for (;;) {
      const chunks = await deps.target.query(
        "SELECT chunk_no, key_from, key_to FROM migration_chunks WHERE run_id = ? AND table_name = ? AND status <> 'rolled_back' ORDER BY chunk_no LIMIT 500",
        [runId, table],
      );
      if (chunks.length === 0) break;
      if (found === undefined) {
        const info = tableInfo(await rollbackContext(deps, runId), table);
        found = { info, key: copyKey(info) };
      }
      const { info, key } = found;
      for (const chunk of chunks) {
        // Every step removes at least one chunk, so a rollback always gets further, however short its steps.
        if (deps.signal.aborted || (step.progressed > 0 && Date.now() > step.deadline))
          return { undone, truncated: false, finished: false };
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
        await deps.target.execute(
          "UPDATE migration_chunks SET status = 'rolled_back' WHERE run_id = ? AND table_name = ? AND chunk_no = ?",
          [runId, table, num(chunk, 'chunk_no')],
        );
        step.progressed++;
      }
    }
  }
  return { undone, truncated: false, finished: true };
}

/** Whether no chunk of the runs is being copied any more (waits until `deadline`, looking every 5 s). */
async function copiesEnded(deps: TaskDeps, runs: readonly string[], deadline: number): Promise<boolean> {
  if (runs.length === 0) return true;
  for (;;) {
    const [inFlight] = await deps.target.query(
      `SELECT COUNT(*) AS n FROM migration_chunks WHERE run_id IN (${runs.map(() => '?').join(', ')}) AND status = 'copying'
          AND updated_at > CURRENT_TIMESTAMP(3) - INTERVAL ? SECOND`,
      [...runs, IN_FLIGHT_LIMIT_SECONDS],
    );
    if (inFlight === undefined || num(inFlight, 'n') === 0) return true;
    if (Date.now() > deadline || deps.signal.aborted) return false;
    await new Promise((resolve) => setTimeout(resolve, 5_000));
  }
}

/** The tables the runs planned, children before parents (the reverse of the copy's levels). */
async function tablesChildrenFirst(deps: TaskDeps, runs: readonly string[]): Promise<string[]> {
  if (runs.length === 0) return [];
  const rows = await deps.target.query(
    `SELECT DISTINCT run_id, table_name FROM migration_chunks WHERE run_id IN (${runs.map(() => '?').join(', ')})`,
    [...runs],
  );
  const planned = new Set(rows.map((r) => str(r, 'table_name')));
  const ordered: string[] = [];
  // A run without chunks (its start ended before it planned any) has no structure to read, and nothing to order.
  for (const runId of runs.filter((id) => rows.some((r) => str(r, 'run_id') === id))) {
    const context = await rollbackContext(deps, runId);
    for (const p of planLevels(deps, context.schema.tables).flat().reverse())
      if (planned.has(p.table) && !ordered.includes(p.table)) ordered.push(p.table);
  }
  for (const table of planned) if (!ordered.includes(table)) ordered.push(table);
  return ordered;
}

/** One step's result; `done` false means: call again (the lock is kept, the ledger says where it stands). */
export interface RollbackStep {
  readonly done: boolean;
  readonly rolledBack: boolean;
  /** Rows deleted by range deletes, this step and the ones before it (`undoneBefore`). */
  readonly undone: number;
  /** Tables emptied with TRUNCATE, this step and the ones before it (their rows are not counted). */
  readonly truncated: string[];
  readonly runs: string[];
  readonly rollbackRunId: string | null;
  /** What became of the sync schedule (disabled as the rollback began): see setSyncSchedule. */
  readonly syncSchedule?: string;
}

/**
 * Undoes the data phase, in bounded steps: the rows in every recorded chunk range of every data run not yet rolled
 * back (children first; chunk ranges cover their tables' whole key space, so the migrated tables end empty), their
 * quarantine rows and sync watermarks, and the indexes the copies dropped are rebuilt. The source is never written.
 *
 * - `own`: the phase's Catch, for the run that failed (`runId` null: its start failed and closed it, nothing to
 *   undo). It takes the run over from its own work unless a rollback state machine stopped it.
 * - `phase`: the rollback state machine, which holds the lock as `rollbackRunId`.
 *
 * Each call works for at most {@link ROLLBACK_STEP_MS} (and stops early when the function's time runs short), then
 * returns `done: false`; the state machine calls again, and the call goes on from the ledger (chunks already
 * `rolled_back` are skipped). Every run is `rolling_back` before anything is deleted, so a rollback killed half-way
 * is found again. A table that cannot be emptied (renamed, dropped) does not stop the others; then the runs end
 * `rollback_failed` and the error says what is left and how to finish. The lock is given up when it ends.
 */
export async function rollbackData(
  deps: TaskDeps,
  request:
    | {
        kind: 'own';
        runId: string | null;
        execution: string;
        error?: { Error: string; Cause?: string | undefined } | undefined;
        undoneBefore?: number | undefined;
        truncatedBefore?: string[] | undefined;
      }
    | {
        kind: 'phase';
        rollbackRunId: string;
        execution: string;
        undoneBefore?: number | undefined;
        truncatedBefore?: string[] | undefined;
      },
  stepMs = ROLLBACK_STEP_MS,
): Promise<RollbackStep> {
  const nothing: RollbackStep = {
    done: true,
    rolledBack: false,
    undone: 0,
    truncated: [],
    runs: [],
    rollbackRunId: null,
  };
  if (request.kind === 'own' && request.runId === null) return nothing;
  if (!(await targetHasTable(deps.targetServer, deps.targetUrl.database, 'migration_chunks'))) return nothing;
  const { execution } = request;
  const budget: StepBudget = { deadline: Date.now() + stepMs, progressed: 0 };
  await enterRollback(
    deps.target,
    PHASE,
    execution,
    request.kind === 'own' ? { kind: 'own', runId: request.runId as string, error: request.error } : request,
  );
  // No sync pass is started on a copy being undone (one already started is refused by the lock, then finds no
  // copy to follow).
  const syncSchedule = await setSyncSchedule(deps.syncSchedule, 'DISABLED');
  let ended = false;
  let runs: string[] = [];
  try {
    runs = (
      await findRuns(deps.target, "phase = ? AND status NOT IN ('rolled_back', 'refused')", [PHASE], 10_000)
    ).map((r) => r.runId);
    for (const runId of runs)
      await setRunStatus(deps.target, runId, 'rolling_back', {
        from: ['succeeded', 'failed', 'interrupted', 'stopping', 'running', 'rollback_failed'],
      });
    // On AWS, a failed map run stops its children, but not their Lambda invocations: a chunk one of them is still
    // copying would commit rows after they were deleted. No new chunk starts (the run is rolling back); the ones in
    // flight end, or outlive the function's timeout, before anything is deleted. (Locally the runtime has waited.)
    if (
      request.kind === 'own' &&
      execution.startsWith('arn:') &&
      !(await copiesEnded(deps, runs, budget.deadline))
    )
      return {
        done: false,
        rolledBack: false,
        undone: request.undoneBefore ?? 0,
        truncated: [...(request.truncatedBefore ?? [])],
        runs,
        rollbackRunId: null,
      };
    // A step after the first finds the tables it emptied already rolled back, and leaves them so.
    await deps.target.execute(
      "UPDATE migration_progress SET status = 'rolling_back' WHERE phase = ? AND status <> 'rolled_back'",
      [PHASE],
    );
    const failures: { what: string; error: unknown }[] = [];
    let undone = request.undoneBefore ?? 0;
    const truncated = [...(request.truncatedBefore ?? [])];
    const order = await tablesChildrenFirst(deps, runs);
    const present = await targetTableNames(deps);
    for (const table of order) {
      try {
        if (!present.has(table)) throw new Error(`${table} is not in ${deps.targetUrl.database}`);
        const step = await emptyTable(deps, runs, table, budget);
        undone += step.undone;
        if (step.truncated && !truncated.includes(table)) truncated.push(table);
        if (!step.finished)
          return { done: false, rolledBack: false, undone, truncated, runs, rollbackRunId: null };
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
      ...(runs.length === 0
        ? []
        : [
            [
              'quarantine',
              // Sync's passes held rows of the same copy: gone with it.
              () =>
                deps.target.execute(
                  `DELETE FROM migration_quarantine WHERE run_id IN (${marks}) OR run_id LIKE 'sync-%'`,
                  runs,
                ),
            ] as [string, () => Promise<unknown>],
          ]),
      // The watermarks said where sync would start from the copy: with the copy gone, so are they.
      ['sync watermarks', () => deps.target.execute('DELETE FROM migration_sync_watermarks')],
      // Tenant conflicts name rows of the copy: gone with it (a ledger from before sync has none).
      [
        'sync conflicts',
        async () => {
          if (await targetHasTable(deps.targetServer, deps.targetUrl.database, 'migration_sync_conflicts'))
            await deps.target.execute('DELETE FROM migration_sync_conflicts');
          if (await targetHasTable(deps.targetServer, deps.targetUrl.database, 'migration_sync_waiting'))
            await deps.target.execute('DELETE FROM migration_sync_waiting');
        },
      ],
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
    for (const [what, work] of cleanups) {
      try {
        await work();
      } catch (error) {
        failures.push({ what, error });
      }
    }
    const left = await dataLeftovers(deps, runs);
    const rollbackRunId = request.kind === 'phase' ? request.rollbackRunId : null;
    ended = true;
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
    // Tables emptied with TRUNCATE by this rollback, in any step or attempt of it (the ledger remembers them).
    for (const row of await deps.target.query(
      'SELECT table_name FROM migration_progress WHERE phase = ? AND truncated_at IS NOT NULL ORDER BY table_name',
      [PHASE],
    ))
      if (!truncated.includes(str(row, 'table_name'))) truncated.push(str(row, 'table_name'));
    // Tables the runs never planned were marked rolling_back too: nothing of them was there to remove. Every table
    // is empty again, so none holds content a later run did not build from empty.
    await deps.target.execute(
      "UPDATE migration_progress SET status = IF(status = 'rolling_back', 'rolled_back', status), records_migrated = 0, empty_at_start = NULL, truncated_at = NULL WHERE phase = ?",
      [PHASE],
    );
    // A foundation rolled back since has taken the tenants' status table with it.
    if (await targetHasTable(deps.targetServer, deps.targetUrl.database, 'tenant_migration_status'))
      await deps.target.execute(
        "UPDATE tenant_migration_status SET status = 'pending' WHERE status = 'migrated'",
      );
    if (rollbackRunId !== null) {
      await setRunStatus(deps.target, rollbackRunId, 'succeeded');
      // Earlier rollbacks that died or failed before finishing: this one has done their work.
      await deps.target.execute(
        "UPDATE migration_runs SET status = 'failed', finished_at = COALESCE(finished_at, CURRENT_TIMESTAMP(3)) WHERE phase = 'rollback' AND run_id <> ? AND status IN ('running', 'interrupted', 'stopping')",
        [rollbackRunId],
      );
    }
    return { done: true, rolledBack: true, undone, truncated, runs, rollbackRunId, syncSchedule };
  } catch (error) {
    ended = true;
    // Whatever stopped this step, the ledger says so: the runs it was undoing are left half rolled back, and the
    // rollback that ran it failed (a retry, or the next rollback, takes them on again from there).
    const said = {
      name: (error as Error).name ?? 'Error',
      message: String((error as Error).message ?? error),
    };
    for (const runId of runs)
      await setRunStatus(deps.target, runId, 'rollback_failed', {
        from: ['rolling_back'],
        error: said,
      }).catch(() => undefined);
    if (request.kind === 'phase')
      await setRunStatus(deps.target, request.rollbackRunId, 'failed', {
        from: ['running'],
        error: said,
      }).catch(() => undefined);
    throw error;
  } finally {
    // Between steps the lock stays this execution's; at the end, success or failure, it is given up.
    if (ended) await releaseLock(deps.target, execution).catch(() => undefined);
  }
}
