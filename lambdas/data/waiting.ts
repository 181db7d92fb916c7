import type { ReferenceRuleConfig } from '../core/config/schema.ts';
import { ident, qualified } from '../core/identifiers.ts';
import type { SqlParam } from '../core/sql/port.ts';
import type { TaskDeps } from '../core/task.ts';
import { asText } from '../core/tenant/rules.ts';
import type { CopyJob, RunContext } from './context.ts';
import { referenceRules } from './context.ts';
import { keyIn, rowKeyText } from './exact.ts';
import { parentsOnTheWay, parentTenants } from './parents.ts';

/**
 * Of these keys, the source rows that wait for their parent (the rules do not map them, and a reference rule's
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
    const onTheWay = new Map<ReferenceRuleConfig, Set<string>>();
    for (const rule of rules) {
      const values = [
        ...new Set(
          rows.map((r) => asText(r[rule.column] ?? null)).filter((v): v is string => v !== null && v !== ''),
        ),
      ];
      const found = await parentTenants(deps, deps.target, context, rule, values);
      onTheWay.set(
        rule,
        await parentsOnTheWay(
          deps,
          deps.target,
          context,
          rule,
          values.filter((v) => !found.has(v)),
        ),
      );
    }
    for (const row of rows) {
      // Any reference rule's parent on its way, whichever rule maps the row (the server path asks the same).
      const waits = [...onTheWay].some(([rule, values]) =>
        values.has(asText(row[rule.column] ?? null) ?? ''),
      );
      if (waits) waiting.add(rowKeyText(info, key, row));
    }
  }
  return waiting;
}
