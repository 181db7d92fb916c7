import { hostname } from 'node:os';
import { nowText, targetHasTable } from '../core/ledger/runs.ts';
import type { SqlClient } from '../core/sql/port.ts';
import { num, str, strOrNull } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { FUNCTIONS, ROLLBACK_PHASES } from '../registry.ts';
import type { PhaseExecutions } from './executions.ts';
import type { ControlInput, RollbackRequest } from './schema.ts';

type RollbackPhase = (typeof ROLLBACK_PHASES)[number];

/**
 * A chunk marked `copying` longer ago than the data function's timeout belongs to an invocation that has ended
 * (on Lambda, it cannot run longer): the rollback stops waiting for it.
 */
export const IN_FLIGHT_LIMIT_SECONDS = FUNCTIONS.DataFunctionArn.timeoutMinutes * 60;

export interface StopResult {
  /** The phase the rollback undoes; null when nothing is in flight or failed half-way and none was named. */
  readonly phase: RollbackPhase | null;
  /** The ledger runs of that phase that were in flight or failed half-way (now `stopping` or as they were). */
  readonly runs: string[];
  /** Step Functions executions stopped (AWS only). */
  readonly stoppedExecutions: string[];
  readonly alarm: string | null;
}

/** Local execution ids: `local:<host>:<pid>:<execution>` (local/engine/run.ts). */
function localProcessGone(executionId: string | null): boolean {
  const match = /^local:([^:]+):(\d+):/.exec(executionId ?? '');
  if (match === null || match[1] !== hostname()) return false;
  try {
    process.kill(Number(match[2]), 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * The first step of the rollback: which phase to undo, and its runs stopped. A run is in flight when the ledger
 * says `running`; failed half-way when `failed`; `stopping` when another rollback has it (taken over only when
 * the phase is named). On AWS the phase's RUNNING executions are stopped too, which also catches an execution
 * that has not yet written its run. Marking runs `stopping` is what stops them: their tasks check it first.
 */
export async function stopPhase(
  deps: TaskDeps,
  request: RollbackRequest,
  executions: PhaseExecutions | undefined,
): Promise<StopResult> {
  const alarm = request.alarm ?? null;
  // A `stopping` run belongs to a rollback already under way (the execution it stopped ends ABORTED, and that
  // alarm starts another rollback): only a rollback that names the phase takes it over.
  const statuses = request.phase === undefined ? ['running', 'failed'] : ['running', 'stopping', 'failed'];
  const candidates = (await targetHasTable(deps.targetServer, deps.targetUrl.database, 'migration_runs'))
    ? await deps.target.query(
        `SELECT run_id, phase, status, execution_id FROM migration_runs
          WHERE phase IN (${ROLLBACK_PHASES.map(() => '?').join(', ')}) AND status IN (${statuses.map(() => '?').join(', ')})
          ORDER BY started_at DESC`,
        [...ROLLBACK_PHASES, ...statuses],
      )
    : [];
  const running = new Map<RollbackPhase, string[]>();
  if (executions !== undefined) {
    for (const phase of ROLLBACK_PHASES) running.set(phase, await executions.running(phase));
  }
  const latest = candidates[0] === undefined ? undefined : (str(candidates[0], 'phase') as RollbackPhase);
  const phase =
    request.phase ?? latest ?? ROLLBACK_PHASES.find((p) => (running.get(p) ?? []).length > 0) ?? null;
  if (phase === null) return { phase, runs: [], stoppedExecutions: [], alarm };
  const runs = candidates.filter((r) => str(r, 'phase') === phase).map((r) => str(r, 'run_id'));
  if (runs.length > 0) {
    await deps.target.execute(
      `UPDATE migration_runs SET status = 'stopping', error_name = 'RunStopped', error_message = ?
        WHERE run_id IN (${runs.map(() => '?').join(', ')}) AND status = 'running'`,
      [`stopped by the rollback${alarm === null ? '' : ` (alarm ${alarm})`} at ${nowText()}`, ...runs],
    );
  }
  const stoppedExecutions: string[] = [];
  for (const arn of running.get(phase) ?? []) {
    await executions?.stop(arn, `rollback of ${phase}${alarm === null ? '' : ` started by alarm ${alarm}`}`);
    stoppedExecutions.push(arn);
  }
  return { phase, runs, stoppedExecutions, alarm };
}

/**
 * Chunks of the stopped runs still being copied: the rollback waits for them before deleting, so no copy writes
 * into a range after the rollback emptied it. A chunk whose local process is gone, or older than the function's
 * timeout, is not waited for.
 */
export async function chunksInFlight(target: SqlClient, runs: readonly string[]): Promise<number> {
  if (runs.length === 0) return 0;
  const rows = await target.query(
    `SELECT r.run_id, r.execution_id, COUNT(*) AS n FROM migration_chunks c JOIN migration_runs r ON r.run_id = c.run_id
      WHERE c.run_id IN (${runs.map(() => '?').join(', ')}) AND c.status = 'copying'
        AND c.updated_at > CURRENT_TIMESTAMP(3) - INTERVAL ? SECOND
      GROUP BY r.run_id, r.execution_id`,
    [...runs, IN_FLIGHT_LIMIT_SECONDS],
  );
  return rows
    .filter((r) => !localProcessGone(strOrNull(r, 'execution_id')))
    .reduce((sum, r) => sum + num(r, 'n'), 0);
}

export async function runControl(
  input: ControlInput,
  deps: TaskDeps,
  executions: PhaseExecutions | undefined,
): Promise<unknown> {
  switch (input.step) {
    case 'stop':
      return stopPhase(deps, input.request, executions);
    case 'in-flight':
      return { waiting: await chunksInFlight(deps.target, input.runs) };
  }
}
