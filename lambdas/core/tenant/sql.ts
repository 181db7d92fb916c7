import {
  type Config,
  type TableRulesConfig,
  type TenantRuleConfig,
  tenantRules,
  type WhenNotUniqueConfig,
} from '../config/schema.ts';
import { ident, qualified } from '../identifiers.ts';
import { chunkKey, isUniqueColumn } from '../schema/keys.ts';
import type { TableInfo } from '../schema/types.ts';
import type { SqlParam } from '../sql/port.ts';

/**
 * Tenant rules (docs/configuration.md) as SQL over the source database: one expression per table that yields the
 * tenant bid of a row, so counts and checks run on the server without moving rows.
 */
export interface RuleContext {
  readonly config: Config;
  /** Source database name. */
  readonly database: string;
  /** Source tables by name, from introspection (the target's migrated tables have the same columns and keys). */
  readonly tables: ReadonlyMap<string, TableInfo>;
  /**
   * Where a reference rule finds the referenced row's tenant: by evaluating that table's rules on the
   * source (what assess predicts), or as the `tenant_bid` already copied to the target (what copies write).
   * @default { kind: 'source' }
   */
  readonly references?:
    | { readonly kind: 'source' }
    | {
        readonly kind: 'target';
        readonly database: string;
        /**
         * Look up parents with LEFT JOINs instead of correlated subqueries: `unique` joins a parent whose key
         * is unique (1:1; about 9 % over a plain copy instead of 25 %, measured here); `all` also joins a
         * newest-row-per-key derived table for non-unique keys, which pays off for whole-table scans only.
         * The joins come back in `SqlFragment.joins`.
         */
        readonly joins?: 'unique' | 'all';
      };
}

export interface SqlFragment {
  readonly sql: string;
  readonly params: SqlParam[];
  /** `LEFT JOIN …` clauses the expression needs after `FROM <table> <alias>` (parameter-free). */
  readonly joins?: readonly string[];
}

/** Nesting bound for reference chains; the config refuses cycles, this only guards depth. */
const MAX_DEPTH = 8;

function rulesOf(ctx: RuleContext, table: string): { rules: TenantRuleConfig[]; table: TableRulesConfig } {
  const rules = ctx.config.tables[table];
  if (rules === undefined) throw new TypeError(`table ${table} has no rules in the config`);
  return { rules: tenantRules(rules), table: rules };
}

function onUnmapped(ctx: RuleContext, table: string): Config['onUnmapped'] {
  return ctx.config.tables[table]?.onUnmapped ?? ctx.config.onUnmapped;
}

/** How a row's e-mail domain is read: lower case, trimmed, the part after the last `@`. */
function domainOf(column: string): string {
  return `LOWER(TRIM(SUBSTRING_INDEX(TRIM(${column}), '@', -1)))`;
}

function ruleExpression(
  ctx: RuleContext,
  rule: TenantRuleConfig,
  alias: string,
  depth: number,
  index = 0,
): SqlFragment {
  if (rule.by === 'fixed') return { sql: '?', params: [rule.tenant] };
  const col = `${alias}.${ident(rule.column, 'column')}`;
  switch (rule.by) {
    case 'emailDomain': {
      // Longest domain first: cn.acme.com beats acme.com when both are listed.
      const domains = Object.entries(rule.domains)
        .map(([d, t]) => [d.toLowerCase(), t] as const)
        .sort((a, b) => b[0].length - a[0].length);
      // Binary comparisons: under a _ci collation acmé.com would equal acme.com.
      const dom = `CAST(${domainOf(col)} AS BINARY)`;
      const params: SqlParam[] = [];
      const branches = domains.map(([domain, tenant]) => {
        if (rule.subdomains) {
          params.push(domain, Buffer.byteLength(domain) + 1, `.${domain}`, tenant);
          return `WHEN ${dom} = CAST(? AS BINARY) OR RIGHT(${dom}, ?) = CAST(? AS BINARY) THEN ?`;
        }
        params.push(domain, tenant);
        return `WHEN ${dom} = CAST(? AS BINARY) THEN ?`;
      });
      return { sql: `(CASE WHEN LOCATE('@', ${col}) = 0 THEN NULL ${branches.join(' ')} END)`, params };
    }
    case 'value': {
      const params: SqlParam[] = [];
      const branches = Object.entries(rule.values).map(([value, tenant]) => {
        params.push(value, tenant);
        return rule.caseSensitive
          ? `WHEN CAST(${col} AS BINARY) = CAST(? AS BINARY) THEN ?`
          : `WHEN LOWER(${col}) = LOWER(?) THEN ?`;
      });
      return { sql: `(CASE ${branches.join(' ')} END)`, params };
    }
    case 'keys': {
      const params: SqlParam[] = [];
      const branches = Object.entries(rule.tenants).map(([tenant, keys]) => {
        params.push(...keys, tenant);
        return `WHEN CAST(${col} AS BINARY) IN (${keys.map(() => 'CAST(? AS BINARY)').join(', ')}) THEN ?`;
      });
      return { sql: `(CASE ${branches.join(' ')} END)`, params };
    }
    case 'reference': {
      if (depth >= MAX_DEPTH) throw new TypeError(`tenant references nest deeper than ${MAX_DEPTH} tables`);
      const parent = rule.references.table;
      const p = `p${depth + 1}`;
      const info = ctx.tables.get(parent);
      const order = pickOrder(info, p, rule.references.column, rule.whenNotUnique);
      const match = `${p}.${ident(rule.references.column, 'column')} = ${col}`;
      if (ctx.references?.kind === 'target') {
        // The parent's tenant as copied: one indexed lookup, and children share their parent's tenant by construction.
        const j = `j${depth}_${index}`;
        const key = ident(rule.references.column, 'column');
        const unique = isUniqueColumn(info, rule.references.column);
        if (ctx.references.joins !== undefined && unique) {
          return {
            sql: `${j}.${ident('tenant_bid')}`,
            params: [],
            joins: [`LEFT JOIN ${qualified(ctx.references.database, parent)} ${j} ON ${j}.${key} = ${col}`],
          };
        }
        if (ctx.references.joins === 'all' && order !== '') {
          const newest = `SELECT ${key}, ${ident('tenant_bid')} FROM (SELECT ${p}.${key}, ${p}.${ident('tenant_bid')}, ROW_NUMBER() OVER (PARTITION BY ${p}.${key}${order}) AS rn FROM ${qualified(ctx.references.database, parent)} ${p}) r WHERE r.rn = 1`;
          return {
            sql: `${j}.${ident('tenant_bid')}`,
            params: [],
            joins: [`LEFT JOIN (${newest}) ${j} ON ${j}.${key} = ${col}`],
          };
        }
        return {
          sql: `(SELECT ${p}.${ident('tenant_bid')} FROM ${qualified(ctx.references.database, parent)} ${p} WHERE ${match}${order} LIMIT 1)`,
          params: [],
        };
      }
      const inner = finalTenantExpression(ctx, parent, p, depth + 1);
      return {
        sql: `(SELECT ${inner.sql} FROM ${qualified(ctx.database, parent)} ${p} WHERE ${match}${order} LIMIT 1)`,
        params: inner.params,
      };
    }
  }
}

/**
 * Where a referenced key is not unique (AI-Shifu's user_bid), the ORDER BY that puts the row deciding the tenant
 * first, as the rule's `whenNotUnique` says: by default the newest `updated_at` (when the table has one), then the
 * highest primary key. Rows whose ordering column is NULL come last. Every path that resolves a reference (the
 * server-side copy, the client-side lookups, the isolation check, verify) orders with this one function.
 */
export function pickOrder(
  table: TableInfo | undefined,
  alias: string,
  keyColumn: string,
  choice?: WhenNotUniqueConfig,
): string {
  if (table === undefined || isUniqueColumn(table, keyColumn)) return '';
  const key = table.primaryKey ?? chunkKey(table) ?? [];
  const byKey = (direction: 'ASC' | 'DESC') => key.map((k) => `${alias}.${ident(k)} ${direction}`);
  const byColumn = (column: string, direction: 'ASC' | 'DESC') => {
    const col = `${alias}.${ident(column, 'column')}`;
    return [`${col} IS NULL`, `${col} ${direction}`, ...byKey(direction)];
  };
  let order: string[];
  if (choice === 'highestKey') order = byKey('DESC');
  else if (choice === 'lowestKey') order = byKey('ASC');
  else if (choice !== undefined && 'newest' in choice) order = byColumn(choice.newest, 'DESC');
  else if (choice !== undefined && 'oldest' in choice) order = byColumn(choice.oldest, 'ASC');
  else if (table.columns.some((c) => c.name === 'updated_at')) order = byColumn('updated_at', 'DESC');
  else order = byKey('DESC');
  return order.length === 0 ? '' : ` ORDER BY ${order.join(', ')}`;
}

/** The tenant the rules give a row of `table` (aliased `alias`), or NULL when no rule maps it. */
export function tenantExpression(ctx: RuleContext, table: string, alias: string, depth = 0): SqlFragment {
  const { rules } = rulesOf(ctx, table);
  if (rules.length === 0) throw new TypeError(`table ${table} has no tenant rule`);
  const parts = rules.map((rule, i) => ruleExpression(ctx, rule, alias, depth, i));
  if (parts.length === 1) return parts[0] as SqlFragment;
  return {
    sql: `COALESCE(${parts.map((p) => p.sql).join(', ')})`,
    params: parts.flatMap((p) => p.params),
    joins: parts.flatMap((p) => p.joins ?? []),
  };
}

/**
 * The tenant a row ends up with after `onUnmapped`: the default tenant fills in under `default`; under
 * `quarantine` and `fail` the row has none (it is not copied), so rows pointing at it have none either.
 */
export function finalTenantExpression(
  ctx: RuleContext,
  table: string,
  alias: string,
  depth = 0,
): SqlFragment {
  const expression = tenantExpression(ctx, table, alias, depth);
  if (onUnmapped(ctx, table) !== 'default') return expression;
  return {
    sql: `COALESCE(${expression.sql}, ?)`,
    params: [...expression.params, ctx.config.defaultTenant],
    ...(expression.joins === undefined ? {} : { joins: expression.joins }),
  };
}

/** The tables a table's tenant is derived from, nearest first (order_orders → [user_users]). */
export function referenceChain(config: Config, table: string): string[] {
  const chain: string[] = [];
  let current = table;
  for (let depth = 0; depth < MAX_DEPTH; depth += 1) {
    const rules = config.tables[current];
    const reference = rules === undefined ? undefined : tenantRules(rules).find((r) => r.by === 'reference');
    if (reference?.by !== 'reference') break;
    current = reference.references.table;
    chain.push(current);
  }
  return chain;
}
