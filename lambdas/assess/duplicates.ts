import type { Config, ReferenceRuleConfig } from '../core/config/schema.ts';
import { tenantRules } from '../core/config/schema.ts';
import { ident, qualified } from '../core/identifiers.ts';
import { isUniqueColumn } from '../core/schema/keys.ts';
import type { TableInfo } from '../core/schema/types.ts';
import { num, str, strOrNull } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { finalTenantExpression, pickOrder, type RuleContext } from '../core/tenant/sql.ts';
import type { Problem } from './schema.ts';

/** How a rule's whenNotUnique reads in a message. */
function choiceText(rule: ReferenceRuleConfig, table: TableInfo): string {
  const c = rule.whenNotUnique;
  if (c === undefined)
    return table.columns.some((col) => col.name === 'updated_at')
      ? 'the newest updated_at (the default)'
      : 'the highest primary key (the default)';
  if (c === 'highestKey') return 'the highest primary key';
  if (c === 'lowestKey') return 'the lowest primary key';
  return 'newest' in c ? `the newest ${c.newest}` : `the oldest ${c.oldest}`;
}

/**
 * Where a referenced key is not unique (AI-Shifu re-registers users under an existing user_bid), rows that share
 * a key but map to different tenants are exactly where the rule's whenNotUnique decides which tenant every row
 * pointing at that key gets: a warning with the count and examples, per referencing rule's choice.
 */
export async function duplicateKeyTenants(
  deps: TaskDeps,
  config: Config,
  tables: ReadonlyMap<string, TableInfo>,
  table: TableInfo,
): Promise<Problem[]> {
  const rules = Object.entries(config.tables).flatMap(([child, r]) =>
    tenantRules(r).flatMap((rule) =>
      rule.by === 'reference' && rule.references.table === table.name ? [{ child, rule }] : [],
    ),
  );
  const ctx: RuleContext = { config, database: deps.sourceUrl.database, tables };
  const source = qualified(deps.sourceUrl.database, table.name);
  const problems: Problem[] = [];
  const seen = new Set<string>();
  for (const { rule } of rules) {
    const column = rule.references.column;
    if (isUniqueColumn(table, column) || !table.columns.some((c) => c.name === column)) continue;
    const choice = JSON.stringify([column, rule.whenNotUnique ?? null]);
    if (seen.has(choice)) continue;
    seen.add(choice);
    const children = rules
      .filter(
        (r) =>
          r.rule.references.column === column &&
          JSON.stringify(r.rule.whenNotUnique ?? null) === JSON.stringify(rule.whenNotUnique ?? null),
      )
      .map((r) => r.child);
    const tenant = finalTenantExpression(ctx, table.name, 'p');
    const deciding = finalTenantExpression(ctx, table.name, 'd');
    const key = ident(column, 'column');
    const shared = `SELECT p.${key} AS k, COUNT(*) AS n, COUNT(DISTINCT COALESCE(${tenant.sql}, '')) AS tenants,
                           GROUP_CONCAT(DISTINCT COALESCE(${tenant.sql}, '(none)') ORDER BY 1 SEPARATOR ', ') AS mapped
                      FROM ${source} p WHERE p.${key} IS NOT NULL AND p.${key} <> ''
                     GROUP BY p.${key} HAVING COUNT(DISTINCT COALESCE(${tenant.sql}, '')) > 1`;
    const sharedParams = [...tenant.params, ...tenant.params, ...tenant.params];
    const [counted] = await deps.source.query(`SELECT COUNT(*) AS keys_n FROM (${shared}) x`, sharedParams);
    const keys = counted === undefined ? 0 : num(counted, 'keys_n');
    if (keys === 0) continue;
    const examples = await deps.source.query(
      `SELECT x.k, x.n, x.mapped,
              (SELECT ${deciding.sql} FROM ${source} d WHERE d.${key} = x.k${pickOrder(table, 'd', column, rule.whenNotUnique)} LIMIT 1) AS decides
         FROM (${shared}) x ORDER BY x.k LIMIT 5`,
      [...deciding.params, ...sharedParams],
    );
    const shown = examples
      .map(
        (e) =>
          `${JSON.stringify(str(e, 'k'))} (${num(e, 'n')} rows: ${str(e, 'mapped')} → ${strOrNull(e, 'decides') ?? 'none'})`,
      )
      .join('; ');
    problems.push({
      severity: 'warning',
      code: 'duplicate-key-tenants',
      table: table.name,
      message: `${table.name}.${column}: ${keys} keys are shared by rows that map to different tenants, and ${children.join(', ')} take their tenant from it: ${choiceText(rule, table)} decides, e.g. ${shown}. Check the reference rule's whenNotUnique`,
    });
  }
  return problems;
}
