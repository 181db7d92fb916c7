import { type Checksum, rangeChecksum } from '../core/checksum.ts';
import { parseKeyTuple } from '../core/sql/keyset.ts';
import type { Row, SqlParam, SqlSession } from '../core/sql/port.ts';
import { num, str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import {
  type CopyJob,
  copyColumns,
  copyKey,
  exactKeyValues,
  type KeyBounds,
  runContext,
  tableInfo,
} from './context.ts';

export const formatChecksum = (c: Checksum) => `${c.rows}:${c.sum}`;

/** A quarantined row's key: as stored (`row_key`, the text both copy paths build) and as values. */
export interface QuarantinedKey {
  readonly text: string;
  readonly values: SqlParam[];
}

/**
 * Keys of a table's quarantined rows: they are in the source range but, on purpose, not in the target. Integers
 * beyond 2^53 keep every digit.
 */
export async function quarantinedKeys(
  deps: TaskDeps,
  table: string,
  job: Pick<CopyJob, 'info' | 'key'>,
  /** Inside a transaction, its session: a second pooled connection taken while holding one can deadlock the pool. */
  session: SqlSession = deps.target,
  /**
   * Only the keys that may lie in this chunk of this run: those it quarantined (recorded with their chunk), and any
   * recorded otherwise (by another run, or an older version), which the caller filters by range.
   */
  chunk?: { readonly runId: string; readonly n: number },
): Promise<QuarantinedKey[]> {
  const keys: QuarantinedKey[] = [];
  // Page by page (a table may hold many quarantined rows; a response holds 1 MiB at most).
  for (let after = 0; ; ) {
    const rows = await session.query(
      `SELECT id, row_key FROM migration_quarantine WHERE table_name = ?${chunk === undefined ? '' : ' AND (run_id <> ? OR chunk_no IS NULL OR chunk_no = ?)'} AND id > ? ORDER BY id LIMIT ?`,
      [table, ...(chunk === undefined ? [] : [chunk.runId, chunk.n]), after, QUARANTINE_PAGE],
    );
    for (const r of rows) {
      const text = str(r, 'row_key');
      keys.push({ text, values: exactKeyValues(job.info, job.key, parseKeyTuple(text)) });
    }
    if (rows.length < QUARANTINE_PAGE) return keys;
    after = num(rows.at(-1) as Row, 'id');
  }
}

/** Quarantined keys read per statement: a few hundred KB at most. */
const QUARANTINE_PAGE = 5_000;

/**
 * Whether a key may fall into a chunk: integer single keys are compared exactly (bigints beyond 2^53 too);
 * anything else is kept (a few keys too many in a NOT IN, or checked once more, is harmless).
 */
export function mayBeInRange(chunk: KeyBounds, keyTuple: readonly SqlParam[]): boolean {
  // Integer keys arrive as numbers or bigints (exactKeyValues); a string key is never judged here.
  const integer = (v: SqlParam | undefined): bigint | undefined =>
    typeof v === 'bigint' ? v : typeof v === 'number' && Number.isInteger(v) ? BigInt(v) : undefined;
  const value = keyTuple.length === 1 ? integer(keyTuple[0]) : undefined;
  if (value === undefined) return true;
  const after = chunk.after?.[0];
  const upTo = chunk.upTo?.[0];
  const bound = integer;
  const lo = bound(after);
  const hi = bound(upTo);
  return (lo === undefined || value > lo) && (hi === undefined || value <= hi);
}

/** Compares one chunk on both sides (at the same time: different connections, often different servers). */
export async function compareChunk(
  deps: TaskDeps,
  runId: string,
  table: string,
  chunk: KeyBounds,
  quarantine: readonly QuarantinedKey[],
) {
  const context = await runContext(deps, runId);
  const info = tableInfo(context, table);
  const key = copyKey(info);
  const columns = copyColumns(info);
  const exclude = quarantine.filter((k) => mayBeInRange(chunk, k.values)).map((k) => k.values);
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
