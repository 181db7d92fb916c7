import { type Checksum, rangeChecksum } from '../core/checksum.ts';
import { parseKeyTuple } from '../core/sql/keyset.ts';
import type { SqlParam, SqlSession } from '../core/sql/port.ts';
import { str } from '../core/sql/rows.ts';
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
): Promise<QuarantinedKey[]> {
  const rows = await session.query('SELECT row_key FROM migration_quarantine WHERE table_name = ?', [table]);
  return rows.map((r) => {
    const text = str(r, 'row_key');
    return { text, values: exactKeyValues(job.info, job.key, parseKeyTuple(text)) };
  });
}

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
