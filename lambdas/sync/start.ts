import { describeHolder } from '../core/ledger/lock.ts';
import { beginRun, failStart } from '../core/ledger/phase-run.ts';
import { findRuns, targetHasTable } from '../core/ledger/runs.ts';
import { assertConfigFits, assertSourceIsNotTarget, changeColumn } from '../core/preflight.ts';
import { introspect } from '../core/schema/introspect.ts';
import { sourceClock } from '../core/sql/clock.ts';
import { num, str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { copyColumns, type RunContext, runContext, saveRunContext, tableInfo } from '../data/context.ts';
import { planLevels } from '../data/plan.ts';
import type { PlannedTable } from '../data/schema.ts';
import { SourceSchemaChanged, SyncNotReady } from './errors.ts';

/** What Start Sync gives the state machine. */
export interface SyncStart {
  readonly runId: string;
  /** Set when this start resumes a pass (interrupted, or its process gone): how far it was, whose lock it took. */
  readonly resumed: {
    readonly chunksDone: number;
    readonly chunksTotal: number;
    readonly tablesPlanned: number;
    readonly tookOverFrom: string | null;
  } | null;
  /** The data run whose copy this pass keeps in step (its chunk plans are the reconciliation's chunks). */
  readonly dataRunId: string;
  readonly levels: PlannedTable[][];
  readonly tables: number;
  readonly maxConcurrency: number;
  /** The source's clock as the pass began (UTC): the tables' next watermark. */
  readonly clock: string;
}

/** The newest data run that copied, unless a later one (or a rollback) replaced it: what sync follows. */
export async function followedDataRun(deps: TaskDeps): Promise<string> {
  const ledger = await targetHasTable(deps.targetServer, deps.targetUrl.database, 'migration_runs');
  const [latest] = !ledger
    ? []
    : await findRuns(deps.target, "phase = 'data' AND status <> 'refused'", [], 1);
  if (latest?.status === 'succeeded') return latest.runId;
  throw new SyncNotReady(
    latest === undefined
      ? 'no data run has copied the tables yet: run data first (npx shifu-migrate run data); sync keeps that copy in step'
      : `the latest data run ${latest.runId} is ${latest.status}: sync follows a finished copy. ${latest.status === 'rolled_back' ? 'Run data again' : 'Finish it first (npx shifu-migrate run data resumes it, rollback undoes it)'}`,
  );
}

/**
 * The columns sync writes must be on the target with the same types: a column added or changed on the source since
 * the copy would otherwise fail every repair of its table, or lose its values.
 */
async function assertTargetHoldsSource(
  deps: TaskDeps,
  context: RunContext,
  tables: readonly PlannedTable[],
): Promise<void> {
  const rows = await deps.targetServer.query(
    'SELECT TABLE_NAME AS t, COLUMN_NAME AS c, COLUMN_TYPE AS type FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?',
    [deps.targetUrl.database],
  );
  const target = new Map(rows.map((r) => [`${str(r, 't')}.${str(r, 'c')}`, str(r, 'type').toLowerCase()]));
  const problems: string[] = [];
  for (const planned of tables) {
    for (const column of copyColumns(tableInfo(context, planned.table))) {
      const type = target.get(`${planned.table}.${column.name}`);
      if (type === undefined) problems.push(`${planned.table}.${column.name} is not on the target`);
      else if (type !== column.columnType.toLowerCase())
        problems.push(
          `${planned.table}.${column.name} is ${column.columnType} on the source, ${type} on the target`,
        );
    }
  }
  if (problems.length > 0)
    throw new SourceSchemaChanged(
      `the source's tables changed since the copy: ${problems.slice(0, 8).join('; ')}${problems.length > 8 ? `; and ${problems.length - 8} more` : ''}. Make the same change on the target (its tables keep the source's columns, plus tenant_bid), then run sync again`,
    );
}

/**
 * Start: refuses a target that is the source, a config that does not fit, a source whose tables changed since the
 * copy, and a data phase that has not copied; takes the run lock (a pass in flight refuses this one: passes never
 * overlap); resumes the pass that was interrupted, or records a new one with the source's clock.
 */
export async function startSync(
  deps: TaskDeps,
  execution: string,
  options: {
    readonly full?: boolean | undefined;
    readonly under?: { runId: string; execution: string } | null | undefined;
  } = {},
): Promise<SyncStart> {
  await assertSourceIsNotTarget(deps);
  const schema = await introspect(deps.source, deps.sourceUrl.database);
  assertConfigFits(deps.config, schema);
  const dataRunId = await followedDataRun(deps);
  const [live] = await findRuns(deps.target, "phase = 'golive' AND status = 'succeeded'", [], 1);
  if (live !== undefined)
    throw new SyncNotReady(
      `go-live ${live.runId} finished: sync is stopped for good (legacy is archived and no longer follows the multi-tenant side). To go back to legacy: npx shifu-migrate rollback --phase application`,
    );
  const start = await beginRun(deps.target, 'sync', execution, {
    // A pass run for another run (a drain) starts afresh: it must begin after that run paused the writes.
    resumable: options.under == null,
    sourceClock: await sourceClock(deps.source),
    ...(options.under == null ? {} : { under: options.under }),
  });
  const { runId } = start;
  try {
    const context =
      start.resumed === null
        ? await saveRunContext(deps, runId, schema)
        : await runContext(deps, runId, { orRead: 'and-keep' });
    const levels = planLevels(deps, context.schema.tables);
    const tables = levels.flat();
    await assertTargetHoldsSource(deps, context, tables);
    for (const planned of tables) {
      const column = changeColumn(deps.config, tableInfo(context, planned.table));
      await deps.target.execute(
        'INSERT IGNORE INTO migration_sync_passes (run_id, table_name, change_column, full_pass) VALUES (?, ?, ?, ?)',
        [runId, planned.table, column?.name ?? null, options.full === true ? 1 : 0],
      );
    }
    const [run] = await deps.target.query('SELECT source_clock FROM migration_runs WHERE run_id = ?', [
      runId,
    ]);
    const [done] =
      start.resumed === null
        ? []
        : await deps.target.query(
            `SELECT COUNT(*) AS total, COALESCE(SUM(status <> 'planned'), 0) AS done, COUNT(DISTINCT table_name) AS tables
               FROM migration_sync_chunks WHERE run_id = ?`,
            [runId],
          );
    return {
      runId,
      resumed:
        start.resumed === null
          ? null
          : {
              chunksDone: done === undefined ? 0 : num(done, 'done'),
              chunksTotal: done === undefined ? 0 : num(done, 'total'),
              tablesPlanned: done === undefined ? 0 : num(done, 'tables'),
              tookOverFrom:
                start.tookOver === null
                  ? null
                  : `${describeHolder(start.tookOver)}: ${start.tookOver.stale ?? 'handed over'}`,
            },
      dataRunId,
      levels,
      tables: tables.length,
      maxConcurrency: deps.config.chunking.maxConcurrency,
      clock: run === undefined || run.source_clock === null ? '' : str(run, 'source_clock'),
    };
  } catch (error) {
    await failStart(deps.target, { runId, resumed: start.resumed !== null }, execution, error);
    throw error;
  }
}
