import { type Checksum, rangeChecksum } from '../core/checksum.ts';
import type { SqlParam } from '../core/sql/port.ts';
import { str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { chunkFromRow, copyColumns, copyKey, runContext, tableInfo } from './context.ts';
import { copyChunk } from './copy.ts';
import { ChunkChecksumMismatch } from './errors.ts';
import type { Chunk } from './schema.ts';

export const formatChecksum = (c: Checksum) => `${c.rows}:${c.sum}`;

/** Keys of a table's quarantined rows: they are in the source range but, on purpose, not in the target. */
export async function quarantinedKeys(deps: TaskDeps, table: string): Promise<SqlParam[][]> {
  const rows = await deps.target.query('SELECT row_key FROM migration_quarantine WHERE table_name = ?', [
    table,
  ]);
  return rows.map((r) => JSON.parse(str(r, 'row_key')) as SqlParam[]);
}

function inRange(chunk: Chunk, keyTuple: readonly SqlParam[]): boolean {
  // Integer single keys are compared exactly; anything else is kept (NOT IN over a few extra keys is harmless).
  const [k] = keyTuple;
  if (keyTuple.length !== 1 || typeof k !== 'number') return true;
  const after = chunk.after?.[0];
  const upTo = chunk.upTo?.[0];
  return (typeof after !== 'number' || k > after) && (typeof upTo !== 'number' || k <= upTo);
}

/** Compares one chunk on both sides (at the same time: different connections, often different servers). */
export async function compareChunk(
  deps: TaskDeps,
  runId: string,
  table: string,
  chunk: Chunk,
  quarantine: readonly SqlParam[][],
) {
  const context = await runContext(deps, runId);
  const info = tableInfo(context, table);
  const key = copyKey(info);
  const columns = copyColumns(info);
  const exclude = quarantine.filter((k) => inRange(chunk, k));
  const [source, target] = await Promise.all([
    rangeChecksum(deps.source, {
      database: deps.sourceUrl.database,
      table,
      columns,
      key,
      range: chunk,
      exclude,
    }),
    rangeChecksum(deps.target, { database: deps.targetUrl.database, table, columns, key, range: chunk }),
  ]);
  return { source, target, equal: source.rows === target.rows && source.sum === target.sum };
}

/**
 * Every chunk of a table compared on both sides: COUNT and a 64-bit checksum over every column and a NULL
 * bitmap, computed in SQL (quarantined rows left out of the source, tenant_bid out of the target). Copy Chunk
 * compares its chunk as soon as it is written (so the checksums of one chunk run while the next is copied);
 * this step compares the chunks not yet validated (a mismatch, a chunk copied before a crash). A chunk that
 * differs is copied again once and compared again; if it still differs the phase fails naming it.
 */
export async function validateTable(
  deps: TaskDeps,
  runId: string,
  table: string,
  mode: 'tenant' | 'global',
): Promise<{ table: string; chunks: number; rows: number; recopied: number }> {
  const recorded = await deps.target.query(
    'SELECT chunk_no, key_from, key_to, status, target_checksum FROM migration_chunks WHERE run_id = ? AND table_name = ? ORDER BY chunk_no',
    [runId, table],
  );
  const quarantine = mode === 'tenant' ? await quarantinedKeys(deps, table) : [];
  let rows = 0;
  let recopied = 0;
  for (const r of recorded) {
    const chunk: Chunk = chunkFromRow(r);
    if (str(r, 'status') === 'validated') {
      rows += Number(str(r, 'target_checksum').split(':')[0]);
      continue;
    }
    let result = await compareChunk(deps, runId, table, chunk, quarantine);
    const differed = !result.equal;
    if (differed) {
      recopied += 1;
      await copyChunk(deps, runId, table, mode, chunk, { force: true });
      result = await compareChunk(deps, runId, table, chunk, await quarantinedKeys(deps, table));
    }
    await deps.target.execute(
      'UPDATE migration_chunks SET source_checksum = ?, target_checksum = ?, status = ? WHERE run_id = ? AND table_name = ? AND chunk_no = ?',
      [
        formatChecksum(result.source),
        formatChecksum(result.target),
        result.equal ? 'validated' : 'mismatch',
        runId,
        table,
        chunk.n,
      ],
    );
    if (differed) deps.metrics.put('data', result.equal ? { ChunksRecopied: 1 } : { ChecksumMismatches: 1 });
    if (!result.equal) {
      throw new ChunkChecksumMismatch(
        `${table} chunk ${chunk.n} (key after ${JSON.stringify(chunk.after)} up to ${JSON.stringify(chunk.upTo)}) differs after a re-copy: source ${formatChecksum(result.source)}, target ${formatChecksum(result.target)}`,
      );
    }
    rows += result.target.rows;
  }
  await deps.target.execute(
    "UPDATE migration_progress SET status = 'validated', records_migrated = ?, completed_at = CURRENT_TIMESTAMP(3) WHERE phase = 'data' AND table_name = ?",
    [rows, table],
  );
  return { table, chunks: recorded.length, rows, recopied };
}
