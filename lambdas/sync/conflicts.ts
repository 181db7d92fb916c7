import { targetHasTable } from '../core/ledger/runs.ts';
import { parseKeyTuple } from '../core/sql/keyset.ts';
import type { SqlSession } from '../core/sql/port.ts';
import { str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import type { QuarantinedKey } from '../data/compare.ts';
import { type CopyJob, exactKeyValues } from '../data/context.ts';

/**
 * Rows in an open tenant conflict: sync left them as the target has them (or out of it), on purpose, so checksums
 * leave them out on both sides, as they leave quarantined rows out of the source. Every catch-up looks at them
 * again: a conflict settles once source and target agree (the row, or the rules, fixed).
 */
export async function openConflictKeys(
  deps: Pick<TaskDeps, 'targetServer' | 'targetUrl'>,
  session: SqlSession,
  job: Pick<CopyJob, 'info' | 'key'>,
): Promise<QuarantinedKey[]> {
  // A ledger made before sync existed has none (verify reads without creating anything).
  if (!(await targetHasTable(deps.targetServer, deps.targetUrl.database, 'migration_sync_conflicts')))
    return [];
  const rows = await session.query(
    'SELECT row_key FROM migration_sync_conflicts WHERE table_name = ? AND resolved_at IS NULL',
    [job.info.name],
  );
  return rows.map((r) => {
    const text = str(r, 'row_key');
    return { text, values: exactKeyValues(job.info, job.key, parseKeyTuple(text)) };
  });
}

/** Rows left waiting for their parent by an earlier pass: catch-up tries them again, changed or not. */
export async function waitingKeys(
  session: SqlSession,
  job: Pick<CopyJob, 'info' | 'key'>,
): Promise<QuarantinedKey[]> {
  const rows = await session.query('SELECT row_key FROM migration_sync_waiting WHERE table_name = ?', [
    job.info.name,
  ]);
  return rows.map((r) => {
    const text = str(r, 'row_key');
    return { text, values: exactKeyValues(job.info, job.key, parseKeyTuple(text)) };
  });
}
