import { ident, qualified } from '../core/identifiers.ts';
import { createRecorded, markRolledBack, openObjects, undoStatement } from '../core/ledger/ddl.ts';
import { releaseLock } from '../core/ledger/lock.ts';
import {
  assertRunOwner,
  beginRun,
  enterRollback,
  failStart,
  rollbackFailure,
} from '../core/ledger/phase-run.ts';
import { findRuns, nowText, setRunStatus, succeedRun, targetHasTable } from '../core/ledger/runs.ts';
import { TABLE_OPTIONS, TENANT_TABLES } from '../core/ledger/schema.ts';
import { assertConfigFits, assertSourceIsNotTarget } from '../core/preflight.ts';
import { introspect } from '../core/schema/introspect.ts';
import type { SchemaInfo, TableInfo } from '../core/schema/types.ts';
import type { SqlSession } from '../core/sql/port.ts';
import { scalarNumber, str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { TENANT_COLUMN, TENANT_COLUMN_TYPE, targetCreateStatement, tenantIndex } from './ddl.ts';
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

/**
 * Start: refuses a target that is the source and a config that does not fit the source (exit 2, nothing
 * written); then the target database and ledger exist, the run lock is taken (a live holder refuses the start),
 * the run is recorded and the tables to create are planned. A failure after that closes the run as `refused`.
 */
export async function startFoundation(
  deps: TaskDeps,
  execution: string,
): Promise<{ runId: string; tables: PlannedTable[] }> {
  await assertSourceIsNotTarget(deps);
  const schema = await introspect(deps.source, deps.sourceUrl.database);
  assertConfigFits(deps.config, schema);
  // The database itself is not rolled back: the ledger lives in it.
  await deps.targetServer.execute(
    `CREATE DATABASE IF NOT EXISTS ${ident(deps.targetUrl.database, 'database')} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
  );
  const { runId } = await beginRun(deps.target, PHASE, execution, { resumable: false });
  try {
    return { runId, tables: planTables(deps, schema) };
  } catch (error) {
    await failStart(deps.target, { runId, resumed: false }, execution, error);
    throw error;
  }
}

/** Tenant tables (tenant_tenants, status, routing), the config's tenants, and the initial routing: all legacy. */
export async function createTenantTables(deps: TaskDeps, runId: string): Promise<{ created: number }> {
  let created = 0;
  const existing = await targetTables(deps);
  for (const table of TENANT_TABLES) {
    if (existing.has(table.name)) continue;
    const sql = `CREATE TABLE ${ident(table.name, 'table')} (\n  ${table.body}\n) ${TABLE_OPTIONS}`;
    await createRecorded(
      deps.target,
      {
        runId,
        phase: PHASE,
        objectType: 'table',
        tableName: table.name,
        objectName: table.name,
        statement: sql,
      },
      () => deps.target.execute(sql),
    );
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
    await createRecorded(
      deps.target,
      {
        runId,
        phase: PHASE,
        objectType: 'row',
        tableName: table,
        objectName: `${keyColumn}=${key}`,
        statement: sql,
      },
      () => deps.target.execute(sql, params),
    );
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
    const addColumn = `ALTER TABLE ${ident(table)} ADD COLUMN ${ident(TENANT_COLUMN)} ${TENANT_COLUMN_TYPE} DEFAULT ''`;
    await createRecorded(
      deps.target,
      {
        runId,
        phase: PHASE,
        objectType: 'column',
        tableName: table,
        objectName: TENANT_COLUMN,
        statement: addColumn,
      },
      () => alterOnline(deps.target, addColumn),
    );
    const index = tenantIndex(info);
    const addIndex = `ALTER TABLE ${ident(table)} ADD INDEX ${ident(index.name, 'index')} (${index.columns.map((c) => ident(c)).join(', ')})`;
    await createRecorded(
      deps.target,
      {
        runId,
        phase: PHASE,
        objectType: 'index',
        tableName: table,
        objectName: index.name,
        statement: addIndex,
      },
      () => deps.target.execute(`${addIndex}, ALGORITHM=INPLACE, LOCK=NONE`),
    );
    await progress(deps.target, runId, table, 'completed');
    return { table, action: 'altered', droppedForeignKeys: [] };
  }
  const [row] = await deps.source.query(`SHOW CREATE TABLE ${qualified(deps.sourceUrl.database, table)}`);
  const showCreate = row === undefined ? '' : str(row, 'Create Table');
  const { sql, droppedForeignKeys } = targetCreateStatement(showCreate, info, mode);
  await createRecorded(
    deps.target,
    { runId, phase: PHASE, objectType: 'table', tableName: table, objectName: table, statement: sql },
    () => deps.target.execute(sql),
  );
  await progress(deps.target, runId, table, 'completed');
  return { table, action: 'created', droppedForeignKeys };
}

/** Every planned table exists with its tenant column and index; every tenant is there. Then the run succeeds. */
export async function verifyFoundation(
  deps: TaskDeps,
  runId: string,
  execution: string,
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
  await releaseLock(deps.target, execution, runId);
  return { runId, tables: planned.length, tenants: present.size, created: created.length };
}

/** Whether a column or index foundation recorded is on the target table (rows and tables undo idempotently). */
async function stillThere(deps: TaskDeps, type: string, table: string, name: string): Promise<boolean> {
  if (type !== 'column' && type !== 'index') return true;
  const rows = await deps.targetServer.query(
    type === 'column'
      ? 'SELECT 1 AS found FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?'
      : 'SELECT 1 AS found FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = ?',
    [deps.targetUrl.database, table, name],
  );
  return rows.length > 0;
}

const ledgerExists = (deps: TaskDeps) =>
  targetHasTable(deps.targetServer, deps.targetUrl.database, 'migration_ddl');

/** What foundation's rollback undoes: one run (its Catch), some runs, or the whole phase (the rollback state machine). */
export type FoundationRollback =
  | {
      kind: 'own';
      runId: string | null;
      execution: string;
      error?: { Error: string; Cause?: string | undefined } | undefined;
    }
  | { kind: 'runs'; runs: readonly string[]; rollbackRunId: string; execution: string }
  | { kind: 'phase'; rollbackRunId: string; execution: string };

/**
 * Undoes what foundation created, newest first, as `migration_ddl` recorded it: one run's objects (the Catch),
 * the objects of the runs a rollback without a phase found unfinished, or every foundation object not yet rolled
 * back (`rollback --phase foundation`). Nothing foundation did not record is touched; the ledger stays and says
 * what was rolled back, object by object as it goes. It refuses ({@link TableHoldsData}, the rollback run
 * `refused`, nothing changed) to drop a table that holds rows a later phase copied. A failure half-way leaves the
 * runs `rollback_failed` and {@link RollbackIncomplete} says what is left. The lock is given up at the end.
 */
export async function rollbackFoundation(
  deps: TaskDeps,
  request: FoundationRollback,
): Promise<{ rolledBack: boolean; undone: number; runs: string[]; rollbackRunId: string | null }> {
  if (request.kind === 'own' && request.runId === null)
    return { rolledBack: false, undone: 0, runs: [], rollbackRunId: null };
  if (!(await ledgerExists(deps))) return { rolledBack: false, undone: 0, runs: [], rollbackRunId: null };
  const { execution } = request;
  const rollbackRunId = request.kind === 'own' ? null : request.rollbackRunId;
  await enterRollback(
    deps.target,
    PHASE,
    execution,
    request.kind === 'own' ? { kind: 'own', runId: request.runId as string, error: request.error } : request,
  );
  try {
    const runs =
      request.kind === 'own'
        ? [request.runId as string]
        : request.kind === 'runs'
          ? [...request.runs]
          : (
              await findRuns(
                deps.target,
                "phase = ? AND status NOT IN ('rolled_back', 'refused')",
                [PHASE],
                10_000,
              )
            ).map((r) => r.runId);
    const objects =
      request.kind === 'phase'
        ? await openObjects(deps.target, { phase: PHASE })
        : (await Promise.all(runs.map((runId) => openObjects(deps.target, { runId }))))
            .flat()
            .sort((a, b) => b.id - a.id);
    const migrated = new Set(Object.keys(deps.config.tables));
    // One look at the target's tables; kept up to date below as the rollback drops them.
    const present = new Set((await targetTables(deps)).keys());
    for (const object of objects) {
      if (object.objectType !== 'table' || !migrated.has(object.tableName) || !present.has(object.tableName))
        continue;
      const rows = scalarNumber(
        await deps.target.query(`SELECT COUNT(*) AS n FROM ${ident(object.tableName)}`),
      );
      if (rows > 0) {
        const refusal = new TableHoldsData(
          `${object.tableName} holds ${rows} rows copied by a later phase: roll back the data phase first (npx shifu-migrate rollback --phase data), then foundation`,
        );
        if (rollbackRunId !== null)
          await setRunStatus(deps.target, rollbackRunId, 'refused', {
            error: { name: refusal.name, message: refusal.message },
          });
        else
          await setRunStatus(deps.target, runs[0] as string, 'rollback_failed', {
            error: { name: refusal.name, message: refusal.message },
          });
        throw refusal;
      }
    }
    for (const runId of runs)
      await setRunStatus(deps.target, runId, 'rolling_back', {
        from: ['running', 'stopping', 'failed', 'interrupted', 'succeeded', 'rollback_failed'],
      });
    let undone = 0;
    try {
      for (const object of objects) {
        const undo = undoStatement(deps.targetUrl.database, object);
        // A record written just before a killed run made its object stands for nothing: look before undoing.
        const exists =
          object.objectType === 'table' ||
          (present.has(object.tableName) &&
            (await stillThere(deps, object.objectType, object.tableName, object.objectName)));
        if (exists) await deps.target.execute(undo.sql, undo.params);
        if (object.objectType === 'table') present.delete(object.tableName);
        await markRolledBack(
          deps.target,
          [object.id],
          rollbackRunId ?? (request.kind === 'own' ? (request.runId as string) : ''),
        );
        undone += 1;
      }
    } catch (error) {
      const left = objects.length - undone;
      const incomplete = rollbackFailure(
        `the foundation rollback stopped half-way: ${undone} of ${objects.length} objects removed, ${left} left (migration_ddl rows with rolled_back_at NULL, e.g. ${objects
          .slice(undone, undone + 3)
          .map((o) => `${o.objectType} ${o.tableName}${o.objectType === 'table' ? '' : `.${o.objectName}`}`)
          .join(
            ', ',
          )}). What failed: ${(error as Error).message}. Fix the cause, then finish it: npx shifu-migrate rollback`,
        [error],
      );
      const recorded = { name: incomplete.name, message: incomplete.message };
      for (const runId of runs)
        await setRunStatus(deps.target, runId, 'rollback_failed', {
          from: ['rolling_back'],
          error: recorded,
        });
      if (rollbackRunId !== null)
        await setRunStatus(deps.target, rollbackRunId, 'failed', { error: recorded });
      throw incomplete;
    }
    await deps.target.execute(
      `UPDATE migration_progress SET status = 'rolled_back', completed_at = ? WHERE phase = ?${request.kind === 'phase' ? '' : ` AND run_id IN (${runs.map(() => '?').join(', ')})`}`,
      [nowText(), PHASE, ...(request.kind === 'phase' ? [] : runs)],
    );
    for (const runId of runs)
      await setRunStatus(deps.target, runId, 'rolled_back', { from: ['rolling_back'] });
    if (rollbackRunId !== null) await setRunStatus(deps.target, rollbackRunId, 'succeeded');
    return { rolledBack: true, undone, runs, rollbackRunId };
  } finally {
    await releaseLock(deps.target, execution).catch(() => undefined);
  }
}

export async function runFoundation(input: FoundationInput, deps: TaskDeps): Promise<unknown> {
  switch (input.step) {
    case 'start':
      return startFoundation(deps, input.execution);
    case 'tenants':
      await assertRunOwner(deps.target, input.runId, input.execution);
      return createTenantTables(deps, input.runId);
    case 'table':
      await assertRunOwner(deps.target, input.runId, input.execution);
      return createTable(deps, input.runId, input.table, input.mode);
    case 'verify':
      await assertRunOwner(deps.target, input.runId, input.execution);
      return verifyFoundation(deps, input.runId, input.execution);
    case 'rollback':
      return rollbackFoundation(deps, {
        kind: 'own',
        runId: input.runId,
        execution: input.execution,
        error: input.error,
      });
    case 'rollback-runs':
      return rollbackFoundation(deps, {
        kind: 'runs',
        runs: input.runs,
        rollbackRunId: input.rollbackRunId,
        execution: input.execution,
      });
    case 'rollback-phase':
      return rollbackFoundation(deps, {
        kind: 'phase',
        rollbackRunId: input.rollbackRunId,
        execution: input.execution,
      });
  }
}
