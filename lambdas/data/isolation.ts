import { ident, qualified } from '../core/identifiers.ts';
import { scalarNumber } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { finalTenantExpression, tenantExpression } from '../core/tenant/sql.ts';
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
export async function checkIsolation(deps: TaskDeps, runId: string): Promise<IsolationFinding[]> {
  const context = await runContext(deps, runId);
  const ctx = targetRuleContext(deps, context);
  const target = deps.targetUrl.database;
  const findings: IsolationFinding[] = [];
  for (const { table, mode } of planLevels(
    deps,
    context.schema.tables.map((t) => t.name),
  ).flat()) {
    if (mode !== 'tenant') continue;
    const t = qualified(target, table);
    const unknownTenant = scalarNumber(
      await deps.target.query(
        `SELECT COUNT(*) AS n FROM ${t} a WHERE NOT EXISTS (SELECT 1 FROM ${qualified(target, 'tenant_tenants')} tt WHERE tt.tenant_bid = a.tenant_bid)`,
      ),
    );
    const expected =
      onUnmapped(deps.config, table) === 'default'
        ? finalTenantExpression(ctx, table, 'a')
        : tenantExpression(ctx, table, 'a');
    const ruleMismatch = scalarNumber(
      await deps.target.query(
        `SELECT COUNT(*) AS n FROM ${t} a WHERE NOT (a.${ident('tenant_bid')} <=> ${expected.sql})`,
        expected.params,
      ),
    );
    let parentMismatch = 0;
    const rules = deps.config.tables[table];
    const onlyReference = referenceRules(deps.config, table);
    if (onlyReference.length === 1 && rules?.tenant !== undefined && !Array.isArray(rules.tenant)) {
      const parent = tenantExpression(ctx, table, 'a');
      parentMismatch = scalarNumber(
        await deps.target.query(
          `SELECT COUNT(*) AS n FROM ${t} a WHERE (${parent.sql}) IS NOT NULL AND (${parent.sql}) <> a.${ident('tenant_bid')}`,
          [...parent.params, ...parent.params],
        ),
      );
    }
    findings.push({ table, unknownTenant, ruleMismatch, parentMismatch });
  }
  return findings;
}

export async function verifyIsolation(
  deps: TaskDeps,
  runId: string,
): Promise<{ tables: number; violations: number }> {
  const findings = await checkIsolation(deps, runId);
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
  return { tables: findings.length, violations: 0 };
}
