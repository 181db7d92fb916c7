import {
  acquireLock,
  describeHolder,
  localProcessGone,
  RunLocked,
  readLock,
  releaseLock,
} from '../core/ledger/lock.ts';
import { abandonRun } from '../core/ledger/phase-run.ts';
import {
  closeAbandonedRuns,
  ensureLedger,
  findRuns,
  newRunId,
  nowText,
  recordError,
  setRunStatus,
  startRun,
  targetHasTable,
  UNFINISHED,
} from '../core/ledger/runs.ts';
import type { SqlClient } from '../core/sql/port.ts';
import { num, strOrNull } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { assertLegacyOwnsEveryTenant } from '../core/tenant/ownership.ts';
import { IN_FLIGHT_LIMIT_SECONDS, ROLLBACK_PHASES } from '../registry.ts';
import type { PhaseExecutions } from './executions.ts';
import type { ControlInput, RollbackRequest } from './schema.ts';

type RollbackPhase = (typeof ROLLBACK_PHASES)[number];

export interface StopResult {
  /** The phase the rollback undoes; null when nothing is in flight or failed half-way and none was named. */
  readonly phase: RollbackPhase | null;
  /** `runs`: only the unfinished runs found (no phase named); `phase`: the whole phase (named); `tenant`: one tenant of the application phase. */
  readonly scope: 'runs' | 'phase' | 'tenant';
  /** The tenant a `tenant` rollback takes back to legacy; null otherwise. */
  readonly tenant: string | null;
  /** The ledger runs of that phase that were unfinished (those `running` are now `stopping`). */
  readonly runs: string[];
  /** Step Functions executions stopped (AWS only). */
  readonly stoppedExecutions: string[];
  readonly alarm: string | null;
  /** The sync pass in flight this rollback stopped (nothing of it to undo), if any. */
  readonly stoppedSync: string | null;
}

/**
 * The first step of the rollback: which phase to undo, and its runs stopped. Unfinished runs (running, stopping,
 * interrupted, failed, rolling back, rollback failed) are what a rollback without a phase undoes, the newest
 * one's phase; a named phase is undone whole. A live lock holder that is not among the runs this rollback stops
 * (another phase's run, or a rollback already under way) refuses it ({@link RunLocked}), before anything is
 * marked. Marking runs `stopping` is what stops them: their tasks check it first. On AWS the phase's RUNNING
 * executions are stopped too, which also catches an execution that has not yet written its run.
 */
/**
 * The request of the newest rollback run whose execution died (`running`, and not the live holder of the lock):
 * what `rollback` with nothing named finishes. Only an application rollback needs it (its scope is not in the phase's
 * runs); data and foundation leave their runs `rolling_back`.
 */
async function deadRollbackRequest(deps: TaskDeps): Promise<{
  runId: string;
  phase: RollbackPhase;
  scope: 'runs' | 'phase' | 'tenant';
  tenant: string | null;
} | null> {
  const holder = (await targetHasTable(deps.targetServer, deps.targetUrl.database, 'migration_lock'))
    ? await readLock(deps.target)
    : null;
  const rows = await deps.target.query(
    "SELECT run_id, request FROM migration_runs WHERE phase = 'rollback' AND status IN ('running', 'interrupted') AND request IS NOT NULL ORDER BY started_at DESC LIMIT 5",
  );
  // The live holder, or the parent of the live drain that holds the lock, is at work: not dead.
  const [drain] =
    holder !== null && holder.stale === null
      ? await deps.target.query('SELECT parent_run_id FROM migration_runs WHERE run_id = ?', [holder.runId])
      : [];
  const live = new Set(
    holder === null || holder.stale !== null
      ? []
      : [holder.runId, ...(typeof drain?.parent_run_id === 'string' ? [drain.parent_run_id] : [])],
  );
  for (const row of rows) {
    if (live.has(String(row.run_id))) continue;
    try {
      const asked = JSON.parse(String(row.request)) as {
        phase?: string;
        scope?: 'runs' | 'phase' | 'tenant';
        tenant?: string | null;
      };
      if (asked.phase === 'application' && asked.scope !== undefined && asked.scope !== 'runs')
        return {
          runId: String(row.run_id),
          phase: 'application',
          scope: asked.scope,
          tenant: asked.tenant ?? null,
        };
    } catch {
      // Not a request this version wrote: nothing to finish from it.
    }
  }
  return null;
}

/** A rollback refused before it changed anything: recorded as a `refused` rollback run, the error given back to throw. */
async function refuseRollback(deps: TaskDeps, execution: string | undefined, refusal: Error): Promise<Error> {
  const refused = await startRun(deps.target, 'rollback', newRunId('rollback'), execution ?? null, 'refused');
  await recordError(deps.target, refused, { name: refusal.name, message: refusal.message });
  return refusal;
}

export async function stopPhase(
  deps: TaskDeps,
  asked: RollbackRequest,
  executions: PhaseExecutions | undefined,
  execution?: string,
): Promise<StopResult> {
  let request = asked;
  const alarm = request.alarm ?? null;
  const ledger = await targetHasTable(deps.targetServer, deps.targetUrl.database, 'migration_runs');
  // A ledger an older version made gets what this one writes (the lock table, more_errors).
  if (ledger) await ensureLedger(deps.target);
  // A go-live in flight, or left half-way, is the application phase's to take back: every tenant back to legacy.
  const candidates = (
    ledger
      ? await findRuns(
          deps.target,
          `phase IN (${[...ROLLBACK_PHASES, 'golive'].map(() => '?').join(', ')}) AND status IN (${UNFINISHED.map(() => '?').join(', ')})`,
          [...ROLLBACK_PHASES, 'golive', ...UNFINISHED],
        )
      : []
  ).map((r) =>
    r.phase === 'golive' ? { ...r, phase: 'application' as const, golive: true } : { ...r, golive: false },
  );
  if (candidates[0]?.golive === true && request.phase === undefined && request.tenant === undefined)
    request = { ...request, phase: 'application' };
  const running = new Map<RollbackPhase, string[]>();
  if (executions !== undefined) {
    for (const phase of ROLLBACK_PHASES) running.set(phase, await executions.running(phase));
  }
  // Tenants left paused (a rollback or a switch that died half-way): their writes wait, so the application phase
  // has something to finish even when none of its runs is unfinished.
  const paused =
    ledger && (await targetHasTable(deps.targetServer, deps.targetUrl.database, 'traffic_routing'))
      ? await deps.target.query(
          "SELECT tenant_bid FROM traffic_routing WHERE scope = 'tenant' AND target = 'paused' LIMIT 1",
        )
      : [];
  const latest =
    (candidates[0]?.phase as RollbackPhase | undefined) ?? (paused.length > 0 ? 'application' : undefined);
  // Nothing named: a rollback that died before it finished is finished as it was asked (its request is kept).
  // Something else named: refused until it is (it would be forgotten otherwise).
  const unfinished = ledger ? await deadRollbackRequest(deps) : null;
  const named_ = request.phase !== undefined || request.tenant !== undefined;
  if (
    unfinished !== null &&
    named_ &&
    !(
      (unfinished.scope === 'phase' && request.phase === 'application' && request.tenant === undefined) ||
      (unfinished.scope === 'tenant' && request.tenant === unfinished.tenant)
    )
  ) {
    const refusal = new RunLocked(
      `rollback ${unfinished.runId} (${unfinished.scope === 'tenant' ? `--tenant ${unfinished.tenant}` : '--phase application'}) died before it finished: finish it first (npx shifu-migrate rollback), then ask for this one`,
      null,
    );
    throw await refuseRollback(deps, execution, refusal);
  }
  if (unfinished !== null && !named_) {
    request = {
      ...request,
      phase: unfinished.phase,
      ...(unfinished.scope === 'tenant' && unfinished.tenant !== null ? { tenant: unfinished.tenant } : {}),
    };
    if (unfinished.scope === 'runs') request = { ...request, phase: undefined };
  }
  const named = request.phase ?? (request.tenant === undefined ? null : 'application');
  // Without a ledger no phase has written anything (each writes its ledger first): a named phase has nothing
  // to undo unless an execution of it is running (it may not have reached its ledger yet).
  const phase =
    named !== null && (ledger || (running.get(named) ?? []).length > 0)
      ? named
      : named === null
        ? (latest ?? ROLLBACK_PHASES.find((p) => (running.get(p) ?? []).length > 0) ?? null)
        : null;
  const scope = request.tenant !== undefined ? 'tenant' : request.phase === undefined ? 'runs' : 'phase';
  const tenant = request.tenant ?? null;
  const holder =
    ledger && (await targetHasTable(deps.targetServer, deps.targetUrl.database, 'migration_lock'))
      ? await readLock(deps.target)
      : null;
  // A sync pass in flight is stopped, not waited for: it has nothing to undo, and its repairs in flight commit
  // before its run is marked (fenceRun), so none lands after the rollback begins.
  // A pass another run drains with (the application phase, or a rollback of it) is that run's: not stopped here.
  const [nested] =
    holder?.phase === 'sync'
      ? await deps.target.query('SELECT parent_run_id FROM migration_runs WHERE run_id = ?', [holder.runId])
      : [];
  const syncPass =
    holder !== null &&
    holder.stale === null &&
    holder.kind === 'run' &&
    holder.phase === 'sync' &&
    (nested === undefined || nested.parent_run_id === null || nested.parent_run_id === undefined);
  const stopCause = `stopped by the rollback${alarm === null ? '' : ` (alarm ${alarm})`} at ${nowText()}`;
  if (phase === null) {
    // Nothing of any phase to undo, but an alarm (or the operator) stops the sync pass in flight: it ends here
    // (nothing to undo), and the lock is free for the next pass once the cause is dealt with.
    if (!syncPass) return { phase, scope, tenant, runs: [], stoppedExecutions: [], alarm, stoppedSync: null };
    await setRunStatus(deps.target, holder.runId, 'failed', {
      from: ['running'],
      error: { name: 'RunStopped', message: stopCause },
    });
    await releaseLock(deps.target, holder.owner, holder.runId);
    const stoppedExecutions: string[] = [];
    for (const arn of (await executions?.running('sync')) ?? []) {
      await executions?.stop(
        arn,
        `sync pass stopped by the rollback${alarm === null ? '' : ` (alarm ${alarm})`}`,
      );
      stoppedExecutions.push(arn);
    }
    return { phase, scope, tenant, runs: [], stoppedExecutions, alarm, stoppedSync: holder.runId };
  }
  const runs = candidates.filter((r) => r.phase === phase).map((r) => r.runId);
  // Undoing the copy while the multi-tenant side owns tenants would delete their writes: refused before anything
  // is stopped or locked.
  if (phase === 'data' || phase === 'foundation') {
    try {
      await assertLegacyOwnsEveryTenant(deps, `a rollback of ${phase}`);
    } catch (refusal) {
      throw await refuseRollback(deps, execution, refusal as Error);
    }
  }
  // The drain of a run this rollback stops (an application wave's sync pass) stops with it.
  const drainOfStopped =
    holder !== null &&
    holder.stale === null &&
    holder.kind === 'run' &&
    holder.phase === 'sync' &&
    typeof nested?.parent_run_id === 'string' &&
    runs.includes(nested.parent_run_id);
  if (
    holder !== null &&
    holder.stale === null &&
    !syncPass &&
    !drainOfStopped &&
    (holder.kind === 'rollback' || !runs.includes(holder.runId))
  ) {
    const refusal = new RunLocked(
      `${describeHolder(holder)} holds the target: ${holder.kind === 'rollback' ? 'wait for that rollback to end' : typeof nested?.parent_run_id === 'string' ? `it drains for ${nested.parent_run_id}: wait for it, or stop that run (npx shifu-migrate rollback --phase application)` : `stop that run first (npx shifu-migrate rollback --phase ${holder.phase})`}, then roll back ${phase}`,
      holder,
    );
    throw await refuseRollback(deps, execution, refusal);
  }
  // Its running runs, and the sync pass in flight, start no new work from now on.
  const stopping = [
    ...candidates.filter((r) => r.phase === phase && r.status === 'running').map((r) => r.runId),
    ...(syncPass || drainOfStopped ? [holder.runId] : []),
  ];
  for (const runId of stopping) {
    await deps.target.execute(
      "UPDATE migration_runs SET status = 'stopping' WHERE run_id = ? AND status = 'running'",
      [runId],
    );
    await recordError(deps.target, runId, { name: 'RunStopped', message: stopCause });
  }
  const stoppedExecutions: string[] = [];
  for (const arn of [
    ...(running.get(phase) ?? []),
    ...(syncPass ? ((await executions?.running('sync')) ?? []) : []),
  ]) {
    await executions?.stop(arn, `rollback of ${phase}${alarm === null ? '' : ` started by alarm ${alarm}`}`);
    stoppedExecutions.push(arn);
  }
  return {
    phase,
    scope,
    tenant,
    runs,
    stoppedExecutions,
    alarm,
    stoppedSync: syncPass ? holder.runId : null,
  };
}

/**
 * Chunks of the stopped runs still being copied: the rollback waits for them before deleting, so no copy writes
 * into a range after the rollback emptied it. A chunk whose local process is gone, or older than the function's
 * timeout, or of a run whose execution has ended (interrupted, rolled back or not: its tasks are over), is not
 * waited for.
 */
export async function chunksInFlight(target: SqlClient, runs: readonly string[]): Promise<number> {
  if (runs.length === 0) return 0;
  const rows = await target.query(
    `SELECT r.run_id, r.execution_id, COUNT(*) AS n FROM migration_chunks c JOIN migration_runs r ON r.run_id = c.run_id
      WHERE c.run_id IN (${runs.map(() => '?').join(', ')}) AND c.status = 'copying'
        AND r.status IN ('running', 'stopping')
        AND c.updated_at > CURRENT_TIMESTAMP(3) - INTERVAL ? SECOND
      GROUP BY r.run_id, r.execution_id`,
    [...runs, IN_FLIGHT_LIMIT_SECONDS],
  );
  return rows
    .filter((r) => !localProcessGone(strOrNull(r, 'execution_id')))
    .reduce((sum, r) => sum + num(r, 'n'), 0);
}

/**
 * Takes the run lock for the rollback, as a new `rollback` run: from nobody, from a stale holder, or from a run
 * this rollback stopped (its chunks in flight have ended; it starts no work). Anything else refuses.
 */
export async function lockForRollback(
  deps: TaskDeps,
  phase: RollbackPhase,
  runs: readonly string[],
  execution: string,
  asked: { readonly scope: 'runs' | 'phase' | 'tenant'; readonly tenant: string | null } = {
    scope: 'runs',
    tenant: null,
  },
): Promise<{ rollbackRunId: string }> {
  const rollbackRunId = newRunId('rollback');
  const stopping = new Set(
    runs.length === 0
      ? []
      : (
          await findRuns(
            deps.target,
            `run_id IN (${runs.map(() => '?').join(', ')}) AND status = 'stopping'`,
            [...runs],
          )
        ).map((r) => r.runId),
  );
  try {
    // Sync passes this rollback stopped: nothing to undo, so they end here (failed, with why).
    const syncStopped = new Set(
      (await findRuns(deps.target, "phase = 'sync' AND status = 'stopping'")).map((r) => r.runId),
    );
    const { tookOver } = await acquireLock(
      deps.target,
      { runId: rollbackRunId, phase, kind: 'rollback', owner: execution },
      (holder) => holder.kind === 'run' && (stopping.has(holder.runId) || syncStopped.has(holder.runId)),
    );
    for (const runId of syncStopped) await setRunStatus(deps.target, runId, 'failed', { from: ['stopping'] });
    // Rollback runs whose execution died (this one holds the lock now, so none of them is at work): closed.
    await closeAbandonedRuns(deps.target, 'rollback', rollbackRunId, 'took over');
    // A rollback (or run) that died holding the lock: its run says so instead of `running` for ever.
    if (tookOver !== null && tookOver.stale !== null) await abandonRun(deps.target, tookOver, execution);
  } catch (error) {
    if (error instanceof RunLocked) {
      await startRun(deps.target, 'rollback', rollbackRunId, execution, 'refused');
      await recordError(deps.target, rollbackRunId, { name: error.name, message: error.message });
    }
    throw error;
  }
  await startRun(deps.target, 'rollback', rollbackRunId, execution);
  await deps.target.execute('UPDATE migration_runs SET request = ? WHERE run_id = ?', [
    JSON.stringify({ phase, ...asked }),
    rollbackRunId,
  ]);
  return { rollbackRunId };
}

export async function runControl(
  input: ControlInput,
  deps: TaskDeps,
  executions: PhaseExecutions | undefined,
): Promise<unknown> {
  switch (input.step) {
    case 'stop':
      return stopPhase(deps, input.request, executions, input.execution);
    case 'in-flight':
      return { waiting: await chunksInFlight(deps.target, input.runs) };
    case 'lock':
      return lockForRollback(deps, input.phase, input.runs, input.execution, {
        scope: input.scope ?? 'runs',
        tenant: input.tenant ?? null,
      });
  }
}
