import { ident, qualified } from '../core/identifiers.ts';
import { markRolledBack, openObjects, recordCreated, undoStatement } from '../core/ledger/ddl.ts';
import {
  assertNoRollback,
  assertRunning,
  ensureLedger,
  finishRun,
  newRunId,
  nowText,
  startRun,
  succeedRun,
  targetHasTable,
} from '../core/ledger/runs.ts';
import { TABLE_OPTIONS, TENANT_TABLES } from '../core/ledger/schema.ts';
import { introspect } from '../core/schema/introspect.ts';
import type { SchemaInfo, TableInfo } from '../core/schema/types.ts';
import type { SqlSession } from '../core/sql/port.ts';
import { scalarNumber, str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { TENANT_COLUMN, targetCreateStatement, tenantIndex } from './ddl.ts';
import { FoundationIncomplete, MigrationNotReady, SchemaDrift, TableHoldsData } from './errors.ts';
import type { FoundationInput, PlannedTable } from './schema.ts';

const PHASE = 'foundation' as const;

/** Tables foundation makes on the target: every configured source table that is not excluded. */
export function planTables(deps: TaskDeps, schema: SchemaInfo): PlannedTable[] {
  const uncovered = schema.tables.filter((t) => deps.config.tables[t.name] === undefined).map((t) => t.name);
  if (uncovered.length > 0) {
    throw new MigrationNotReady(
      `the config says nothing about ${uncovered.join(', ')}: add them to tables (global, tenant or exclude); npx shifu-migrate run assess lists what blocks`,
    );
  }
  return schema.tables.flatMap((t): PlannedTable[] => {
    const rules = deps.config.tables[t.name];
    if (rules?.exclude !== undefined) return [];
    return [{ table: t.name, mode: rules?.global ? 'global' : 'tenant' }];
  });
}

async function targetTables(deps: TaskDeps): Promise<Map<string, Set<string>>> {
  const rows = await deps.targetServer.query(
    'SELECT TABLE_NAME AS t, COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?',
    [deps.targetUrl.database],
  );
  const tables = new Map<string, Set<string>>();
  for (const row of rows) {
    const set = tables.get(str(row, 't')) ?? new Set<string>();
    set.add(str(row, 'c'));
    tables.set(str(row, 't'), set);
  }
  return tables;
}

async function progress(target: SqlSession, runId: string, table: string, status: string): Promise<void> {
  await target.execute(
    `INSERT INTO migration_progress (run_id, phase, table_name, status, started_at, completed_at)
     VALUES (?, ?, ?, ?, ?, ?)
     ON DUPLICATE KEY UPDATE run_id = VALUES(run_id), status = VALUES(status), completed_at = VALUES(completed_at)`,
    [runId, PHASE, table, status, nowText(), nowText()],
  );
}

/** Start: the target database and ledger exist, the run is recorded, the tables to create are planned. */
export async function startFoundation(
  deps: TaskDeps,
  executionId: string | null = null,
): Promise<{ runId: string; tables: PlannedTable[] }> {
  // The database itself is not rolled back: the ledger lives in it.
  await deps.targetServer.execute(
    `CREATE DATABASE IF NOT EXISTS ${ident(deps.targetUrl.database, 'database')} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
  );
  await ensureLedger(deps.target);
  await assertNoRollback(deps.target, PHASE);
  const runId = await startRun(deps.target, PHASE, newRunId(PHASE), executionId);
  const schema = await introspect(deps.source, deps.sourceUrl.database);
  return { runId, tables: planTables(deps, schema) };
}

/** Tenant tables (tenant_tenants, status, routing), the config's tenants, and the initial routing: all legacy. */
export async function createTenantTables(deps: TaskDeps, runId: string): Promise<{ created: number }> {
  let created = 0;
  const existing = await targetTables(deps);
  for (const table of TENANT_TABLES) {
    if (existing.has(table.name)) continue;
    const sql = `CREATE TABLE ${ident(table.name, 'table')} (\n  ${table.body}\n) ${TABLE_OPTIONS}`;
    await deps.target.execute(sql);
    await recordCreated(deps.target, {
      runId,
      phase: PHASE,
      objectType: 'table',
      tableName: table.name,
      objectName: table.name,
      statement: sql,
    });
    created += 1;
  }
  const insertOnce = async (
    table: string,
    keyColumn: string,
    key: string,
    sql: string,
    params: (string | number | null)[],
  ) => {
    const found = await deps.target.query(
      `SELECT 1 AS found FROM ${ident(table)} WHERE ${ident(keyColumn)} = ?`,
      [key],
    );
    if (found.length > 0) return;
    await deps.target.execute(sql, params);
    await recordCreated(deps.target, {
      runId,
      phase: PHASE,
      objectType: 'row',
      tableName: table,
      objectName: `${keyColumn}=${key}`,
      statement: sql,
    });
    created += 1;
  };
  for (const tenant of deps.config.tenants) {
    await insertOnce(
      'tenant_tenants',
      'tenant_bid',
      tenant.bid,
      'INSERT INTO tenant_tenants (tenant_bid, name, domain, tier, subscription_plan) VALUES (?, ?, ?, ?, ?)',
      [tenant.bid, tenant.name, tenant.domain ?? null, tenant.tier, tenant.subscriptionPlan ?? null],
    );
    await insertOnce(
      'tenant_migration_status',
      'tenant_bid',
      tenant.bid,
      'INSERT INTO tenant_migration_status (tenant_bid, status) VALUES (?, ?)',
      [tenant.bid, 'pending'],
    );
  }
  await insertOnce(
    'traffic_routing',
    'scope',
    'global',
    'INSERT INTO traffic_routing (scope, tenant_bid, target, weight) VALUES (?, ?, ?, ?)',
    ['global', '', 'legacy', 100],
  );
  return { created };
}

async function sourceTable(deps: TaskDeps, table: string): Promise<TableInfo> {
  const schema = await introspect(deps.source, deps.sourceUrl.database);
  const info = schema.tables.find((t) => t.name === table);
  if (info === undefined)
    throw new SchemaDrift(`${table} is no longer in the source ${deps.sourceUrl.database}`);
  return info;
}

/** Online DDL: INSTANT where the server can, else INPLACE without locks; never a blocking table copy. */
async function alterOnline(target: SqlSession, sql: string): Promise<void> {
  try {
    await target.execute(`${sql}, ALGORITHM=INSTANT`);
  } catch {
    await target.execute(`${sql}, ALGORITHM=INPLACE, LOCK=NONE`);
  }
}

/** One migrated table (a Map iteration): created from the source's definition, or completed, or left alone. */
export async function createTable(
  deps: TaskDeps,
  runId: string,
  table: string,
  mode: 'tenant' | 'global',
): Promise<{ table: string; action: 'created' | 'altered' | 'unchanged'; droppedForeignKeys: string[] }> {
  const info = await sourceTable(deps, table);
  const existing = (await targetTables(deps)).get(table);
  const sourceColumns = info.columns.map((c) => c.name);
  if (existing !== undefined) {
    const missing = sourceColumns.filter((c) => !existing.has(c));
    const extra = [...existing].filter((c) => !sourceColumns.includes(c) && c !== TENANT_COLUMN);
    if (missing.length > 0 || extra.length > 0) {
      throw new SchemaDrift(
        `target table ${table} exists with other columns (missing ${missing.join(', ') || 'none'}; extra ${extra.join(', ') || 'none'}): drop or rename it on the target, then run foundation again`,
      );
    }
    if (mode === 'global' || existing.has(TENANT_COLUMN))
      return { table, action: 'unchanged', droppedForeignKeys: [] };
    const rows = scalarNumber(await deps.target.query(`SELECT COUNT(*) AS n FROM ${ident(table)}`));
    if (rows > 0) {
      throw new SchemaDrift(
        `target table ${table} exists with ${rows} rows and no ${TENANT_COLUMN}: empty it or drop it, then run foundation again`,
      );
    }
    const addColumn = `ALTER TABLE ${ident(table)} ADD COLUMN ${ident(TENANT_COLUMN)} VARCHAR(32) NOT NULL DEFAULT ''`;
    await alterOnline(deps.target, addColumn);
    await recordCreated(deps.target, {
      runId,
      phase: PHASE,
      objectType: 'column',
      tableName: table,
      objectName: TENANT_COLUMN,
      statement: addColumn,
    });
    const index = tenantIndex(info);
    const addIndex = `ALTER TABLE ${ident(table)} ADD INDEX ${ident(index.name, 'index')} (${index.columns.map((c) => ident(c)).join(', ')})`;
    await deps.target.execute(`${addIndex}, ALGORITHM=INPLACE, LOCK=NONE`);
    await recordCreated(deps.target, {
      runId,
      phase: PHASE,
      objectType: 'index',
      tableName: table,
      objectName: index.name,
      statement: addIndex,
    });
    await progress(deps.target, runId, table, 'completed');
    return { table, action: 'altered', droppedForeignKeys: [] };
  }
  const [row] = await deps.source.query(`SHOW CREATE TABLE ${qualified(deps.sourceUrl.database, table)}`);
  const showCreate = row === undefined ? '' : str(row, 'Create Table');
  const { sql, droppedForeignKeys } = targetCreateStatement(showCreate, info, mode);
  await deps.target.execute(sql);
  await recordCreated(deps.target, {
    runId,
    phase: PHASE,
    objectType: 'table',
    tableName: table,
    objectName: table,
    statement: sql,
  });
  await progress(deps.target, runId, table, 'completed');
  return { table, action: 'created', droppedForeignKeys };
}

/** Every planned table exists with its tenant column and index; every tenant is there. Then the run succeeds. */
export async function verifyFoundation(
  deps: TaskDeps,
  runId: string,
): Promise<{ runId: string; tables: number; tenants: number; created: number }> {
  const schema = await introspect(deps.source, deps.sourceUrl.database);
  const planned = planTables(deps, schema);
  const existing = await targetTables(deps);
  const problems: string[] = [];
  for (const { table, mode } of planned) {
    const columns = existing.get(table);
    if (columns === undefined) problems.push(`${table} is missing`);
    else if (mode === 'tenant' && !columns.has(TENANT_COLUMN))
      problems.push(`${table} has no ${TENANT_COLUMN}`);
  }
  for (const table of TENANT_TABLES) if (!existing.has(table.name)) problems.push(`${table.name} is missing`);
  const tenants = await deps.target.query('SELECT tenant_bid FROM tenant_tenants');
  const present = new Set(tenants.map((r) => str(r, 'tenant_bid')));
  for (const t of deps.config.tenants) if (!present.has(t.bid)) problems.push(`tenant ${t.bid} is missing`);
  if (problems.length > 0) throw new FoundationIncomplete(`foundation is incomplete: ${problems.join('; ')}`);
  const created = await openObjects(deps.target, { runId });
  await succeedRun(deps.target, runId);
  return { runId, tables: planned.length, tenants: present.size, created: created.length };
}

const ledgerExists = (deps: TaskDeps) =>
  targetHasTable(deps.targetServer, deps.targetUrl.database, 'migration_ddl');

/**
 * Undoes what foundation created, newest first: one run's objects (the state machine's Catch), or every
 * foundation object not yet rolled back (`rollback --phase foundation`). Nothing that foundation did not
 * record is touched; the ledger stays and says what was rolled back.
 */
export async function rollbackFoundation(
  deps: TaskDeps,
  scope:
    | { runId: string; error?: { Error: string; Cause?: string | undefined } | undefined }
    | { phase: 'foundation' },
): Promise<{ rollbackRunId: string; undone: number }> {
  const rollbackRunId = 'runId' in scope ? scope.runId : newRunId('rollback');
  if (!(await ledgerExists(deps))) return { rollbackRunId, undone: 0 };
  if (!('runId' in scope)) await startRun(deps.target, 'rollback', rollbackRunId);
  const objects = await openObjects(
    deps.target,
    'runId' in scope ? { runId: scope.runId } : { phase: PHASE },
  );
  const migrated = new Set(Object.keys(deps.config.tables));
  // One look at the target's tables; kept up to date below as the rollback drops them.
  const present = new Set((await targetTables(deps)).keys());
  for (const object of objects) {
    if (object.objectType === 'table' && migrated.has(object.tableName)) {
      const exists = present.has(object.tableName);
      const rows = exists
        ? scalarNumber(await deps.target.query(`SELECT COUNT(*) AS n FROM ${ident(object.tableName)}`))
        : 0;
      if (rows > 0) {
        throw new TableHoldsData(
          `${object.tableName} holds ${rows} rows copied by a later phase: roll back the data phase first (npx shifu-migrate rollback --phase data)`,
        );
      }
    }
  }
  const done: number[] = [];
  for (const object of objects) {
    const undo = undoStatement(deps.targetUrl.database, object);
    const exists = object.objectType === 'table' || present.has(object.tableName);
    if (exists) await deps.target.execute(undo.sql, undo.params);
    if (object.objectType === 'table') present.delete(object.tableName);
    done.push(object.id);
  }
  await markRolledBack(deps.target, done, rollbackRunId);
  await deps.target.execute(
    "UPDATE migration_progress SET status = 'rolled_back', completed_at = ? WHERE phase = ? AND ('' = ? OR run_id = ?)",
    [nowText(), PHASE, 'runId' in scope ? scope.runId : '', 'runId' in scope ? scope.runId : ''],
  );
  if ('runId' in scope) {
    const error =
      scope.error === undefined
        ? undefined
        : { name: scope.error.Error, message: scope.error.Cause ?? scope.error.Error };
    await finishRun(deps.target, scope.runId, 'rolled_back', error);
  } else {
    await deps.target.execute(
      "UPDATE migration_runs SET status = 'rolled_back', finished_at = COALESCE(finished_at, ?) WHERE phase = ? AND status <> 'rolled_back'",
      [nowText(), PHASE],
    );
    await finishRun(deps.target, rollbackRunId, 'succeeded');
  }
  return { rollbackRunId, undone: done.length };
}

export async function runFoundation(input: FoundationInput, deps: TaskDeps): Promise<unknown> {
  switch (input.step) {
    case 'start':
      return startFoundation(deps, input.execution ?? null);
    case 'tenants':
      await assertRunning(deps.target, input.runId);
      return createTenantTables(deps, input.runId);
    case 'table':
      await assertRunning(deps.target, input.runId);
      return createTable(deps, input.runId, input.table, input.mode);
    case 'verify':
      await assertRunning(deps.target, input.runId);
      return verifyFoundation(deps, input.runId);
    case 'rollback':
      if (input.runId === undefined || input.runId === null) return { rollbackRunId: null, undone: 0 };
      return rollbackFoundation(deps, { runId: input.runId, error: input.error });
    case 'rollback-phase':
      return rollbackFoundation(deps, { phase: PHASE });
  }
}
