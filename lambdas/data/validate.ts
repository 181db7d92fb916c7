import { setTimeout as sleep } from 'node:timers/promises';
import { str } from '../core/sql/rows.ts';
import { type TaskDeps, throwIfStopping } from '../core/task.ts';
import { compareChunk, formatChecksum, quarantinedKeys } from './compare.ts';
import { chunkFromRow, copyJob, exactBounds, type KeyBounds, runContext } from './context.ts';
import { copyChunk } from './copy.ts';
import { ChunkCancelled, ChunkChecksumMismatch } from './errors.ts';
import { confirmDefects, diffRows, type RowDiff } from './recheck.ts';
import type { Chunk } from './schema.ts';
import { rowsWaitingForParents } from './waiting.ts';

async function recordCheck(
  deps: TaskDeps,
  runId: string,
  table: string,
  chunk: KeyBounds,
  status: 'validated' | 'changing' | 'mismatch',
  check: Awaited<ReturnType<typeof compareChunk>>,
  changingRows = 0,
): Promise<void> {
  await deps.target.execute(
    'UPDATE migration_chunks SET source_checksum = ?, target_checksum = ?, status = ?, changing_rows = ?, isolated_at = NULL WHERE run_id = ? AND table_name = ? AND chunk_no = ?',
    [formatChecksum(check.source), formatChecksum(check.target), status, changingRows, runId, table, chunk.n],
  );
}

/**
 * Every chunk of a table compared on both sides: COUNT and a 64-bit checksum over every column and a NULL
 * bitmap, computed in SQL (quarantined rows left out of the source, tenant_bid out of the target). Validate
 * Chunk compares each chunk as soon as Copy Chunk has written it; this step compares the chunks not yet validated
 * (a mismatch, a chunk copied before a crash).
 *
 * The source is live (AI-Shifu keeps serving while it migrates): a chunk that differs is copied again, exactly
 * (the target range made equal to the source range as it is now, deletes included). If it still differs, its
 * differing rows are noted, and after `chunking.recheckDelaySeconds` (once for the whole table, as DMS waits
 * RecordFailureDelayInMinutes) it is copied exactly once more and diffed again. A row whose source looked the same
 * at both looks and still differs is put to a read-back test (its values written to the target and read back): if
 * the target does not hold them, that is a defect and the phase fails naming the rows. Otherwise the rows are being
 * written right now: the chunk is marked `changing` and left to the sync phase.
 */
export async function validateTable(
  deps: TaskDeps,
  runId: string,
  execution: string,
  table: string,
  mode: 'tenant' | 'global',
): Promise<{ table: string; chunks: number; rows: number; recopied: number; changing: number }> {
  const recorded = await deps.target.query(
    'SELECT chunk_no, key_from, key_to, status, target_checksum FROM migration_chunks WHERE run_id = ? AND table_name = ? ORDER BY chunk_no',
    [runId, table],
  );
  const job = copyJob(await runContext(deps, runId), table);
  const quarantine = async (n: number) =>
    mode === 'tenant' ? quarantinedKeys(deps, table, job, deps.target, { runId, n }) : [];
  let rows = 0;
  let recopied = 0;
  const unsettled: { chunk: Chunk; first: RowDiff }[] = [];
  for (const r of recorded) {
    const chunk = chunkFromRow(r);
    if (str(r, 'status') === 'validated') {
      rows += Number(str(r, 'target_checksum').split(':')[0]);
      continue;
    }
    const bounds = exactBounds(job, chunk);
    let result = await compareChunk(deps, runId, table, bounds, await quarantine(chunk.n));
    if (!result.equal) {
      recopied += 1;
      await copyChunk(deps, runId, execution, table, mode, chunk, { exact: true });
      result = await compareChunk(deps, runId, table, bounds, await quarantine(chunk.n));
      if (result.equal) deps.metrics.put('data', { ChunksRecopied: 1 });
    }
    if (result.equal) {
      await recordCheck(deps, runId, table, chunk, 'validated', result);
      rows += result.target.rows;
      continue;
    }
    unsettled.push({ chunk, first: await diffRows(deps, job, bounds) });
  }
  let changing = 0;
  if (unsettled.length > 0) {
    await sleep(deps.config.chunking.recheckDelaySeconds * 1000, undefined, { signal: deps.signal }).catch(
      () =>
        throwIfStopping(
          deps.signal,
          () => new ChunkCancelled(`${table}: validation stopped, the run is stopping`),
        ),
    );
    for (const { chunk, first } of unsettled) {
      const bounds = exactBounds(job, chunk);
      const recopy = () => copyChunk(deps, runId, execution, table, mode, chunk, { exact: true });
      await recopy();
      const second = await diffRows(deps, job, bounds);
      // Rows whose source looked the same at both looks and still differ: the source standing still, or flipping
      // back and forth; the read-back test tells them apart.
      const unchanged = [...second].filter(([k, now]) => first.get(k)?.source === now.source);
      // Rows waiting for a parent written after its table was copied: missing on purpose, sync copies them.
      const waiting = await rowsWaitingForParents(
        deps,
        await runContext(deps, runId),
        job,
        unchanged.filter(([, now]) => now.target === null).map(([, now]) => now.key),
      );
      const stable = unchanged.filter(([k]) => !waiting.has(k)).map(([, now]) => now);
      const defects = stable.length === 0 ? [] : await confirmDefects(deps, job, bounds, stable, recopy);
      const result = await compareChunk(deps, runId, table, bounds, await quarantine(chunk.n));
      if (defects.length > 0) {
        await recordCheck(deps, runId, table, chunk, 'mismatch', result);
        deps.metrics.put('data', { ChecksumMismatches: 1 });
        throw new ChunkChecksumMismatch(
          `${table} chunk ${chunk.n} (key after ${JSON.stringify(chunk.after)} up to ${JSON.stringify(chunk.upTo)}): ${defects.length} rows of the target do not hold what was just written to them (keys ${defects
            .slice(0, 5)
            .join(
              ', ',
            )}${defects.length > 5 ? ', …' : ''}), after two exact re-copies ${deps.config.chunking.recheckDelaySeconds} s apart: something writes the target (a trigger?), or the copy is wrong`,
        );
      }
      if (result.equal) {
        await recordCheck(deps, runId, table, chunk, 'validated', result);
      } else {
        changing += 1;
        await recordCheck(deps, runId, table, chunk, 'changing', result, Math.max(1, second.size));
      }
      rows += result.target.rows;
    }
  }
  await deps.target.execute(
    "UPDATE migration_progress SET status = ?, records_migrated = ?, completed_at = CURRENT_TIMESTAMP(3) WHERE phase = 'data' AND table_name = ?",
    [changing > 0 ? 'changing' : 'validated', rows, table],
  );
  return { table, chunks: recorded.length, rows, recopied, changing };
}
