import { randomBytes } from 'node:crypto';
import { ident } from '../identifiers.ts';
import type { SqlSession } from '../sql/port.ts';
import { str } from '../sql/rows.ts';
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
/** `stopping`: the rollback state machine stopped the run; its tasks start no new work, the rollback undoes it. */
export type RunStatus = 'running' | 'stopping' | 'succeeded' | 'failed' | 'rolled_back' | 'rollback_failed';

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

/** Creates the ledger tables that are missing. Idempotent; the ledger is never dropped. */
export async function ensureLedger(target: SqlSession): Promise<void> {
  for (const table of LEDGER_TABLES) {
    await target.execute(
      `CREATE TABLE IF NOT EXISTS ${ident(table.name, 'table')} (\n  ${table.body}\n) ${TABLE_OPTIONS}`,
    );
  }
  for (const { table, column, definition } of LEDGER_COLUMNS) {
    const [present] = await target.query(
      'SELECT 1 AS found FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?',
      [table, column],
    );
    if (present === undefined)
      await target.execute(`ALTER TABLE ${ident(table, 'table')} ADD COLUMN ${ident(column)} ${definition}`);
  }
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
): Promise<string> {
  await target.execute(
    'INSERT INTO migration_runs (run_id, phase, status, started_at, execution_id) VALUES (?, ?, ?, ?, ?)',
    [runId, phase, 'running', nowText(), executionId],
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
    "SELECT run_id FROM migration_runs WHERE phase = ? AND status = 'stopping' LIMIT 1",
    [phase],
  );
  if (stopping !== undefined) {
    throw new RollbackInProgress(
      `a rollback is undoing ${phase} (run ${str(stopping, 'run_id')} is stopping): wait until it ends (npx shifu-migrate status); if it died, finish it with npx shifu-migrate rollback --phase ${phase}`,
    );
  }
}

/** Throws RunStopped unless the run is still `running`: called before a task of a run starts its work. */
export async function assertRunning(target: SqlSession, runId: string): Promise<void> {
  const status = await runStatus(target, runId);
  if (status !== 'running')
    throw new RunStopped(`run ${runId} is ${status ?? 'unknown'}: no new work starts (rollback in progress)`);
}

/**
 * Marks a running run succeeded, unless it was stopped meanwhile: the check and the write are one statement,
 * so a rollback that stopped the run is never overwritten.
 */
export async function succeedRun(target: SqlSession, runId: string): Promise<void> {
  const result = await target.execute(
    "UPDATE migration_runs SET status = 'succeeded', finished_at = ? WHERE run_id = ? AND status = 'running'",
    [nowText(), runId],
  );
  if (result.affectedRows === 0) await assertRunning(target, runId);
}

export async function finishRun(
  target: SqlSession,
  runId: string,
  status: Exclude<RunStatus, 'running'>,
  error?: { name: string; message: string },
): Promise<void> {
  await target.execute(
    'UPDATE migration_runs SET status = ?, finished_at = ?, error_name = COALESCE(?, error_name), error_message = COALESCE(?, error_message) WHERE run_id = ?',
    [status, nowText(), error?.name ?? null, error?.message ?? null, runId],
  );
}

export async function runStatus(target: SqlSession, runId: string): Promise<RunStatus | undefined> {
  const [row] = await target.query('SELECT status FROM migration_runs WHERE run_id = ?', [runId]);
  return row === undefined ? undefined : (str(row, 'status') as RunStatus);
}
