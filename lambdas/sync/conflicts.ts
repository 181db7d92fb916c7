import { parseKeyTuple } from '../core/sql/keyset.ts';
import type { SqlSession } from '../core/sql/port.ts';
import { str } from '../core/sql/rows.ts';
import type { QuarantinedKey } from '../data/compare.ts';
import { type CopyJob, exactKeyValues } from '../data/context.ts';

/** The row keys of a sync ledger table for one migrated table: as stored, and as values. */
async function keysIn(
  session: SqlSession,
  sql: string,
  job: Pick<CopyJob, 'info' | 'key'>,
): Promise<QuarantinedKey[]> {
  const rows = await session.query(sql, [job.info.name]);
  return rows.map((r) => {
    const text = str(r, 'row_key');
    return { text, values: exactKeyValues(job.info, job.key, parseKeyTuple(text)) };
  });
}

/**
 * Rows in an open tenant conflict: sync left them as the target has them (or out of it), on purpose, so checksums
 * leave them out on both sides, as they leave quarantined rows out of the source. Every catch-up looks at them
 * again: a conflict settles once source and target agree (the row, or the rules, fixed).
 */
export function openConflictKeys(
  session: SqlSession,
  job: Pick<CopyJob, 'info' | 'key'>,
): Promise<QuarantinedKey[]> {
  return keysIn(
    session,
    'SELECT row_key FROM migration_sync_conflicts WHERE table_name = ? AND resolved_at IS NULL',
    job,
  );
}

/** Rows left waiting for their parent by an earlier pass: catch-up tries them again, changed or not. */
export function waitingKeys(
  session: SqlSession,
  job: Pick<CopyJob, 'info' | 'key'>,
): Promise<QuarantinedKey[]> {
  return keysIn(session, 'SELECT row_key FROM migration_sync_waiting WHERE table_name = ?', job);
}
