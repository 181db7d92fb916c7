import { ident, qualified } from '../core/identifiers.ts';
import { nowText } from '../core/ledger/runs.ts';
import { keyComparison, parseKeyTuple } from '../core/sql/keyset.ts';
import type { Row, SqlParam } from '../core/sql/port.ts';
import { num, str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { throwIfStopping } from '../core/task.ts';
import { tenantExpression } from '../core/tenant/sql.ts';
import {
  copyKey,
  exactKeyValues,
  onUnmapped,
  referenceRules,
  runContext,
  tableInfo,
  targetRuleContext,
} from './context.ts';
import { ChunkCancelled, TenantIsolationViolation } from './errors.ts';
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
  /** Only the target rows in this key range of `only` (a condition on alias `a`). */
  range?: { sql: string; params: SqlParam[] },
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
         FROM (SELECT a.${ident('tenant_bid')} AS tenant_bid, ${raw.sql} AS ruled FROM ${qualified(target, table)} a${(raw.joins ?? []).map((j) => ` ${j}`).join('')}${range === undefined ? '' : ` WHERE ${range.sql}`}) x
         LEFT JOIN ${qualified(target, 'tenant_tenants')} tt ON tt.${ident('tenant_bid')} = x.tenant_bid`,
      [...(fill ? [deps.config.defaultTenant] : []), ...raw.params, ...(range?.params ?? [])],
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
  const fail = (findings: IsolationFinding[], where: string) => {
    const bad = findings.filter((f) => f.unknownTenant + f.ruleMismatch + f.parentMismatch > 0);
    if (bad.length > 0) {
      throw new TenantIsolationViolation(
        `tenant isolation broken: ${bad
          .map(
            (f) =>
              `${f.table}${where} (${f.unknownTenant} unknown tenant, ${f.ruleMismatch} not as the rules give, ${f.parentMismatch} not their parent's)`,
          )
          .join('; ')}`,
      );
    }
  };
  // Range by range, along the run's chunks (they cover the key space): no statement reads the whole table (the
  // Data API stops one after 45 s), each range checked is recorded, and a retried step goes on after them.
  const chunks = await deps.target.query(
    'SELECT chunk_no, key_from, key_to, isolated_at IS NOT NULL AS done FROM migration_chunks WHERE run_id = ? AND table_name = ? ORDER BY chunk_no',
    [runId, table],
  );
  if (chunks.length === 0 || deps.config.tables[table]?.global === true) {
    fail(await checkIsolation(deps, runId, table), '');
    return { table, violations: 0 };
  }
  const info = tableInfo(await runContext(deps, runId), table);
  const key = copyKey(info);
  for (let i = 0; i < chunks.length; i += ISOLATION_CHUNKS) {
    const group = chunks.slice(i, i + ISOLATION_CHUNKS);
    if (group.every((c) => num(c, 'done') === 1)) continue;
    throwIfStopping(
      deps.signal,
      () => new ChunkCancelled(`${table}: isolation check stopped, the run is stopping`),
    );
    const first = group[0] as Row;
    const last = group.at(-1) as Row;
    const parts: { sql: string; params: SqlParam[] }[] = [];
    if (first.key_from !== null)
      parts.push(
        keyComparison(key, '>', exactKeyValues(info, key, parseKeyTuple(str(first, 'key_from'))), 'a'),
      );
    if (last.key_to !== null)
      parts.push(
        keyComparison(key, '<=', exactKeyValues(info, key, parseKeyTuple(str(last, 'key_to'))), 'a'),
      );
    const range =
      parts.length === 0
        ? undefined
        : { sql: parts.map((p) => `(${p.sql})`).join(' AND '), params: parts.flatMap((p) => p.params) };
    fail(
      await checkIsolation(deps, runId, table, range),
      ` chunks ${num(first, 'chunk_no')}–${num(last, 'chunk_no')}`,
    );
    await deps.target.execute(
      'UPDATE migration_chunks SET isolated_at = ?, updated_at = updated_at WHERE run_id = ? AND table_name = ? AND chunk_no BETWEEN ? AND ?',
      [nowText(), runId, table, num(first, 'chunk_no'), num(last, 'chunk_no')],
    );
  }
  return { table, violations: 0 };
}

/** Chunks checked for isolation in one statement: about 100,000 rows at the default chunk size. */
const ISOLATION_CHUNKS = 20;
