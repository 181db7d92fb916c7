import { rangeChecksum, rangeCondition } from '../core/checksum.ts';
import { assertRunOwner } from '../core/ledger/phase-run.ts';
import { str } from '../core/sql/rows.ts';
import { type TaskDeps, throwIfStopping } from '../core/task.ts';
import { mayBeInRange, type QuarantinedKey, quarantinedKeys } from '../data/compare.ts';
import {
  type CopyJob,
  chunkFromRow,
  copyJob,
  exactBounds,
  type KeyBounds,
  runContext,
} from '../data/context.ts';
import { ChunkCancelled } from '../data/errors.ts';
import { isWholePlan, type PublishedPlan, publishPlan } from '../data/plan.ts';
import type { Chunk } from '../data/schema.ts';
import { openConflictKeys } from './conflicts.ts';
import { differingKeys, repairInPass } from './repair.ts';
import { followedDataRun } from './start.ts';

/**
 * Checksum reconciliation: the chunks of the followed data run's plan (the whole key space of each table, the last
 * chunk open above, so rows added since are in it), compared with the same checksums `data` validates with. A pass
 * takes one slice of them in rotation (`sync.slices`); a chunk that differs is diffed row by row and repaired.
 */

/**
 * The chunks this pass reconciles of a table: recorded in migration_sync_chunks in one transaction (a resumed pass
 * finds them there), and published for the Distributed Map as data's are.
 */
export async function planReconcile(
  deps: TaskDeps,
  runId: string,
  execution: string,
  table: string,
): Promise<PublishedPlan> {
  await assertRunOwner(deps.target, runId, execution);
  const recorded = await deps.target.query(
    'SELECT chunk_no, key_from, key_to FROM migration_sync_chunks WHERE run_id = ? AND table_name = ? ORDER BY chunk_no',
    [runId, table],
  );
  if (recorded.length > 0) return publishPlan(deps, runId, table, recorded.map(chunkFromRow));
  const dataRunId = await followedDataRun(deps);
  const plan = (
    await deps.target.query(
      'SELECT chunk_no, key_from, key_to FROM migration_chunks WHERE run_id = ? AND table_name = ? ORDER BY chunk_no',
      [dataRunId, table],
    )
  ).map(chunkFromRow);
  const whole: Chunk[] = isWholePlan(plan) ? plan : [{ n: 0, after: null, upTo: null }];
  const slices = deps.config.sync.slices;
  const [mark] = await deps.target.query(
    'SELECT next_slice FROM migration_sync_watermarks WHERE table_name = ?',
    [table],
  );
  const [pass] = await deps.target.query(
    'SELECT full_pass FROM migration_sync_passes WHERE run_id = ? AND table_name = ?',
    [runId, table],
  );
  // A full pass (a drain) compares every chunk, and leaves the rotation where it was.
  const full = pass !== undefined && Number(pass.full_pass) === 1;
  const slice = full ? null : (mark === undefined ? 0 : Number(mark.next_slice ?? 0)) % slices;
  const chunks = slice === null ? whole : whole.filter((c) => c.n % slices === slice);
  await deps.target.transaction(async (tx) => {
    for (let i = 0; i < chunks.length; i += 500) {
      const part = chunks.slice(i, i + 500);
      await tx.execute(
        `INSERT INTO migration_sync_chunks (run_id, table_name, chunk_no, key_from, key_to) VALUES ${part.map(() => '(?, ?, ?, ?, ?)').join(', ')}`,
        part.flatMap((c) => [
          runId,
          table,
          c.n,
          c.after === null ? null : JSON.stringify(c.after),
          c.upTo === null ? null : JSON.stringify(c.upTo),
        ]),
      );
    }
    await tx.execute(
      'UPDATE migration_sync_passes SET slice_no = ?, chunks_planned = ? WHERE run_id = ? AND table_name = ?',
      [slice, chunks.length, runId, table],
    );
  });
  return publishPlan(deps, runId, table, chunks);
}

/**
 * A chunk's COUNT and checksum on both sides, as data compares them, leaving out quarantined rows on the source and
 * rows in an open tenant conflict on both sides (each left as it is on purpose, and reported).
 */
export async function compareLeavingOut(
  deps: TaskDeps,
  job: CopyJob,
  range: KeyBounds,
  held: readonly QuarantinedKey[],
  conflicts: readonly QuarantinedKey[],
): Promise<{ equal: boolean }> {
  const inRange = (keys: readonly QuarantinedKey[]) =>
    keys.filter((k) => mayBeInRange(range, k.values)).map((k) => k.values);
  const spec = { table: job.info.name, columns: job.columns, key: job.key, range };
  const [source, target] = await Promise.all([
    rangeChecksum(deps.source, {
      ...spec,
      database: deps.sourceUrl.database,
      exclude: [...inRange(held), ...inRange(conflicts)],
    }),
    rangeChecksum(deps.target, { ...spec, database: deps.targetUrl.database, exclude: inRange(conflicts) }),
  ]);
  return { equal: source.rows === target.rows && source.sum === target.sum };
}

export interface ReconciledChunk {
  readonly table: string;
  readonly n: number;
  /** equal: nothing to do; repaired: level now; changing: written again since (the next pass looks again); conflict: rows left to their tenant conflict. */
  readonly status: 'equal' | 'repaired' | 'changing' | 'conflict' | 'skipped';
  readonly applied: number;
  readonly deleted: number;
}

/**
 * One chunk: COUNT and checksum on both sides (quarantined rows left out of the source); when they differ, the
 * differing rows are repaired in one transaction together with the chunk's ledger row (a retry repeats nothing),
 * then compared again.
 */
export async function reconcileChunk(
  deps: TaskDeps,
  runId: string,
  execution: string,
  table: string,
  mode: 'tenant' | 'global',
  chunk: Chunk,
): Promise<ReconciledChunk> {
  const [row] = await deps.target.query(
    'SELECT status FROM migration_sync_chunks WHERE run_id = ? AND table_name = ? AND chunk_no = ?',
    [runId, table, chunk.n],
  );
  if (row === undefined)
    throw new ChunkCancelled(
      `${table} chunk ${chunk.n} is not in the sync ledger of ${runId}: plan the chunks first`,
    );
  if (str(row, 'status') !== 'planned')
    return { table, n: chunk.n, status: 'skipped', applied: 0, deleted: 0 };
  await assertRunOwner(deps.target, runId, execution);
  throwIfStopping(
    deps.signal,
    () => new ChunkCancelled(`${table} chunk ${chunk.n} not started: the pass is stopping`),
  );
  const context = await runContext(deps, runId);
  const job = copyJob(context, table);
  const bounds = exactBounds(job, chunk);
  const compare = async () => {
    const held = mode === 'tenant' ? await quarantinedKeys(deps, table, job) : [];
    const conflicts = await openConflictKeys(deps.target, job);
    return { held, conflicts, ...(await compareLeavingOut(deps, job, bounds, held, conflicts)) };
  };
  const first = await compare();
  const mark = async (
    status: ReconciledChunk['status'],
    applied: number,
    deleted: number,
    conflicts: number,
  ) =>
    deps.target.transaction(async (tx) => {
      const moved = await tx.execute(
        "UPDATE migration_sync_chunks SET status = ?, rows_applied = ?, rows_deleted = ?, conflicts = ? WHERE run_id = ? AND table_name = ? AND chunk_no = ? AND status = 'planned'",
        [status, applied, deleted, conflicts, runId, table, chunk.n],
      );
      if (moved.affectedRows === 0) return;
      await tx.execute(
        `UPDATE migration_sync_passes SET chunks_checked = chunks_checked + 1, chunks_repaired = chunks_repaired + ?, chunks_changing = chunks_changing + ?
          WHERE run_id = ? AND table_name = ?`,
        [status === 'repaired' ? 1 : 0, status === 'changing' || status === 'conflict' ? 1 : 0, runId, table],
      );
    });
  if (first.equal) {
    await mark('equal', 0, 0, 0);
    return { table, n: chunk.n, status: 'equal', applied: 0, deleted: 0 };
  }
  const differ = await differingKeys(deps, job, rangeCondition(job.key, bounds, 'a'), {
    held: new Set(first.held.map((q) => q.text)),
    conflicts: new Set(first.conflicts.map((q) => q.text)),
  });
  const counts = await repairInPass(deps, { runId, execution }, context, job, mode, differ);
  const again = await compare();
  const status = again.equal ? 'repaired' : counts.conflicts > 0 ? 'conflict' : 'changing';
  await mark(status, counts.applied, counts.deleted, counts.conflicts);
  if (status === 'repaired') deps.metrics.put('sync', { SyncChunksRepaired: 1 });
  return { table, n: chunk.n, status, applied: counts.applied, deleted: counts.deleted };
}
