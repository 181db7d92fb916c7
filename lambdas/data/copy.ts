import { rangeCondition } from '../core/checksum.ts';
import type { Config, ReferenceRuleConfig } from '../core/config/schema.ts';
import { tenantRules } from '../core/config/schema.ts';
import { ident, identList, qualified } from '../core/identifiers.ts';
import { assertRunOwner } from '../core/ledger/phase-run.ts';
import { isUniqueColumn } from '../core/schema/keys.ts';
import type { ColumnInfo, TableInfo } from '../core/schema/types.ts';
import { insertRows } from '../core/sql/insert.ts';
import { readKeyset } from '../core/sql/keyset.ts';
import type { Row, SqlParam, SqlSession } from '../core/sql/port.ts';
import { scalarNumber, str, strOrNull } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { asText, rowTenant, unmappedReason } from '../core/tenant/rules.ts';
import { finalTenantExpression, pickOrder, type SqlFragment, tenantExpression } from '../core/tenant/sql.ts';
import { compareChunk, formatChecksum, quarantinedKeys } from './compare.ts';
import {
  type CopyJob,
  copyJob,
  exactBounds,
  exactKeyValues,
  type KeyBounds,
  MAX_REMEMBERED_PARENTS,
  onUnmapped,
  type RunContext,
  referenceRules,
  runContext,
  targetRuleContext,
} from './context.ts';
import { ChunkCancelled, UnmappedRows } from './errors.ts';
import { deleteMissingFromSource, dropStaleQuarantine, releaseFromQuarantine, rowKeyText } from './exact.ts';
import type { Chunk } from './schema.ts';

export interface ChunkResult {
  readonly table: string;
  readonly n: number;
  readonly rows: number;
  readonly quarantined: number;
  readonly skipped: boolean;
  readonly path: 'server' | 'client';
}

/**
 * Rows read per page on the client path: a whole chunk (so memory follows the chunk size, never the table's),
 * at most this many; the Data API adapter halves it on its 1 MiB limit.
 */
const MAX_PAGE_ROWS = 2_000;

/** Server-side copy needs both databases on one server, reachable by the target's connection. */
export function copyPath(deps: TaskDeps): 'server' | 'client' {
  const wanted = deps.config.chunking.copyPath;
  if (wanted !== 'auto') return wanted;
  const { sourceUrl: s, targetUrl: t } = deps;
  const same =
    s.kind === 'mysql' && t.kind === 'mysql' && s.host === t.host && s.port === t.port && s.user === t.user;
  return same ? 'server' : 'client';
}

const INTEGER = /int$/;

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

function rowDataText(columns: readonly ColumnInfo[], row: Row): string {
  return JSON.stringify(
    Object.fromEntries(
      columns.map((c) => {
        const v = row[c.name] ?? null;
        return [c.name, Buffer.isBuffer(v) ? { $base64: v.toString('base64') } : v];
      }),
    ),
  );
}

async function recordChunk(
  deps: TaskDeps,
  runId: string,
  table: string,
  n: number,
  rows: number,
  check: { source: string; target: string; equal: boolean },
): Promise<void> {
  await deps.target.execute(
    'UPDATE migration_chunks SET status = ?, rows_copied = ?, source_checksum = ?, target_checksum = ?, attempts = attempts + 1 WHERE run_id = ? AND table_name = ? AND chunk_no = ?',
    [check.equal ? 'validated' : 'copied', rows, check.source, check.target, runId, table, n],
  );
}

/**
 * Copies one key range of a table into the target: each row with its tenant_bid by the rules, every column
 * value and id as they are, upserted by primary key so a retried or resumed chunk neither duplicates nor
 * loses a row. Unmapped rows follow onUnmapped: the default tenant, the quarantine table, or a failure.
 * With `exact` (a re-copy), the target range is made equal to the source range as it is now: rows the source no
 * longer has are deleted, and the quarantine follows (a row that maps now leaves it, a deleted row is dropped).
 */
export async function copyChunk(
  deps: TaskDeps,
  runId: string,
  execution: string,
  table: string,
  mode: 'tenant' | 'global',
  chunk: Chunk,
  options: { exact?: boolean } = {},
): Promise<ChunkResult> {
  const path = copyPath(deps);
  const exact = options.exact === true;
  if (!exact) {
    const [row] = await deps.target.query(
      'SELECT status, rows_copied FROM migration_chunks WHERE run_id = ? AND table_name = ? AND chunk_no = ?',
      [runId, table, chunk.n],
    );
    const status = row === undefined ? null : strOrNull(row, 'status');
    if (status === 'copied' || status === 'validated' || status === 'changing') {
      return { table, n: chunk.n, rows: Number(row?.rows_copied ?? 0), quarantined: 0, skipped: true, path };
    }
  }
  if (deps.signal.aborted)
    throw new ChunkCancelled(`${table} chunk ${chunk.n} not started: the run is stopping`);
  await claimChunk(deps, runId, execution, table, chunk.n);
  const started = performance.now();
  const context = await runContext(deps, runId);
  const job = copyJob(context, table);
  const bounds = exactBounds(job, chunk);
  let result: { rows: number; quarantined: number };
  try {
    result =
      path === 'server'
        ? await copyServerSide(deps, context, table, mode, bounds, job, exact)
        : // One transaction per chunk: its rows and quarantine rows land together, and the redo log is
          // flushed once per chunk instead of once per statement.
          await deps.target.transaction((tx) =>
            copyClientSide(deps, tx, context, table, mode, bounds, job, exact),
          );
  } catch (error) {
    // No longer in flight: a rollback waiting for `copying` chunks need not wait for this one.
    await deps.target
      .execute(
        "UPDATE migration_chunks SET status = 'failed' WHERE run_id = ? AND table_name = ? AND chunk_no = ? AND status = 'copying'",
        [runId, table, chunk.n],
      )
      .catch(() => undefined);
    throw error;
  }
  if (exact) {
    // Validate Table judges a re-copy itself: the chunk only stops being in flight.
    await deps.target.execute(
      "UPDATE migration_chunks SET status = 'copied', rows_copied = ?, attempts = attempts + 1 WHERE run_id = ? AND table_name = ? AND chunk_no = ?",
      [result.rows, runId, table, chunk.n],
    );
    return { table, n: chunk.n, ...result, skipped: false, path };
  }
  // Compared at once: a chunk that differs is left 'copied' for Validate Table to copy again and judge.
  const quarantine = mode === 'tenant' ? await quarantinedKeys(deps, table, job) : [];
  const check = await compareChunk(deps, runId, table, bounds, quarantine);
  await recordChunk(deps, runId, table, chunk.n, result.rows, {
    source: formatChecksum(check.source),
    target: formatChecksum(check.target),
    equal: check.equal,
  });
  deps.metrics.put('data', {
    RowsCopied: result.rows,
    RowsQuarantined: result.quarantined,
    ChunkDuration: Math.round(performance.now() - started),
  });
  return { table, n: chunk.n, ...result, skipped: false, path };
}

/**
 * Marks the chunk `copying`, in the same statement that checks the run is still `running` and that this execution
 * holds the run lock for it: a rollback marks the run `stopping` first and then waits for `copying` chunks to end,
 * so no chunk writes into a range the rollback has already emptied, and an execution whose lock was taken over
 * copies nothing more.
 */
async function claimChunk(
  deps: TaskDeps,
  runId: string,
  execution: string,
  table: string,
  n: number,
): Promise<void> {
  const claimed = await deps.target.execute(
    `UPDATE migration_chunks c
       JOIN migration_runs r ON r.run_id = c.run_id
       JOIN migration_lock l ON l.name = 'target' AND l.run_id = c.run_id AND l.owner = ?
        SET c.status = 'copying', c.updated_at = CURRENT_TIMESTAMP(3)
      WHERE c.run_id = ? AND c.table_name = ? AND c.chunk_no = ? AND r.status = 'running'`,
    [execution, runId, table, n],
  );
  if (claimed.affectedRows === 0) {
    await assertRunOwner(deps.target, runId, execution);
    throw new ChunkCancelled(`${table} chunk ${n} is not in the ledger of ${runId}: plan the chunks first`);
  }
}

async function copyServerSide(
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
        `SELECT ${rowKeySql(info, key, 'a')} AS k FROM ${from(raw)} WHERE ${range.sql} AND (${raw.sql}) IS NULL LIMIT 1`,
        [...range.params, ...raw.params],
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
          `DELETE FROM migration_quarantine WHERE table_name = ? AND row_key IN (SELECT ${rowKeySql(info, key, 'a')} FROM ${source} a WHERE ${range.sql})`,
          [table, ...range.params],
        );
        await dropStaleQuarantine(
          deps,
          deps.target,
          info,
          key,
          chunk,
          await quarantinedKeys(deps, table, { info, key }),
        );
      }
      const result = await deps.target.execute(
        `INSERT INTO ${qualified(deps.targetUrl.database, 'migration_quarantine')} (run_id, table_name, row_key, reason, row_data)
         SELECT ?, ?, ${rowKeySql(info, key, 'a')}, ${reasonSql(deps.config, table, 'a')}, ${rowDataSql(columns, 'a')}
           FROM ${from(raw)} WHERE ${range.sql} AND (${raw.sql}) IS NULL
         ON DUPLICATE KEY UPDATE run_id = VALUES(run_id), reason = VALUES(reason), row_data = VALUES(row_data)`,
        [context.runId, table, ...range.params, ...raw.params],
      );
      quarantined = result.affectedRows;
    }
  }
  await deps.target.execute(
    `INSERT INTO ${target} (${identList([...names, 'tenant_bid'])})
     SELECT ${list}, ${tenant.sql} AS tenant_bid FROM ${from(tenant)} WHERE ${range.sql}${policy === 'default' ? '' : ' HAVING tenant_bid IS NOT NULL'}
     ON DUPLICATE KEY UPDATE ${update([...names, 'tenant_bid'])}`,
    [...tenant.params, ...range.params],
  );
  if (exact) {
    await deleteGoneServerSide(deps, table, key, chunk);
    if (policy !== 'default') {
      // A row copied before and unmapped now is held in the quarantine, not in the target.
      const t = rangeCondition(key, chunk, 't');
      await deps.target.execute(
        `DELETE t FROM ${target} t JOIN ${qualified(deps.targetUrl.database, 'migration_quarantine')} q
            ON q.table_name = ? AND q.row_key = ${rowKeySql(info, key, 't')}
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

/**
 * The tenants of referenced rows already in the target, for the distinct values of one page: from what this run
 * has looked up before (users referenced by every table of theirs), else from the target. For a unique key a
 * plain `IN` finds them (an exact match is then the only match); values without an exact match, and every
 * value of a non-unique key (the row the rule's whenNotUnique picks), are compared by the server exactly as the
 * server-side copy and the isolation check compare them (collation, ORDER BY).
 */
async function parentTenants(
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

/** A row's values in the order of `names`, then its tenant: the parameters of one target row. */
function withTenant(names: readonly string[], row: Row, tenant: string): SqlParam[] {
  const values = new Array<SqlParam>(names.length + 1);
  for (let i = 0; i < names.length; i += 1) values[i] = row[names[i] as string] ?? null;
  values[names.length] = tenant;
  return values;
}

async function copyClientSide(
  deps: TaskDeps,
  target: SqlSession,
  context: RunContext,
  table: string,
  mode: 'tenant' | 'global',
  chunk: KeyBounds,
  { info, key, columns }: CopyJob,
  exact: boolean,
): Promise<{ rows: number; quarantined: number }> {
  const names = columns.map((c) => c.name);
  const references = mode === 'tenant' ? referenceRules(deps.config, table) : [];
  const policy = onUnmapped(deps.config, table);
  // A re-copy: the keys copied, so that what the source no longer has can be removed after the last page.
  const kept = exact ? new Set<string>() : undefined;
  const quarantine = exact && mode === 'tenant' ? await quarantinedKeys(deps, table, { info, key }) : [];
  let rows = 0;
  let quarantined = 0;
  for await (const page of readKeyset(deps.source, {
    schema: deps.sourceUrl.database,
    table,
    columns: names,
    key,
    after: chunk.after ?? undefined,
    upTo: chunk.upTo ?? undefined,
    pageRows: Math.min(MAX_PAGE_ROWS, deps.config.chunking.rowsPerChunk),
    boundOf: (values) => exactKeyValues(info, key, values),
  })) {
    if (deps.signal.aborted)
      throw new ChunkCancelled(`${table} chunk ${chunk.n} stopped: the run is stopping`);
    if (mode === 'global') {
      await insertRows(target, {
        table,
        columns: names,
        rows: page.map((r) => names.map((c) => r[c] ?? null)),
        onDuplicate: 'update',
        maxStatementBytes: deps.target.maxStatementBytes,
        prepared: deps.target.preparesStatements,
      });
      if (kept !== undefined) for (const row of page) kept.add(rowKeyText(info, key, row));
      rows += page.length;
      continue;
    }
    // Reference rule → value → tenant: found without building a key text per row.
    const lookups = new Map<ReferenceRuleConfig, Map<string, string>>();
    for (const rule of references) {
      const values = [
        ...new Set(
          page.map((r) => asText(r[rule.column] ?? null)).filter((v): v is string => v !== null && v !== ''),
        ),
      ];
      lookups.set(rule, await parentTenants(deps, target, context, rule, values));
    }
    const copied: SqlParam[][] = [];
    const copiedKeys: string[] = [];
    const held: SqlParam[][] = [];
    for (const row of page) {
      let tenant = rowTenant(deps.config, table, row, (rule, v) => lookups.get(rule)?.get(v));
      if (tenant === null && policy === 'default') tenant = deps.config.defaultTenant;
      if (tenant === null) {
        const rowKey = rowKeyText(info, key, row);
        if (policy === 'fail')
          throw new UnmappedRows(
            `${table} row ${rowKey} gets no tenant from the rules and onUnmapped is "fail"`,
          );
        held.push([
          context.runId,
          table,
          rowKey,
          unmappedReason(deps.config, table, row),
          rowDataText(columns, row),
        ]);
        continue;
      }
      copied.push(withTenant(names, row, tenant));
      if (kept !== undefined) {
        const rowKey = rowKeyText(info, key, row);
        kept.add(rowKey);
        copiedKeys.push(rowKey);
      }
    }
    if (held.length > 0) {
      await insertRows(target, {
        table: 'migration_quarantine',
        columns: ['run_id', 'table_name', 'row_key', 'reason', 'row_data'],
        rows: held,
        onDuplicate: 'update',
        updateColumns: ['run_id', 'reason', 'row_data'],
        maxStatementBytes: deps.target.maxStatementBytes,
        prepared: deps.target.preparesStatements,
      });
      quarantined += held.length;
    }
    // A row held before that maps now leaves the quarantine as it is copied.
    if (quarantine.length > 0) await releaseFromQuarantine(target, table, copiedKeys);
    await insertRows(target, {
      table,
      columns: [...names, 'tenant_bid'],
      rows: copied,
      onDuplicate: 'update',
      maxStatementBytes: deps.target.maxStatementBytes,
      prepared: deps.target.preparesStatements,
    });
    rows += copied.length;
  }
  if (kept !== undefined) {
    await deleteMissingFromSource(deps, target, info, key, chunk, kept);
    if (quarantine.length > 0) await dropStaleQuarantine(deps, target, info, key, chunk, quarantine);
  }
  return { rows, quarantined };
}
