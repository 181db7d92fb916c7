import { setTimeout as sleep } from 'node:timers/promises';
import { rangeCondition, rowHashExpression } from '../core/checksum.ts';
import { ident, qualified } from '../core/identifiers.ts';
import type { SqlSession } from '../core/sql/port.ts';
import { str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { compareChunk, formatChecksum, quarantinedKeys } from './compare.ts';
import { chunkFromRow, copyJob, exactBounds, type KeyBounds, runContext } from './context.ts';
import { copyChunk } from './copy.ts';
import { ChunkChecksumMismatch } from './errors.ts';
import { rowKeyText } from './exact.ts';
import type { Chunk } from './schema.ts';

/** Rows of one chunk that differ between the sides: key text → each side's row hash (null: no such row). */
type RowDiff = Map<string, { source: string | null; target: string | null }>;

/** Row by row, the rows of a chunk that differ (quarantined rows, absent from the target on purpose, left out). */
async function diffRows(deps: TaskDeps, runId: string, table: string, chunk: KeyBounds): Promise<RowDiff> {
  const { info, key, columns } = copyJob(await runContext(deps, runId), table);
  const held = new Set((await quarantinedKeys(deps, table, { info, key })).map((q) => q.text));
  const range = rangeCondition(key, chunk, 'a');
  const read = async (session: SqlSession, database: string) => {
    const rows = await session.query(
      `SELECT ${key.map((k) => `a.${ident(k)}`).join(', ')}, ${rowHashExpression(columns, 'a')} AS row_hash
         FROM ${qualified(database, table)} a WHERE ${range.sql}`,
      range.params,
    );
    return new Map(rows.map((row) => [rowKeyText(info, key, row), str(row, 'row_hash')]));
  };
  const [source, target] = await Promise.all([
    read(deps.source, deps.sourceUrl.database),
    read(deps.target, deps.targetUrl.database),
  ]);
  const diff: RowDiff = new Map();
  for (const [k, hash] of source) {
    if (held.has(k)) continue;
    const other = target.get(k) ?? null;
    if (other !== hash) diff.set(k, { source: hash, target: other });
  }
  for (const [k, hash] of target) if (!source.has(k)) diff.set(k, { source: null, target: hash });
  return diff;
}

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
    'UPDATE migration_chunks SET source_checksum = ?, target_checksum = ?, status = ?, changing_rows = ? WHERE run_id = ? AND table_name = ? AND chunk_no = ?',
    [formatChecksum(check.source), formatChecksum(check.target), status, changingRows, runId, table, chunk.n],
  );
}

/**
 * Every chunk of a table compared on both sides: COUNT and a 64-bit checksum over every column and a NULL
 * bitmap, computed in SQL (quarantined rows left out of the source, tenant_bid out of the target). Copy Chunk
 * compares its chunk as soon as it is written; this step compares the chunks not yet validated (a mismatch, a
 * chunk copied before a crash).
 *
 * The source is live (AI-Shifu keeps serving while it migrates): a chunk that differs is copied again, exactly
 * (the target range made equal to the source range as it is now, deletes included). If it still differs, its
 * differing rows are noted, and after `chunking.recheckDelaySeconds` (once for the whole table, as DMS waits
 * RecordFailureDelayInMinutes) it is copied exactly once more and diffed again. Rows whose source content was
 * the same at both looks and that still differ are a defect: the phase fails naming them. Rows that changed in
 * between are being written right now: the chunk is marked `changing` and left to the sync phase.
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
  const quarantine = async () => (mode === 'tenant' ? quarantinedKeys(deps, table, job) : []);
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
    let result = await compareChunk(deps, runId, table, bounds, await quarantine());
    if (!result.equal) {
      recopied += 1;
      await copyChunk(deps, runId, execution, table, mode, chunk, { exact: true });
      result = await compareChunk(deps, runId, table, bounds, await quarantine());
      if (result.equal) deps.metrics.put('data', { ChunksRecopied: 1 });
    }
    if (result.equal) {
      await recordCheck(deps, runId, table, chunk, 'validated', result);
      rows += result.target.rows;
      continue;
    }
    unsettled.push({ chunk, first: await diffRows(deps, runId, table, bounds) });
  }
  let changing = 0;
  if (unsettled.length > 0) {
    await sleep(deps.config.chunking.recheckDelaySeconds * 1000, undefined, { signal: deps.signal });
    for (const { chunk, first } of unsettled) {
      await copyChunk(deps, runId, execution, table, mode, chunk, { exact: true });
      const bounds = exactBounds(job, chunk);
      const second = await diffRows(deps, runId, table, bounds);
      const result = await compareChunk(deps, runId, table, bounds, await quarantine());
      const stable = [...second].filter(([k, now]) => {
        const before = first.get(k);
        return before !== undefined && before.source === now.source;
      });
      if (stable.length > 0) {
        await recordCheck(deps, runId, table, chunk, 'mismatch', result);
        deps.metrics.put('data', { ChecksumMismatches: 1 });
        throw new ChunkChecksumMismatch(
          `${table} chunk ${chunk.n} (key after ${JSON.stringify(chunk.after)} up to ${JSON.stringify(chunk.upTo)}): ${stable.length} rows differ from the source although the source did not change them between two looks ${deps.config.chunking.recheckDelaySeconds} s apart, after two exact re-copies (keys ${stable
            .slice(0, 5)
            .map(([k]) => k)
            .join(
              ', ',
            )}${stable.length > 5 ? ', …' : ''}): something writes the target, or the copy is wrong`,
        );
      }
      if (second.size === 0) {
        await recordCheck(deps, runId, table, chunk, 'validated', result);
        rows += result.target.rows;
      } else {
        changing += 1;
        await recordCheck(deps, runId, table, chunk, 'changing', result, second.size);
        rows += result.target.rows;
      }
    }
  }
  await deps.target.execute(
    "UPDATE migration_progress SET status = ?, records_migrated = ?, completed_at = CURRENT_TIMESTAMP(3) WHERE phase = 'data' AND table_name = ?",
    [changing > 0 ? 'changing' : 'validated', rows, table],
  );
  return { table, chunks: recorded.length, rows, recopied, changing };
}
