import { rangeCondition } from '../core/checksum.ts';
import type { Config } from '../core/config/schema.ts';
import { tenantRules } from '../core/config/schema.ts';
import { ident, identList, qualified } from '../core/identifiers.ts';
import type { ColumnInfo, TableInfo } from '../core/schema/types.ts';
import type { SqlParam } from '../core/sql/port.ts';
import { scalarNumber, str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { finalTenantExpression, type SqlFragment, tenantExpression } from '../core/tenant/sql.ts';
import { quarantinedKeys } from './compare.ts';
import {
  type CopyJob,
  copyKey,
  type KeyBounds,
  onUnmapped,
  type RunContext,
  referenceRules,
  targetRuleContext,
} from './context.ts';
import { UnmappedRows } from './errors.ts';
import { dropStaleQuarantine } from './exact.ts';

/**
 * The server-side copy path: source and target on one server, one `INSERT … SELECT` per chunk with the tenant
 * computed in the statement (unique parents joined, the rest looked up per row), quarantine rows written the same
 * way. The key text, reason and row JSON are built in SQL exactly as the client path builds them in JS.
 */

const INTEGER = /int$/;

/** The key text in SQL; compared with the ledger's row_key as bytes (the two may be in different collations). */
function rowKeySql(info: TableInfo, key: readonly string[], alias: string): string {
  const parts = key.map((k) => {
    const type = info.columns.find((c) => c.name === k)?.dataType ?? '';
    const col = `${alias}.${ident(k)}`;
    return INTEGER.test(type) ? `CAST(${col} AS CHAR)` : `JSON_QUOTE(CAST(${col} AS CHAR))`;
  });
  return `CONCAT('[', CONCAT_WS(', ', ${parts.join(', ')}), ']')`;
}

/** The same reason text as rules.ts unmappedReason, built in SQL. */
function reasonSql(config: Config, table: string, alias: string): string {
  const rules = config.tables[table];
  const pieces = (rules === undefined ? [] : tenantRules(rules)).map((rule) => {
    if (rule.by === 'fixed') return "'fixed'";
    const col = `${alias}.${ident(rule.column)}`;
    const name = `'${rule.column}'`;
    if (rule.by === 'reference') {
      return `IF(${col} IS NULL, CONCAT(${name}, ' is NULL'), IF(${col} = '', CONCAT(${name}, ' is empty'), CONCAT(${name}, ' ', JSON_QUOTE(CAST(${col} AS CHAR)), ' has no row in ${rule.references.table} on the target')))`;
    }
    return `IF(${col} IS NULL, CONCAT(${name}, ' is NULL'), CONCAT(${name}, ' ', JSON_QUOTE(LEFT(CAST(${col} AS CHAR), 60)), ' matches no ${rule.by} rule'))`;
  });
  return `LEFT(CONCAT('no tenant rule maps the row: ', CONCAT_WS('; ', ${pieces.join(', ')})), 255)`;
}

function isBinary(column: ColumnInfo): boolean {
  return /binary|blob/.test(column.dataType) || column.dataType === 'bit';
}

function rowDataSql(columns: readonly ColumnInfo[], alias: string): string {
  return `JSON_OBJECT(${columns
    .map((c) => {
      const col = `${alias}.${ident(c.name)}`;
      return `'${c.name}', ${isBinary(c) ? `IF(${col} IS NULL, NULL, JSON_OBJECT('$base64', TO_BASE64(${col})))` : col}`;
    })
    .join(', ')})`;
}

/**
 * A row of `table` (alias `a`) that waits for its parent: a reference rule's value has a parent row on the source
 * (one not held in the quarantine) but none on the target yet (written on the source after its table was copied).
 * Asked only of rows the rules give no tenant (the tenant expression, which the server has just computed for the
 * row, is NULL): such a row is not copied (nor quarantined, nor given the default tenant); its chunk is left to sync,
 * which copies it once its parent is there. The same test as the other paths' (referenceLookups).
 */
function waitingSql(deps: TaskDeps, context: RunContext, table: string): { sql: string; params: SqlParam[] } {
  const parts: string[] = [];
  const params: SqlParam[] = [];
  for (const rule of referenceRules(deps.config, table)) {
    const parent = context.tables.get(rule.references.table);
    if (parent === undefined) continue;
    const col = `a.${ident(rule.column)}`;
    const ref = ident(rule.references.column);
    parts.push(
      `(${col} IS NOT NULL AND ${col} <> '' AND NOT EXISTS (SELECT 1 FROM ${qualified(deps.targetUrl.database, parent.name)} t WHERE t.${ref} = ${col}) AND EXISTS (SELECT 1 FROM ${qualified(deps.sourceUrl.database, parent.name)} p WHERE p.${ref} = ${col} AND NOT EXISTS (SELECT 1 FROM ${qualified(deps.targetUrl.database, 'migration_quarantine')} q WHERE q.table_name = ? AND CAST(q.row_key AS BINARY) = CAST(${rowKeySql(parent, copyKey(parent), 'p')} AS BINARY))))`,
    );
    params.push(parent.name);
  }
  return parts.length === 0 ? { sql: 'FALSE', params } : { sql: `(${parts.join(' OR ')})`, params };
}

export async function copyServerSide(
  deps: TaskDeps,
  context: RunContext,
  table: string,
  mode: 'tenant' | 'global',
  chunk: KeyBounds,
  { info, key, columns }: CopyJob,
  exact: boolean,
): Promise<{ rows: number; quarantined: number }> {
  const source = qualified(deps.sourceUrl.database, table);
  const target = qualified(deps.targetUrl.database, table);
  const range = rangeCondition(key, chunk, 'a');
  const list = columns.map((c) => `a.${ident(c.name)}`).join(', ');
  const names = columns.map((c) => c.name);
  const update = (cols: readonly string[]) => cols.map((c) => `${ident(c)} = VALUES(${ident(c)})`).join(', ');
  if (mode === 'global') {
    await deps.target.execute(
      `INSERT INTO ${target} (${identList(names)}) SELECT ${list} FROM ${source} a WHERE ${range.sql} ON DUPLICATE KEY UPDATE ${update(names)}`,
      range.params,
    );
    if (exact) await deleteGoneServerSide(deps, table, key, chunk);
    return { rows: await countRange(deps, table, key, chunk), quarantined: 0 };
  }
  const ctx = targetRuleContext(deps, context, { joins: 'unique' });
  const waiting = waitingSql(deps, context, table);
  const unmapped = tenantExpression(ctx, table, 'a');
  // Unique parents are joined (LEFT JOIN, 1:1), the rest looked up per row.
  const from = (f: SqlFragment) => `${source} a${(f.joins ?? []).map((j) => ` ${j}`).join('')}`;
  const policy = onUnmapped(deps.config, table);
  const tenant =
    policy === 'default' ? finalTenantExpression(ctx, table, 'a') : tenantExpression(ctx, table, 'a');
  let quarantined = 0;
  if (policy !== 'default') {
    const raw = tenantExpression(ctx, table, 'a');
    if (policy === 'fail') {
      const [first] = await deps.target.query(
        `SELECT ${rowKeySql(info, key, 'a')} AS k FROM ${from(raw)} WHERE ${range.sql} AND (${raw.sql}) IS NULL AND NOT ${waiting.sql} LIMIT 1`,
        [...range.params, ...raw.params, ...waiting.params],
      );
      if (first !== undefined) {
        throw new UnmappedRows(
          `${table} row ${str(first, 'k')} gets no tenant from the rules and onUnmapped is "fail"`,
        );
      }
    } else {
      if (exact) {
        // Rows of the range leave the quarantine; those still unmapped are held again just below.
        await deps.target.execute(
          `DELETE FROM migration_quarantine WHERE table_name = ? AND CAST(row_key AS BINARY) IN (SELECT CAST(${rowKeySql(info, key, 'a')} AS BINARY) FROM ${source} a WHERE ${range.sql})`,
          [table, ...range.params],
        );
        await dropStaleQuarantine(
          deps,
          deps.target,
          info,
          key,
          chunk,
          await quarantinedKeys(deps, table, { info, key }, deps.target, {
            runId: context.runId,
            n: chunk.n,
          }),
        );
      }
      const result = await deps.target.execute(
        `INSERT INTO ${qualified(deps.targetUrl.database, 'migration_quarantine')} (run_id, table_name, row_key, reason, row_data, chunk_no)
         SELECT ?, ?, ${rowKeySql(info, key, 'a')}, ${reasonSql(deps.config, table, 'a')}, ${rowDataSql(columns, 'a')}, ?
           FROM ${from(raw)} WHERE ${range.sql} AND (${raw.sql}) IS NULL AND NOT ${waiting.sql}
         ON DUPLICATE KEY UPDATE run_id = VALUES(run_id), reason = VALUES(reason), row_data = VALUES(row_data), chunk_no = VALUES(chunk_no)`,
        [context.runId, table, chunk.n, ...range.params, ...raw.params, ...waiting.params],
      );
      quarantined = result.affectedRows;
    }
  }
  await deps.target.execute(
    `INSERT INTO ${target} (${identList([...names, 'tenant_bid'])})
     SELECT ${list}, ${tenant.sql} AS tenant_bid FROM ${from(tenant)} WHERE ${range.sql}${policy === 'default' ? ` AND NOT ((${unmapped.sql}) IS NULL AND ${waiting.sql})` : ' HAVING tenant_bid IS NOT NULL'}
     ON DUPLICATE KEY UPDATE ${update([...names, 'tenant_bid'])}`,
    [
      ...tenant.params,
      ...range.params,
      ...(policy === 'default' ? [...unmapped.params, ...waiting.params] : []),
    ],
  );
  if (exact) {
    await deleteGoneServerSide(deps, table, key, chunk);
    if (policy !== 'default') {
      // A row copied before and unmapped now is held in the quarantine, not in the target.
      const t = rangeCondition(key, chunk, 't');
      await deps.target.execute(
        `DELETE t FROM ${target} t JOIN ${qualified(deps.targetUrl.database, 'migration_quarantine')} q
            ON q.table_name = ? AND CAST(q.row_key AS BINARY) = CAST(${rowKeySql(info, key, 't')} AS BINARY)
          WHERE ${t.sql}`,
        [table, ...t.params],
      );
    }
  }
  return { rows: await countRange(deps, table, key, chunk), quarantined };
}

/** Target rows of the range whose key the source range no longer has: deleted (both on one server). */
async function deleteGoneServerSide(
  deps: TaskDeps,
  table: string,
  key: readonly string[],
  chunk: KeyBounds,
): Promise<void> {
  const t = rangeCondition(key, chunk, 't');
  const on = key.map((k) => `a.${ident(k)} = t.${ident(k)}`).join(' AND ');
  await deps.target.execute(
    `DELETE t FROM ${qualified(deps.targetUrl.database, table)} t
       LEFT JOIN ${qualified(deps.sourceUrl.database, table)} a ON ${on}
      WHERE ${t.sql} AND a.${ident(key[0] ?? '')} IS NULL`,
    t.params,
  );
}

async function countRange(
  deps: TaskDeps,
  table: string,
  key: readonly string[],
  chunk: KeyBounds,
): Promise<number> {
  const range = rangeCondition(key, chunk, 'a');
  return scalarNumber(
    await deps.target.query(
      `SELECT COUNT(*) AS n FROM ${qualified(deps.targetUrl.database, table)} a WHERE ${range.sql}`,
      range.params,
    ),
  );
}
