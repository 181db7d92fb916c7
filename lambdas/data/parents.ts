import type { ReferenceRuleConfig } from '../core/config/schema.ts';
import { ident, qualified } from '../core/identifiers.ts';
import { isUniqueColumn } from '../core/schema/keys.ts';
import type { TableInfo } from '../core/schema/types.ts';
import type { Row, SqlSession } from '../core/sql/port.ts';
import { str, strOrNull } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { asText, type ReferenceLookup } from '../core/tenant/rules.ts';
import { pickOrder } from '../core/tenant/sql.ts';
import { copyKey, MAX_REMEMBERED_PARENTS, type RunContext } from './context.ts';
import { rowKeyText } from './exact.ts';

/**
 * The tenants of referenced rows already in the target, for the distinct values of one page: from what this run
 * has looked up before (users referenced by every table of theirs), else from the target. For a unique key a
 * plain `IN` finds them (an exact match is then the only match); values without an exact match, and every
 * value of a non-unique key (the row the rule's whenNotUnique picks), are compared by the server exactly as the
 * server-side copy and the isolation check compare them (collation, ORDER BY).
 */
export async function parentTenants(
  deps: TaskDeps,
  target: SqlSession,
  context: RunContext,
  rule: ReferenceRuleConfig,
  values: readonly string[],
): Promise<Map<string, string>> {
  const { table: parent, column } = rule.references;
  const key = `${parent}.${column}.${JSON.stringify(rule.whenNotUnique ?? null)}`;
  let remembered = context.parentTenants.get(key);
  if (remembered === undefined) {
    remembered = new Map();
    context.parentTenants.set(key, remembered);
  }
  const known = new Map<string, string>();
  const asked: string[] = [];
  for (const value of values) {
    const tenant = remembered.get(value);
    if (tenant === undefined) asked.push(value);
    else if (tenant !== null) known.set(value, tenant);
  }
  if (asked.length === 0) return known;
  const found = await lookUpParentTenants(
    target,
    qualified(deps.targetUrl.database, parent),
    context.tables.get(parent),
    rule,
    asked,
  );
  if (remembered.size + asked.length > MAX_REMEMBERED_PARENTS) remembered.clear();
  for (const value of asked) {
    const tenant = found.get(value) ?? null;
    remembered.set(value, tenant);
    if (tenant !== null) known.set(value, tenant);
  }
  return known;
}

/** The tenants of the rows of `table` (qualified; `info` its structure) that the rule finds for these values. */
async function lookUpParentTenants(
  target: SqlSession,
  table: string,
  info: TableInfo | undefined,
  rule: ReferenceRuleConfig,
  values: readonly string[],
): Promise<Map<string, string>> {
  const { column } = rule.references;
  const found = new Map<string, string>();
  const unique = isUniqueColumn(info, column);
  let rest = values;
  if (unique) {
    for (let i = 0; i < values.length; i += 5_000) {
      const slice = values.slice(i, i + 5_000);
      const rows = await target.query(
        `SELECT ${ident(column)} AS k, ${ident('tenant_bid')} AS tenant FROM ${table} WHERE ${ident(column)} IN (${slice.map(() => '?').join(', ')})`,
        slice,
      );
      for (const row of rows) found.set(str(row, 'k'), str(row, 'tenant'));
    }
    rest = values.filter((v) => !found.has(v));
  }
  const order = pickOrder(info, 'p', column, rule.whenNotUnique);
  for (let i = 0; i < rest.length; i += 1_000) {
    const slice = rest.slice(i, i + 1_000);
    const rows = await target.query(
      `SELECT v.val AS val, (SELECT p.${ident('tenant_bid')} FROM ${table} p WHERE p.${ident(column)} = v.val${order} LIMIT 1) AS tenant
         FROM (${slice.map(() => 'SELECT ? AS val').join(' UNION ALL ')}) v`,
      slice,
    );
    for (const row of rows) {
      const tenant = strOrNull(row, 'tenant');
      if (tenant !== null) found.set(str(row, 'val'), tenant);
    }
  }
  return found;
}

/** Parent values looked for per statement. */
const PARENT_VALUES_PER_READ = 500;

/**
 * Of these values of a reference rule, not found on the target: those whose parent rows the source has, other than
 * rows held in the quarantine (a parent no rule maps never arrives: its children are unmapped, not waiting).
 */
export async function parentsOnTheWay(
  deps: TaskDeps,
  tx: SqlSession,
  context: RunContext,
  rule: ReferenceRuleConfig,
  values: readonly string[],
): Promise<Set<string>> {
  const waiting = new Set<string>();
  const parent = context.tables.get(rule.references.table);
  if (values.length === 0 || parent === undefined) return waiting;
  const key = copyKey(parent);
  const column = rule.references.column;
  for (let i = 0; i < values.length; i += PARENT_VALUES_PER_READ) {
    const slice = values.slice(i, i + PARENT_VALUES_PER_READ);
    const rows = await deps.source.query(
      `SELECT p.${ident(column)} AS v, ${key.map((k) => `p.${ident(k)}`).join(', ')} FROM ${qualified(deps.sourceUrl.database, parent.name)} p WHERE p.${ident(column)} IN (${slice.map(() => '?').join(', ')})`,
      slice,
    );
    if (rows.length === 0) continue;
    const texts = rows.map((r) => rowKeyText(parent, key, r));
    const held = new Set(
      (
        await tx.query(
          `SELECT row_key FROM migration_quarantine WHERE table_name = ? AND row_key IN (${texts.map(() => '?').join(', ')})`,
          [parent.name, ...texts],
        )
      ).map((r) => str(r, 'row_key')),
    );
    rows.forEach((r, n) => {
      const v = asText(r.v ?? null);
      if (v !== null && !held.has(texts[n] ?? '')) waiting.add(v);
    });
  }
  return waiting;
}

/** What the reference rules of a table find for a set of its rows: each row's parents' tenants, and whether it waits. */
export interface ReferenceLookups {
  /** The tenant of the parent a rule's value points at on the target (rowTenant's lookup). */
  readonly lookup: ReferenceLookup;
  /**
   * Whether a reference rule's parent is on its way (on the source, not yet on the target): a row the rules give no
   * tenant then waits. The server-side copy asks the same in SQL (copy-server.ts waitingSql).
   */
  waits(row: Row): boolean;
}

/**
 * Looks up, for these rows of a table, the parents of each of its reference rules on the target (parentTenants), and
 * of those not there, the ones on their way (parentsOnTheWay): the one place the copy paths, sync's repairs and the
 * validation's recheck ask it.
 */
export async function referenceLookups(
  deps: TaskDeps,
  session: SqlSession,
  context: RunContext,
  rules: readonly ReferenceRuleConfig[],
  rows: readonly Row[],
): Promise<ReferenceLookups> {
  const found = new Map<ReferenceRuleConfig, Map<string, string>>();
  const onTheWay = new Map<ReferenceRuleConfig, Set<string>>();
  for (const rule of rules) {
    const values = [
      ...new Set(
        rows.map((r) => asText(r[rule.column] ?? null)).filter((v): v is string => v !== null && v !== ''),
      ),
    ];
    const tenants = await parentTenants(deps, session, context, rule, values);
    found.set(rule, tenants);
    const missing = values.filter((v) => !tenants.has(v));
    if (missing.length > 0) onTheWay.set(rule, await parentsOnTheWay(deps, session, context, rule, missing));
  }
  return {
    lookup: (rule, value) => found.get(rule)?.get(value),
    waits: (row) =>
      [...onTheWay].some(([rule, values]) => values.has(asText(row[rule.column] ?? null) ?? '')),
  };
}
