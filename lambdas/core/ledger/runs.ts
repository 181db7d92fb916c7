import { randomBytes } from 'node:crypto';
import { ident } from '../identifiers.ts';
import type { SqlSession } from '../sql/port.ts';
import { str } from '../sql/rows.ts';
import { LEDGER_TABLES, TABLE_OPTIONS } from './schema.ts';

export type Phase =
  | 'assess'
  | 'foundation'
  | 'data'
  | 'sync'
  | 'application'
  | 'integration'
  | 'golive'
  | 'rollback';
export type RunStatus = 'running' | 'succeeded' | 'failed' | 'rolled_back' | 'rollback_failed';

/** UTC now as DATETIME(3) text: values are strings, never JS Date. */
export function nowText(date = new Date()): string {
  return date.toISOString().replace('T', ' ').replace('Z', '');
}

/** Creates the ledger tables that are missing. Idempotent; the ledger is never dropped. */
export async function ensureLedger(target: SqlSession): Promise<void> {
  for (const table of LEDGER_TABLES) {
    await target.execute(
      `CREATE TABLE IF NOT EXISTS ${ident(table.name, 'table')} (\n  ${table.body}\n) ${TABLE_OPTIONS}`,
    );
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

export async function startRun(target: SqlSession, phase: Phase, runId = newRunId(phase)): Promise<string> {
  await target.execute('INSERT INTO migration_runs (run_id, phase, status, started_at) VALUES (?, ?, ?, ?)', [
    runId,
    phase,
    'running',
    nowText(),
  ]);
  return runId;
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
