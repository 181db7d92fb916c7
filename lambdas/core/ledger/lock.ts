import { hostname } from 'node:os';
import type { SqlSession } from '../sql/port.ts';
import { num, str } from '../sql/rows.ts';
import type { Phase } from './runs.ts';

/**
 * The run lock: one phase run, or one rollback, works on a target at a time (`migration_lock`, one row). The
 * holder names its run and its owner: the execution that works for it (`local:<host>:<pid>:<id>` for a local
 * run, the execution ARN on AWS). The owner's tasks (and, locally, its process) refresh the heartbeat; a holder
 * whose heartbeat is older than {@link LOCK_STALE_SECONDS}, or whose local process is gone, is stale, and a new
 * start may take the lock over, saying so. Times are the target server's, so client clocks do not matter.
 */

/** A heartbeat older than this makes the holder stale: longer than any pause between two tasks of a run. */
export const LOCK_STALE_SECONDS = 120;
/** How often a holder's tasks and local process refresh its heartbeat. */
export const HEARTBEAT_SECONDS = 10;

const NAME = 'target';

export interface LockHolder {
  readonly runId: string;
  readonly phase: Phase;
  readonly kind: 'run' | 'rollback';
  readonly owner: string;
  readonly acquiredAt: string;
  readonly heartbeatAt: string;
  /** Seconds since the last heartbeat, by the server's clock. */
  readonly idleSeconds: number;
  /** Why the holder no longer counts, or null while it is alive. */
  readonly stale: string | null;
}

/** A start, or a rollback, found the lock held by a live holder. */
export class RunLocked extends Error {
  override name = 'RunLocked';
  readonly holder: LockHolder | null;

  constructor(message: string, holder: LockHolder | null) {
    super(message);
    this.holder = holder;
  }
}

/** A task found that its run belongs to another execution now (it was taken over as stale). */
export class LockLost extends Error {
  override name = 'LockLost';
}

/** Local owners: `local:<host>:<pid>:<execution>` (local/engine/run.ts). */
export function localOwner(owner: string | null): { host: string; pid: number } | null {
  const match = /^local:([^:]+):(\d+):/.exec(owner ?? '');
  return match === null ? null : { host: match[1] ?? '', pid: Number(match[2]) };
}

/** Whether a local owner's process is known to be gone (same host, no such pid). */
export function localProcessGone(owner: string | null): boolean {
  const local = localOwner(owner);
  if (local === null || local.host !== hostname()) return false;
  try {
    process.kill(local.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Who holds the lock, in words: `data run data-… (local process 4242 on vm, heartbeat 3 s ago)`. */
export function describeHolder(holder: LockHolder): string {
  const local = localOwner(holder.owner);
  const where = local === null ? `execution ${holder.owner}` : `local process ${local.pid} on ${local.host}`;
  const what = holder.kind === 'rollback' ? `a rollback of ${holder.phase}` : `${holder.phase} run`;
  return `${what} ${holder.runId} (${where}, heartbeat ${Math.round(holder.idleSeconds)} s ago)`;
}

/** The holder, or null when nobody holds the lock (or the ledger has no lock table yet). */
export async function readLock(target: SqlSession): Promise<LockHolder | null> {
  const [row] = await target.query(
    `SELECT run_id, phase, kind, owner, acquired_at, heartbeat_at,
            TIMESTAMPDIFF(MICROSECOND, heartbeat_at, CURRENT_TIMESTAMP(3)) / 1000000 AS idle
       FROM migration_lock WHERE name = ?`,
    [NAME],
  );
  if (row === undefined) return null;
  const owner = str(row, 'owner');
  const idleSeconds = num(row, 'idle');
  const stale = localProcessGone(owner)
    ? 'its process is gone'
    : idleSeconds > LOCK_STALE_SECONDS
      ? `no heartbeat since ${str(row, 'heartbeat_at')} UTC`
      : null;
  return {
    runId: str(row, 'run_id'),
    phase: str(row, 'phase') as Phase,
    kind: str(row, 'kind') as LockHolder['kind'],
    owner,
    acquiredAt: str(row, 'acquired_at'),
    heartbeatAt: str(row, 'heartbeat_at'),
    idleSeconds,
    stale,
  };
}

export interface LockRequest {
  readonly runId: string;
  readonly phase: Phase;
  readonly kind: LockHolder['kind'];
  readonly owner: string;
}

/**
 * Takes the lock for `want`. Free: taken. Held by the same owner: its run and kind are updated (a phase's Catch
 * turning its run into its rollback). Held by a stale holder, or one `mayTakeOver` accepts: taken over in one
 * compare-and-set statement (two takers cannot both win), and the previous holder is returned. Otherwise
 * {@link RunLocked}, naming the holder and what to do.
 */
export async function acquireLock(
  target: SqlSession,
  want: LockRequest,
  mayTakeOver: (holder: LockHolder) => boolean = () => false,
): Promise<{ tookOver: LockHolder | null }> {
  for (let attempt = 0; attempt < 5; attempt += 1) {
    // INSERT IGNORE: 1 row when taken, 0 when held (ON DUPLICATE KEY UPDATE would count a held row as 1 under
    // the CLIENT_FOUND_ROWS flag mysql2 sets).
    const inserted = await target.execute(
      `INSERT IGNORE INTO migration_lock (name, run_id, phase, kind, owner, acquired_at, heartbeat_at)
       VALUES (?, ?, ?, ?, ?, CURRENT_TIMESTAMP(3), CURRENT_TIMESTAMP(3))`,
      [NAME, want.runId, want.phase, want.kind, want.owner],
    );
    if (inserted.affectedRows === 1) return { tookOver: null };
    const holder = await readLock(target);
    if (holder === null) continue;
    const same = holder.owner === want.owner;
    if (!same && holder.stale === null && !mayTakeOver(holder)) {
      throw new RunLocked(
        `the target is locked by ${describeHolder(holder)}: wait for it to end (npx shifu-migrate status), or stop and undo it (npx shifu-migrate rollback)`,
        holder,
      );
    }
    const taken = await target.execute(
      `UPDATE migration_lock SET run_id = ?, phase = ?, kind = ?, owner = ?, heartbeat_at = CURRENT_TIMESTAMP(3)${same ? '' : ', acquired_at = CURRENT_TIMESTAMP(3)'}
        WHERE name = ? AND owner = ? AND heartbeat_at = ?`,
      [want.runId, want.phase, want.kind, want.owner, NAME, holder.owner, holder.heartbeatAt],
    );
    if (taken.affectedRows === 1) return { tookOver: same ? null : holder };
  }
  const holder = await readLock(target);
  throw new RunLocked(
    `the run lock kept changing hands${holder === null ? '' : ` (now ${describeHolder(holder)})`}: try again`,
    holder,
  );
}

/**
 * A phase that runs another as a nested execution (application's sync passes) hands it the lock: the child's run
 * and execution hold it while the child works (its tasks check for exactly that), and hand it back when it ends.
 * Compare-and-set on the parent's run and owner: nothing is handed that the parent does not hold.
 */
export async function handLock(
  target: SqlSession,
  from: { readonly runId: string; readonly owner: string },
  to: {
    readonly runId: string;
    readonly phase: Phase;
    readonly kind: LockHolder['kind'];
    readonly owner: string;
  },
): Promise<boolean> {
  const moved = await target.execute(
    'UPDATE migration_lock SET run_id = ?, phase = ?, kind = ?, owner = ?, heartbeat_at = CURRENT_TIMESTAMP(3) WHERE name = ? AND run_id = ? AND owner = ?',
    [to.runId, to.phase, to.kind, to.owner, NAME, from.runId, from.owner],
  );
  return moved.affectedRows === 1;
}

/**
 * A parent's task takes the lock back from a nested run of its own that ended without handing it back (its
 * execution died): the lock held by any run whose parent is `runId` becomes the parent's again.
 */
export async function reclaimLock(
  target: SqlSession,
  parent: {
    readonly runId: string;
    readonly phase: Phase;
    readonly kind: LockHolder['kind'];
    readonly owner: string;
  },
): Promise<void> {
  await target.execute(
    `UPDATE migration_lock SET run_id = ?, phase = ?, kind = ?, owner = ?, heartbeat_at = CURRENT_TIMESTAMP(3)
      WHERE name = ? AND run_id IN (SELECT run_id FROM migration_runs WHERE parent_run_id = ? AND parent_execution = ?)`,
    [parent.runId, parent.phase, parent.kind, parent.owner, NAME, parent.runId, parent.owner],
  );
}

/** Gives the lock up, if `owner` still holds it (for `runId`, when given). */
export async function releaseLock(target: SqlSession, owner: string, runId?: string): Promise<void> {
  await target.execute(
    `DELETE FROM migration_lock WHERE name = ? AND owner = ?${runId === undefined ? '' : ' AND run_id = ?'}`,
    runId === undefined ? [NAME, owner] : [NAME, owner, runId],
  );
}

/** Refreshes the heartbeat of the lock `owner` holds (nothing when it holds none). */
export async function heartbeat(target: SqlSession, owner: string): Promise<void> {
  await target.execute(
    'UPDATE migration_lock SET heartbeat_at = CURRENT_TIMESTAMP(3) WHERE name = ? AND owner = ?',
    [NAME, owner],
  );
}

/**
 * Refreshes `owner`'s heartbeat every {@link HEARTBEAT_SECONDS} until the returned function is called. Errors are
 * ignored (the ledger may not exist yet; a lost connection is retried by the next beat).
 */
export function keepAlive(target: SqlSession, owner: string): () => void {
  const beat = (): void => {
    heartbeat(target, owner).catch(() => undefined);
  };
  const timer = setInterval(beat, HEARTBEAT_SECONDS * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
