import { ident, qualified } from '../core/identifiers.ts';
import type { SqlParam } from '../core/sql/port.ts';
import type { TaskDeps } from '../core/task.ts';
import { rowTenant } from '../core/tenant/rules.ts';
import type { CopyJob, RunContext } from './context.ts';
import { referenceRules } from './context.ts';
import { keyIn, rowKeyText } from './exact.ts';
import { referenceLookups } from './parents.ts';

/**
 * Of these keys, the source rows that wait for their parent (the rules give them no tenant, and a reference rule's
 * parent row is on the source but not yet on the target): by key text. They are missing from the target on purpose
 * (neither copy path writes them), so a chunk that lacks only them is left to sync, never judged a defect.
 */
export async function rowsWaitingForParents(
  deps: TaskDeps,
  context: RunContext,
  job: CopyJob,
  keys: readonly (readonly SqlParam[])[],
): Promise<Set<string>> {
  const { info, key, columns } = job;
  const rules = referenceRules(deps.config, info.name);
  const waiting = new Set<string>();
  if (rules.length === 0 || keys.length === 0) return waiting;
  for (let i = 0; i < keys.length; i += 500) {
    const where = keyIn(key, keys.slice(i, i + 500), 'a');
    const rows = await deps.source.query(
      `SELECT ${columns.map((c) => `a.${ident(c.name)}`).join(', ')} FROM ${qualified(deps.sourceUrl.database, info.name)} a WHERE ${where.sql}`,
      where.params,
    );
    const parents = await referenceLookups(deps, deps.target, context, rules, rows);
    for (const row of rows)
      if (rowTenant(deps.config, info.name, row, parents.lookup) === null && parents.waits(row))
        waiting.add(rowKeyText(info, key, row));
  }
  return waiting;
}
