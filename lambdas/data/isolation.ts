import { ident, qualified } from '../core/identifiers.ts';
import { num } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { tenantExpression } from '../core/tenant/sql.ts';
import { onUnmapped, referenceRules, runContext, targetRuleContext } from './context.ts';
import { TenantIsolationViolation } from './errors.ts';
import { planLevels } from './plan.ts';

export interface IsolationFinding {
  readonly table: string;
  /** Rows whose tenant_bid is not in tenant_tenants. */
  readonly unknownTenant: number;
  /** Rows whose tenant_bid is not what the rules give (evaluated on the target row). */
  readonly ruleMismatch: number;
  /** Rows whose tenant differs from the tenant of the row they take it from. */
  readonly parentMismatch: number;
}

/**
 * Tenant isolation on the target, read-only: every tenant_bid exists in tenant_tenants; every row's
 * tenant_bid equals what the rules give (column rules on the row itself, references against the parent's
 * row in the target, newest first); rows linked by a reference rule share their parent's tenant.
 */
export async function checkIsolation(
  deps: TaskDeps,
  runId: string,
  only?: string,
): Promise<IsolationFinding[]> {
  const context = await runContext(deps, runId);
  const ctx = targetRuleContext(deps, context, { joins: 'all' });
  const target = deps.targetUrl.database;
  const tables = planLevels(deps, context.schema.tables)
    .flat()
    .filter((p) => p.mode === 'tenant' && (only === undefined || p.table === only))
    .map((p) => p.table);
  // One pass per table: the rules' tenant (and the parent's, for a table whose only rule is a reference)
  // computed once per row in a derived table, then counted. Two tables at a time.
  const check = async (table: string): Promise<IsolationFinding> => {
    const rules = deps.config.tables[table];
    const single =
      referenceRules(deps.config, table).length === 1 &&
      rules?.tenant !== undefined &&
      !Array.isArray(rules.tenant);
    const raw = tenantExpression(ctx, table, 'a');
    const fill = onUnmapped(deps.config, table) === 'default';
    const [row] = await deps.target.query(
      `SELECT COUNT(*) - COUNT(tt.${ident('tenant_bid')}) AS unknown_tenant,
              COALESCE(SUM(NOT (x.tenant_bid <=> ${fill ? 'COALESCE(x.ruled, ?)' : 'x.ruled'})), 0) AS rule_mismatch,
              COALESCE(SUM(${single ? 'x.ruled IS NOT NULL AND x.ruled <> x.tenant_bid' : '0'}), 0) AS parent_mismatch
         FROM (SELECT a.${ident('tenant_bid')} AS tenant_bid, ${raw.sql} AS ruled FROM ${qualified(target, table)} a${(raw.joins ?? []).map((j) => ` ${j}`).join('')}) x
         LEFT JOIN ${qualified(target, 'tenant_tenants')} tt ON tt.${ident('tenant_bid')} = x.tenant_bid`,
      [...(fill ? [deps.config.defaultTenant] : []), ...raw.params],
    );
    return {
      table,
      unknownTenant: row === undefined ? 0 : num(row, 'unknown_tenant'),
      ruleMismatch: row === undefined ? 0 : num(row, 'rule_mismatch'),
      parentMismatch: row === undefined ? 0 : num(row, 'parent_mismatch'),
    };
  };
  const findings: IsolationFinding[] = [];
  const queue = [...tables];
  await Promise.all(
    Array.from({ length: 2 }, async () => {
      for (let table = queue.shift(); table !== undefined; table = queue.shift())
        findings.push(await check(table));
    }),
  );
  return tables.map((t) => findings.find((f) => f.table === t) as IsolationFinding);
}

/**
 * The data phase's isolation step for one table, once it and every table it takes its tenant from are complete
 * (later tables never write to it): fails naming what is wrong. A global table has nothing to check.
 */
export async function verifyIsolation(
  deps: TaskDeps,
  runId: string,
  table: string,
): Promise<{ table: string; violations: number }> {
  const findings = await checkIsolation(deps, runId, table);
  const bad = findings.filter((f) => f.unknownTenant + f.ruleMismatch + f.parentMismatch > 0);
  if (bad.length > 0) {
    throw new TenantIsolationViolation(
      `tenant isolation broken: ${bad
        .map(
          (f) =>
            `${f.table} (${f.unknownTenant} unknown tenant, ${f.ruleMismatch} not as the rules give, ${f.parentMismatch} not their parent's)`,
        )
        .join('; ')}`,
    );
  }
  return { table, violations: 0 };
}
