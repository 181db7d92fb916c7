import { assertRunOwner } from '../core/ledger/phase-run.ts';
import { strOrNull } from '../core/sql/rows.ts';
import { type TaskDeps, throwIfStopping } from '../core/task.ts';
import { waitForGo } from '../core/throttle.ts';
import { compareChunk, formatChecksum, quarantinedKeys } from './compare.ts';
import { copyJob, exactBounds, runContext } from './context.ts';
import { copyClientSide } from './copy-client.ts';
import { copyServerSide } from './copy-server.ts';
import { ChunkCancelled } from './errors.ts';
import type { Chunk } from './schema.ts';

export interface ChunkResult {
  readonly table: string;
  readonly n: number;
  readonly rows: number;
  readonly quarantined: number;
  readonly skipped: boolean;
  readonly path: 'server' | 'client';
}

/** Server-side copy needs both databases on one server, reachable by the target's connection. */
export function copyPath(deps: TaskDeps): 'server' | 'client' {
  const wanted = deps.config.chunking.copyPath;
  if (wanted !== 'auto') return wanted;
  const { sourceUrl: s, targetUrl: t } = deps;
  const same =
    s.kind === 'mysql' && t.kind === 'mysql' && s.host === t.host && s.port === t.port && s.user === t.user;
  return same ? 'server' : 'client';
}

/**
 * Compares a chunk Copy Chunk has just copied (Validate Chunk, its own function): `validated` when both sides
 * agree; otherwise left `copied`, with both checksums, for Validate Table to copy again and judge. A chunk already
 * compared (checksums recorded), validated or changing is left as it is: the step is idempotent.
 */
export async function validateChunk(
  deps: TaskDeps,
  runId: string,
  execution: string,
  table: string,
  mode: 'tenant' | 'global',
  chunk: Chunk,
): Promise<{ table: string; n: number; equal: boolean | null }> {
  const [row] = await deps.target.query(
    'SELECT status, source_checksum FROM migration_chunks WHERE run_id = ? AND table_name = ? AND chunk_no = ?',
    [runId, table, chunk.n],
  );
  const status = row === undefined ? null : strOrNull(row, 'status');
  if (status === 'validated') return { table, n: chunk.n, equal: true };
  if (status !== 'copied' || strOrNull(row ?? {}, 'source_checksum') !== null)
    return { table, n: chunk.n, equal: null };
  await assertRunOwner(deps.target, runId, execution);
  const context = await runContext(deps, runId);
  const job = copyJob(context, table);
  const quarantine =
    mode === 'tenant' ? await quarantinedKeys(deps, table, job, deps.target, { runId, n: chunk.n }) : [];
  const check = await compareChunk(deps, runId, table, exactBounds(job, chunk), quarantine);
  await deps.target.execute(
    "UPDATE migration_chunks SET status = ?, source_checksum = ?, target_checksum = ?, isolated_at = NULL WHERE run_id = ? AND table_name = ? AND chunk_no = ? AND status = 'copied'",
    [
      check.equal ? 'validated' : 'copied',
      formatChecksum(check.source),
      formatChecksum(check.target),
      runId,
      table,
      chunk.n,
    ],
  );
  return { table, n: chunk.n, equal: check.equal };
}

/**
 * Copies one key range of a table into the target: each row with its tenant_bid by the rules, every column
 * value and id as they are, upserted by primary key so a retried or resumed chunk neither duplicates nor
 * loses a row. Unmapped rows follow onUnmapped: the default tenant, the quarantine table, or a failure.
 * With `exact` (a re-copy), the target range is made equal to the source range as it is now: rows the source no
 * longer has are deleted, and the quarantine follows (a row that maps now leaves it, a deleted row is dropped).
 */
export async function copyChunk(
  deps: TaskDeps,
  runId: string,
  execution: string,
  table: string,
  mode: 'tenant' | 'global',
  chunk: Chunk,
  options: { exact?: boolean } = {},
): Promise<ChunkResult> {
  const path = copyPath(deps);
  const exact = options.exact === true;
  if (!exact) {
    const [row] = await deps.target.query(
      'SELECT status, rows_copied FROM migration_chunks WHERE run_id = ? AND table_name = ? AND chunk_no = ?',
      [runId, table, chunk.n],
    );
    const status = row === undefined ? null : strOrNull(row, 'status');
    if (status === 'copied' || status === 'validated' || status === 'changing') {
      return { table, n: chunk.n, rows: Number(row?.rows_copied ?? 0), quarantined: 0, skipped: true, path };
    }
  }
  throwIfStopping(
    deps.signal,
    () => new ChunkCancelled(`${table} chunk ${chunk.n} not started: the run is stopping`),
  );
  // Paused (shifu-migrate pause) or a server over chunking.maxLoad: this chunk waits before it starts.
  await waitForGo(
    deps,
    `${table} chunk ${chunk.n}`,
    () => new ChunkCancelled(`${table} chunk ${chunk.n} not started: the run is stopping`),
  );
  await claimChunk(deps, runId, execution, table, chunk.n);
  try {
    return await copyClaimed(deps, runId, table, mode, chunk, path, exact);
  } catch (error) {
    // No longer in flight, whatever failed (the copy, or the comparison after it): a rollback waiting for
    // `copying` chunks need not wait for this one.
    await deps.target
      .execute(
        "UPDATE migration_chunks SET status = 'failed' WHERE run_id = ? AND table_name = ? AND chunk_no = ? AND status = 'copying'",
        [runId, table, chunk.n],
      )
      .catch(() => undefined);
    throw error;
  }
}

/** The work of a claimed chunk: copied (one transaction on the client path) and recorded `copied`. */
async function copyClaimed(
  deps: TaskDeps,
  runId: string,
  table: string,
  mode: 'tenant' | 'global',
  chunk: Chunk,
  path: 'server' | 'client',
  exact: boolean,
): Promise<ChunkResult> {
  const started = performance.now();
  const context = await runContext(deps, runId);
  const job = copyJob(context, table);
  const bounds = exactBounds(job, chunk);
  const result =
    path === 'server'
      ? await copyServerSide(deps, context, table, mode, bounds, job, exact)
      : // One transaction per chunk: its rows and quarantine rows land together, and the redo log is
        // flushed once per chunk instead of once per statement.
        await deps.target.transaction((tx) =>
          copyClientSide(deps, tx, context, table, mode, bounds, job, exact),
        );
  // Validate Table judges a re-copy itself: the chunk only stops being in flight. A first copy is compared next,
  // by Validate Chunk (its checksums cleared here say it has not been yet).
  await deps.target.execute(
    exact
      ? "UPDATE migration_chunks SET status = 'copied', rows_copied = ?, attempts = attempts + 1, isolated_at = NULL WHERE run_id = ? AND table_name = ? AND chunk_no = ?"
      : "UPDATE migration_chunks SET status = 'copied', rows_copied = ?, source_checksum = NULL, target_checksum = NULL, attempts = attempts + 1, isolated_at = NULL WHERE run_id = ? AND table_name = ? AND chunk_no = ?",
    [result.rows, runId, table, chunk.n],
  );
  if (exact) return { table, n: chunk.n, ...result, skipped: false, path };
  deps.metrics.put('data', {
    RowsCopied: result.rows,
    RowsQuarantined: result.quarantined,
    ChunkDuration: Math.round(performance.now() - started),
  });
  return { table, n: chunk.n, ...result, skipped: false, path };
}

/**
 * Marks the chunk `copying`, in the same statement that checks the run is still `running` and that this execution
 * holds the run lock for it: a rollback marks the run `stopping` first and then waits for `copying` chunks to end,
 * so no chunk writes into a range the rollback has already emptied, and an execution whose lock was taken over
 * copies nothing more.
 */
async function claimChunk(
  deps: TaskDeps,
  runId: string,
  execution: string,
  table: string,
  n: number,
): Promise<void> {
  const claimed = await deps.target.execute(
    `UPDATE migration_chunks c
       JOIN migration_runs r ON r.run_id = c.run_id
       JOIN migration_lock l ON l.name = 'target' AND l.run_id = c.run_id AND l.owner = ?
        SET c.status = 'copying', c.updated_at = CURRENT_TIMESTAMP(3)
      WHERE c.run_id = ? AND c.table_name = ? AND c.chunk_no = ? AND r.status = 'running'`,
    [execution, runId, table, n],
  );
  if (claimed.affectedRows === 0) {
    await assertRunOwner(deps.target, runId, execution);
    throw new ChunkCancelled(`${table} chunk ${n} is not in the ledger of ${runId}: plan the chunks first`);
  }
}
