import { randomBytes } from 'node:crypto';
import { ident } from '../identifiers.ts';
import type { SqlSession } from '../sql/port.ts';
import { str, strOrNull } from '../sql/rows.ts';
import { LEDGER_COLUMNS, LEDGER_TABLES, TABLE_OPTIONS } from './schema.ts';

export type Phase =
  | 'assess'
  | 'foundation'
  | 'data'
  | 'sync'
  | 'application'
  | 'integration'
  | 'golive'
  | 'rollback';

/**
 * What a run is doing or how it ended (`migration_runs.status`):
 * - `running`: its execution works on it (it holds the run lock; without a heartbeat it is stopped, resumable);
 * - `stopping`: a rollback stopped it; its tasks start no new work, and that rollback undoes it;
 * - `interrupted`: it stopped on an error that may pass (database unreachable, retries spent): nothing was
 *   undone, `run` resumes it, `rollback` undoes it;
 * - `succeeded`;
 * - `failed`: it failed and nothing undid it yet (its rollback never started);
 * - `refused`: it did not start work (the lock was held, the config does not fit the source, a rollback would
 *   have removed what another phase needs); nothing to undo;
 * - `rolling_back`: a rollback is removing what it did;
 * - `rolled_back`: what it did was removed;
 * - `rollback_failed`: its rollback stopped half-way: `rollback` finishes it.
 */
export type RunStatus =
  | 'running'
  | 'stopping'
  | 'interrupted'
  | 'succeeded'
  | 'failed'
  | 'refused'
  | 'rolling_back'
  | 'rolled_back'
  | 'rollback_failed';

/** Runs whose work may be in the target and not undone: what `rollback` without a phase looks for. */
export const UNFINISHED: readonly RunStatus[] = [
  'running',
  'stopping',
  'interrupted',
  'failed',
  'rolling_back',
  'rollback_failed',
];

/** An error as the ledger keeps it (a Catch's `$.error` has the same two fields as Error and Cause). */
export interface RunError {
  readonly name: string;
  readonly message: string;
}

/** UTC now as DATETIME(3) text: values are strings, never JS Date. */
export function nowText(date = new Date()): string {
  return date.toISOString().replace('T', ' ').replace('Z', '');
}

/** Whether the target database holds this table: the ledger does not exist before the first run. */
export async function targetHasTable(server: SqlSession, database: string, table: string): Promise<boolean> {
  const rows = await server.query(
    'SELECT 1 AS found FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
    [database, table],
  );
  return rows.length > 0;
}

/** Creates the ledger tables that are missing, and the columns a newer version added. Idempotent. */
export async function ensureLedger(target: SqlSession): Promise<void> {
  for (const table of LEDGER_TABLES) {
    await target.execute(
      `CREATE TABLE IF NOT EXISTS ${ident(table.name, 'table')} (\n  ${table.body}\n) ${TABLE_OPTIONS}`,
    );
  }
  const tables = [...new Set(LEDGER_COLUMNS.map((c) => c.table))];
  const present = new Set(
    (
      await target.query(
        `SELECT CONCAT(TABLE_NAME, '.', COLUMN_NAME) AS c FROM information_schema.COLUMNS
          WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (${tables.map(() => '?').join(', ')})`,
        tables,
      )
    ).map((r) => str(r, 'c')),
  );
  for (const { table, column, definition } of LEDGER_COLUMNS) {
    if (!present.has(`${table}.${column}`))
      await target.execute(`ALTER TABLE ${ident(table, 'table')} ADD COLUMN ${ident(column)} ${definition}`);
  }
  // Alarm names are compared as written ("Café" is not "cafe", one emoji not another): a ledger made before
  // gets the binary collation once.
  const [alarms] = await target.query(
    "SELECT COLLATION_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'migration_alarms' AND COLUMN_NAME = 'name'",
  );
  if (alarms !== undefined && str(alarms, 'c') !== 'utf8mb4_bin')
    await target.execute(
      'ALTER TABLE migration_alarms MODIFY name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL',
    );
}

/** A new run id: phase, UTC time and randomness, sortable by time. */
export function newRunId(phase: Phase, date = new Date()): string {
  const stamp = date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${phase}-${stamp}-${randomBytes(3).toString('hex')}`;
}

export async function startRun(
  target: SqlSession,
  phase: Phase,
  runId = newRunId(phase),
  executionId: string | null = null,
  status: RunStatus = 'running',
): Promise<string> {
  await target.execute(
    'INSERT INTO migration_runs (run_id, phase, status, started_at, execution_id) VALUES (?, ?, ?, ?, ?)',
    [runId, phase, status, nowText(), executionId],
  );
  return runId;
}

/** Work on a run the rollback state machine stopped: its tasks end with this instead of starting work. */
export class RunStopped extends Error {
  override name = 'RunStopped';
}

/** A rollback is undoing this phase: a new run now could lose rows to its deletes. */
export class RollbackInProgress extends Error {
  override name = 'RollbackInProgress';
}

/**
 * Refuses to start a run of a phase while a rollback is undoing that phase (a run of it is `stopping`). Once the
 * rollback ends, its runs are `rolled_back`; a rollback that died is finished by naming the phase.
 */
export async function assertNoRollback(target: SqlSession, phase: Phase): Promise<void> {
  const [stopping] = await target.query(
    "SELECT run_id FROM migration_runs WHERE phase = ? AND status IN ('stopping', 'rolling_back') LIMIT 1",
    [phase],
  );
  if (stopping !== undefined) {
    throw new RollbackInProgress(
      `a rollback is undoing ${phase} (run ${str(stopping, 'run_id')} is being rolled back): wait until it ends (npx shifu-migrate status); if it died, finish it with npx shifu-migrate rollback --phase ${phase === 'golive' ? 'application' : phase}`,
    );
  }
}

/**
 * Records an error on a run: the first one stays in error_name/error_message, later ones are added to
 * more_errors, one line each, never written over it (the same error twice is kept once).
 */
export async function recordError(target: SqlSession, runId: string, error: RunError): Promise<void> {
  const line = `${error.name}: ${error.message}`;
  // MySQL and MariaDB assign left to right: more_errors reads error_name before it is set.
  await target.execute(
    `UPDATE migration_runs
        SET more_errors = IF(error_name IS NULL OR (error_name = ? AND error_message = ?), more_errors, CONCAT_WS('\\n', more_errors, ?)),
            error_name = COALESCE(error_name, ?),
            error_message = COALESCE(error_message, ?)
      WHERE run_id = ?`,
    [error.name, error.message, line, error.name.slice(0, 100), error.message, runId],
  );
}

/**
 * Moves a run to `status` if it is in one of `from` (every status when omitted), in one statement, so a
 * status another process set meanwhile is never overwritten. Returns whether it moved.
 */
export async function setRunStatus(
  target: SqlSession,
  runId: string,
  status: RunStatus,
  options: { from?: readonly RunStatus[]; finished?: boolean; error?: RunError | undefined } = {},
): Promise<boolean> {
  const from = options.from ?? [];
  const finished = options.finished ?? !['running', 'stopping', 'rolling_back'].includes(status);
  const result = await target.execute(
    `UPDATE migration_runs SET status = ?, finished_at = ${finished ? '?' : 'NULL'}
      WHERE run_id = ?${from.length > 0 ? ` AND status IN (${from.map(() => '?').join(', ')})` : ''}`,
    [status, ...(finished ? [nowText()] : []), runId, ...from],
  );
  if (options.error !== undefined) await recordError(target, runId, options.error);
  return result.affectedRows > 0;
}

/**
 * Marks a running run succeeded, unless it was stopped meanwhile: the check and the write are one statement,
 * so a rollback that stopped the run is never overwritten.
 */
export async function succeedRun(target: SqlSession, runId: string): Promise<void> {
  if (!(await setRunStatus(target, runId, 'succeeded', { from: ['running'] }))) {
    const status = await runStatus(target, runId);
    throw new RunStopped(`run ${runId} is ${status ?? 'unknown'}: it cannot end as succeeded`);
  }
}

export async function runStatus(target: SqlSession, runId: string): Promise<RunStatus | undefined> {
  const [row] = await target.query('SELECT status FROM migration_runs WHERE run_id = ?', [runId]);
  return row === undefined ? undefined : (str(row, 'status') as RunStatus);
}

/** One row of migration_runs, as the CLI and the rollback read it. */
export interface RunRecord {
  readonly runId: string;
  readonly phase: Phase;
  readonly status: RunStatus;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly executionId: string | null;
  readonly error: RunError | null;
  /** Errors after the first, one per line. */
  readonly moreErrors: string[];
}

function toRecord(row: Readonly<Record<string, unknown>>): RunRecord {
  const r = row as Parameters<typeof str>[0];
  const name = strOrNull(r, 'error_name');
  return {
    runId: str(r, 'run_id'),
    phase: str(r, 'phase') as Phase,
    status: str(r, 'status') as RunStatus,
    startedAt: str(r, 'started_at'),
    finishedAt: strOrNull(r, 'finished_at'),
    executionId: 'execution_id' in r ? strOrNull(r, 'execution_id') : null,
    error: name === null ? null : { name, message: strOrNull(r, 'error_message') ?? '' },
    // A ledger made by an older version may lack more_errors until a phase runs (ensureLedger adds it).
    moreErrors: ('more_errors' in r ? (strOrNull(r, 'more_errors') ?? '') : '')
      .split('\n')
      .filter((l) => l !== ''),
  };
}

/** Runs matching a condition on migration_runs (parameters for its `?`), newest first. */
export async function findRuns(
  target: SqlSession,
  where: string,
  params: readonly (string | number)[] = [],
  limit = 100,
): Promise<RunRecord[]> {
  const rows = await target.query(
    `SELECT * FROM migration_runs WHERE ${where} ORDER BY started_at DESC, run_id DESC LIMIT ${Math.floor(limit)}`,
    params,
  );
  return rows.map(toRecord);
}

/**
 * Runs of `phase` still `running` or `interrupted` whose execution died, closed `failed` (`RunAbandoned`) by the run
 * that now holds the lock (`by`, never closed itself); `nested` limits it to the passes other runs started (drains).
 * Called only by a lock holder: none of those runs is at work.
 */
export async function closeAbandonedRuns(
  target: SqlSession,
  phase: Phase,
  by: string,
  why: string,
  nested = false,
): Promise<void> {
  await target.execute(
    `UPDATE migration_runs SET status = 'failed', finished_at = ?, error_name = COALESCE(error_name, 'RunAbandoned'),
            error_message = COALESCE(error_message, ?)
      WHERE phase = ?${nested ? ' AND parent_run_id IS NOT NULL' : ''} AND status IN ('running', 'interrupted') AND run_id <> ?`,
    [nowText(), `its execution ended before it finished; ${by} ${why}`, phase, by],
  );
}
