import { DatabaseUnreachable, InputError, TransientDatabaseError } from '../errors.ts';
import type { SqlSession } from '../sql/port.ts';
import { str } from '../sql/rows.ts';
import {
  acquireLock,
  describeHolder,
  handLock,
  type LockHolder,
  LockLost,
  RunLocked,
  readLock,
  releaseLock,
} from './lock.ts';
import {
  assertNoRollback,
  closeAbandonedRuns,
  ensureLedger,
  findRuns,
  newRunId,
  type Phase,
  type RunRecord,
  RunStopped,
  recordError,
  setRunStatus,
  startRun,
} from './runs.ts';

/** How a run began: a new run, or one resumed (and from whom the lock was taken over, if anyone). */
export interface RunStart {
  readonly runId: string;
  /** The run this start resumes (it was `running` without a live owner, or `interrupted`). */
  readonly resumed: RunRecord | null;
  /** The previous lock holder, when the lock was taken over from a stale one. */
  readonly tookOver: LockHolder | null;
}

/**
 * Begins a run of `phase` for `execution` under the run lock. A `resumable` phase resumes its newest run that is
 * `interrupted`, or `running` with a stale owner (killed, machine lost); otherwise a new run starts. A live holder
 * refuses the start ({@link RunLocked}, recorded as a `refused` run naming the holder). A stale holder's lock is
 * taken over explicitly, and a run it left `running` becomes `interrupted`.
 */
export async function beginRun(
  target: SqlSession,
  phase: Phase,
  execution: string,
  options: {
    resumable: boolean;
    configHash?: string;
    /** The source server's clock (UTC) as the run begins, kept for a new run (a resumed one keeps its own). */
    sourceClock?: string;
    /**
     * A nested run (a sync pass the application phase runs): the parent's run and execution, which hold the lock
     * and hand it to this run until it ends; never taken from anyone else.
     */
    under?: { readonly runId: string; readonly execution: string };
  },
): Promise<RunStart> {
  await ensureLedger(target);
  await assertNoRollback(target, phase);
  const [open] = options.resumable
    ? // A pass another run started (a drain) is never resumed: it had to begin after that run's pause.
      await findRuns(
        target,
        "phase = ? AND status IN ('running', 'interrupted') AND parent_run_id IS NULL",
        [phase],
        1,
      )
    : [];
  if (open !== undefined && options.configHash !== undefined) {
    const [row] = await target.query('SELECT config_hash FROM migration_runs WHERE run_id = ?', [open.runId]);
    const recorded = row === undefined || row.config_hash === null ? null : str(row, 'config_hash');
    if (recorded !== null && recorded !== options.configHash) {
      throw new RunConfigChanged(
        `${phase} run ${open.runId} was started with another config (its tenants, tenant rules or tables differ from this one), and resuming it would mix rows copied under two sets of rules: restore the config it ran with to resume it, or undo it (npx shifu-migrate rollback) and run ${phase} again`,
      );
    }
  }
  const runId = open?.runId ?? newRunId(phase);
  let tookOver: LockHolder | null = null;
  // A nested run remembers how its parent held the lock (phase and kind), to hand it back as it was.
  const parentLock = options.under === undefined ? null : await readLock(target);
  try {
    if (options.under === undefined)
      ({ tookOver } = await acquireLock(target, { runId, phase, kind: 'run', owner: execution }));
    else if (
      !(await handLock(
        target,
        { runId: options.under.runId, owner: options.under.execution },
        // A rollback's drain holds the lock as a rollback: nothing takes it over as a run to stop.
        { runId, phase, kind: parentLock?.kind ?? 'run', owner: execution },
      ))
    )
      throw new RunLocked(
        `this ${phase} pass runs for run ${options.under.runId}, which does not hold the run lock (it ended, or was stopped): nothing was done`,
        await readLock(target),
      );
  } catch (error) {
    if (error instanceof RunLocked) {
      const refused = await startRun(target, phase, newRunId(phase), execution, 'refused');
      await recordError(target, refused, { name: error.name, message: error.message });
      await setRunStatus(target, refused, 'refused');
    }
    throw error;
  }
  try {
    if (tookOver !== null && tookOver.runId !== runId) await abandonRun(target, tookOver, execution);
    // Passes other runs started whose execution died (the lock is this run's now, so none is at work): closed.
    await closeAbandonedRuns(target, phase, runId, 'took the lock over', true);
    const markParent = async () => {
      if (options.under !== undefined)
        await target.execute(
          'UPDATE migration_runs SET parent_run_id = ?, parent_execution = ?, parent_lock = ? WHERE run_id = ?',
          [
            options.under.runId,
            options.under.execution,
            parentLock === null ? null : `${parentLock.phase}/${parentLock.kind}`,
            runId,
          ],
        );
    };
    await markParent();
    if (open === undefined) {
      await startRun(target, phase, runId, execution);
      await markParent();
      if (options.configHash !== undefined || options.sourceClock !== undefined)
        await target.execute('UPDATE migration_runs SET config_hash = ?, source_clock = ? WHERE run_id = ?', [
          options.configHash ?? null,
          options.sourceClock ?? null,
          runId,
        ]);
    } else {
      const moved = await setRunStatus(target, runId, 'running', { from: ['running', 'interrupted'] });
      if (!moved)
        throw new RunStopped(
          `run ${runId} changed state while it was being resumed: see npx shifu-migrate status`,
        );
      // What stopped it before is history now: the first error of this attempt is its own.
      if (tookOver !== null)
        await recordError(target, runId, {
          name: 'RunAbandoned',
          message: `${describeHolder(tookOver)} stopped (${tookOver.stale}); resumed by ${execution}`,
        });
      await target.execute(
        `UPDATE migration_runs
            SET execution_id = ?,
                more_errors = IF(error_name IS NULL, more_errors, CONCAT_WS('\\n', more_errors, CONCAT('before it was resumed: ', error_name, ': ', COALESCE(error_message, '')))),
                error_name = NULL, error_message = NULL
          WHERE run_id = ?`,
        [execution, runId],
      );
    }
  } catch (error) {
    await giveLockBack(target, runId, execution);
    throw error;
  }
  return { runId, resumed: open ?? null, tookOver };
}

/**
 * Closes a run whose start failed before it did any work: a new run is `refused` (nothing to undo), a resumed one
 * `interrupted` again (its earlier work stays, resumable); the error is recorded and the lock given up.
 */
export async function failStart(
  target: SqlSession,
  start: { runId: string; resumed: boolean },
  execution: string,
  error: unknown,
): Promise<void> {
  const e = error instanceof Error ? error : new Error(String(error));
  await setRunStatus(target, start.runId, start.resumed ? 'interrupted' : 'refused', {
    from: ['running'],
    error: { name: e.name, message: e.message },
  }).catch(() => undefined);
  await giveLockBack(target, start.runId, execution).catch(() => undefined);
}

/**
 * A run ends: its lock is given up, or, for a nested run (a sync pass of the application phase), handed back to
 * the parent run that handed it over (as a `rollback` lock when the parent is rolling back).
 */
export async function giveLockBack(target: SqlSession, runId: string, execution: string): Promise<void> {
  const [row] = await target.query(
    `SELECT c.parent_run_id, c.parent_execution, c.parent_lock, p.phase, p.status FROM migration_runs c
       JOIN migration_runs p ON p.run_id = c.parent_run_id WHERE c.run_id = ?`,
    [runId],
  );
  if (row === undefined) {
    await releaseLock(target, execution, runId);
    return;
  }
  // As the parent held it; a parent that turned to its own rollback meanwhile holds it as a rollback.
  const [phase, kind] = (row.parent_lock === null ? '' : str(row, 'parent_lock')).split('/');
  await handLock(
    target,
    { runId, owner: execution },
    {
      runId: str(row, 'parent_run_id'),
      phase: (phase || str(row, 'phase')) as Phase,
      kind: str(row, 'status') === 'rolling_back' || kind === 'rollback' ? 'rollback' : 'run',
      owner: str(row, 'parent_execution'),
    },
  );
}

/**
 * Throws unless `runId` is `running` and `execution` holds the lock for it: called before a task starts work.
 * {@link RunStopped} when a rollback stopped the run; {@link LockLost} when another execution took it over.
 */
export async function assertRunOwner(target: SqlSession, runId: string, execution: string): Promise<void> {
  const [row] = await target.query(
    `SELECT r.status, r.execution_id, l.owner FROM migration_runs r
       LEFT JOIN migration_lock l ON l.name = 'target' AND l.run_id = r.run_id
      WHERE r.run_id = ?`,
    [runId],
  );
  if (row === undefined) throw new RunStopped(`run ${runId} is not in the ledger`);
  const status = str(row, 'status');
  const current = row.execution_id === null ? null : str(row, 'execution_id');
  // Taken over first: a run another execution resumed is that execution's, whatever it became since.
  if (current !== null && current !== execution) {
    throw new LockLost(
      `run ${runId} was taken over by ${current} (this execution's lock went stale) and is now ${status}: this execution stops`,
    );
  }
  if (status !== 'running')
    throw new RunStopped(
      `run ${runId} is ${status}: no new work starts${status === 'stopping' || status === 'rolling_back' ? ' (a rollback stopped it)' : ''}`,
    );
  const owner = row.owner === null ? null : str(row, 'owner');
  if (owner !== execution) {
    throw new LockLost(
      `run ${runId} is now worked on by ${owner ?? 'nobody'} (this execution's lock was taken over as stale): this execution stops`,
    );
  }
}

/**
 * Inside a transaction that writes for `runId`, before its writes: throws unless the run is `running` and
 * `execution` holds the lock for it, and keeps that row share-locked until the transaction ends. A rollback marks
 * the run `stopping` with an UPDATE of that row, which waits for every such transaction in flight to commit; one
 * that starts after it sees `stopping` and writes nothing. So no write lands after the rollback has begun undoing.
 */
export async function fenceRun(tx: SqlSession, runId: string, execution: string): Promise<void> {
  const [row] = await tx.query(
    `SELECT r.status FROM migration_runs r
       JOIN migration_lock l ON l.name = 'target' AND l.run_id = r.run_id AND l.owner = ?
      WHERE r.run_id = ? LOCK IN SHARE MODE`,
    [execution, runId],
  );
  if (row !== undefined && str(row, 'status') === 'running') return;
  await assertRunOwner(tx, runId, execution);
  throw new RunStopped(`run ${runId} is no longer running: no new work starts`);
}

/**
 * The phase's own rollback (its Catch) takes the run over from its work: `running` (or `failed`, `interrupted`)
 * becomes `rolling_back` and the lock turns into a rollback lock, in one statement that also checks this
 * execution still holds the lock for the run. A run a rollback state machine stopped is left to that rollback
 * ({@link RunStopped}); a run another execution took over is left to it ({@link LockLost}).
 */
export async function beginOwnRollback(
  target: SqlSession,
  phase: Phase,
  runId: string,
  execution: string,
  caught: { Error: string; Cause?: string | undefined } | undefined,
): Promise<void> {
  // What the Catch put at `$.error` is the run's first error, unless it met one before.
  if (caught !== undefined)
    await recordError(target, runId, { name: caught.Error, message: caught.Cause ?? caught.Error });
  for (let attempt = 0; attempt < 2; attempt += 1) {
    const moved = await target.execute(
      `UPDATE migration_runs r JOIN migration_lock l ON l.name = 'target' AND l.run_id = r.run_id AND l.owner = ?
          SET r.status = 'rolling_back', r.finished_at = NULL, l.kind = 'rollback', l.heartbeat_at = CURRENT_TIMESTAMP(3)
        WHERE r.run_id = ? AND r.status IN ('running', 'failed', 'interrupted', 'rolling_back', 'rollback_failed')`,
      [execution, runId],
    );
    if (moved.affectedRows > 0) return;
    const [run] = await findRuns(target, 'run_id = ?', [runId], 1);
    const [lock] = await target.query("SELECT owner FROM migration_lock WHERE name = 'target'");
    // rolling_back, rollback_failed: this execution's own rollback, retried after an error that may pass.
    if (
      run === undefined ||
      !['running', 'failed', 'interrupted', 'rolling_back', 'rollback_failed'].includes(run.status)
    ) {
      throw new RunStopped(
        `run ${runId} is ${run?.status ?? 'unknown'}: ${run?.status === 'stopping' ? 'the rollback that stopped it undoes it' : 'this execution does not roll it back'}`,
      );
    }
    if (lock !== undefined) {
      throw new LockLost(
        `run ${runId} is held by ${str(lock, 'owner')} now: this execution does not roll it back`,
      );
    }
    // Nobody holds the lock (it went stale and was released): take it for the rollback and try again.
    await acquireLock(target, { runId, phase, kind: 'run', owner: execution });
  }
  throw new LockLost(`run ${runId}: the lock could not be taken for its rollback`);
}

/**
 * The start of every rollback step: a phase's own Catch takes its run over ({@link beginOwnRollback}); the rollback
 * state machine took the lock in Take Lock, and each later step (or a retry) takes it again as its rollback run.
 */
export async function enterRollback(
  target: SqlSession,
  phase: Phase,
  execution: string,
  request:
    | { readonly kind: 'own'; readonly runId: string; readonly error: Parameters<typeof beginOwnRollback>[4] }
    | { readonly kind: 'phase' | 'runs'; readonly rollbackRunId: string },
): Promise<void> {
  if (request.kind === 'own') await beginOwnRollback(target, phase, request.runId, execution, request.error);
  else await acquireLock(target, { runId: request.rollbackRunId, phase, kind: 'rollback', owner: execution });
}

/** A rollback that could not remove everything: the message says what is left and how to finish it. */
export class RollbackIncomplete extends Error {
  override name = 'RollbackIncomplete';
}

/**
 * What a rollback that could not remove everything throws: when every cause is an error that may pass (connections
 * lost, the server restarting), a {@link TransientDatabaseError}, so that the state machine retries the whole
 * rollback (it is idempotent); otherwise {@link RollbackIncomplete}, which ends it.
 */
export function rollbackFailure(message: string, causes: readonly unknown[]): Error {
  const transient =
    causes.length > 0 &&
    causes.every((c) => c instanceof TransientDatabaseError || c instanceof DatabaseUnreachable);
  return transient
    ? new TransientDatabaseError(`${message} (an error that may pass: the rollback is retried)`, undefined, {
        cause: causes[0],
      })
    : new RollbackIncomplete(message);
}

/** A run would be resumed under another config than it was started with. */
export class RunConfigChanged extends InputError {
  override name = 'RunConfigChanged';
}

/**
 * The run a stale lock holder left behind (its process gone, no heartbeat): `interrupted`, with why, when another
 * execution takes the lock over. A run it never started, or one already ended, is left as it is.
 */
export async function abandonRun(target: SqlSession, holder: LockHolder, by: string): Promise<void> {
  await setRunStatus(target, holder.runId, 'interrupted', {
    from: ['running'],
    error: {
      name: 'RunAbandoned',
      message: `${describeHolder(holder)} stopped (${holder.stale ?? 'handed over'}); the lock was taken over by ${by}`,
    },
  });
}
