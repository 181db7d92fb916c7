import { ident, qualified } from '../identifiers.ts';
import type { SqlSession } from '../sql/port.ts';
import { num, str } from '../sql/rows.ts';
import type { Phase } from './runs.ts';
import { nowText } from './runs.ts';

/** Kinds of object a phase creates, each undone by its own statement. */
export type ObjectType = 'table' | 'column' | 'index' | 'row';

export interface CreatedObject {
  readonly id: number;
  readonly runId: string;
  readonly objectType: ObjectType;
  readonly tableName: string;
  readonly objectName: string;
}

/**
 * Creates an object with its record written first: the record says "this run creates it" before `create` runs, so
 * a process killed right after the statement still leaves the record, and the rollback removes the object. If the
 * statement fails, nothing was created and the record is taken back. Undoing an object that a killed run recorded
 * but never made is a no-op (the rollback looks first).
 */
export async function createRecorded(
  target: SqlSession,
  entry: Parameters<typeof recordCreated>[1],
  create: () => Promise<unknown>,
): Promise<void> {
  await recordCreated(target, entry);
  try {
    await create();
  } catch (error) {
    await target
      .execute(
        'DELETE FROM migration_ddl WHERE run_id = ? AND object_type = ? AND table_name = ? AND object_name = ? AND rolled_back_at IS NULL',
        [entry.runId, entry.objectType, entry.tableName, entry.objectName],
      )
      .catch(() => undefined);
    throw error;
  }
}

/** Records that `runId` created an object, so that its rollback removes exactly that. */
async function recordCreated(
  target: SqlSession,
  entry: {
    runId: string;
    phase: Phase;
    objectType: ObjectType;
    tableName: string;
    objectName: string;
    statement: string;
  },
): Promise<void> {
  await target.execute(
    `INSERT INTO migration_ddl (run_id, phase, object_type, table_name, object_name, statement, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
    [
      entry.runId,
      entry.phase,
      entry.objectType,
      entry.tableName,
      entry.objectName,
      entry.statement,
      nowText(),
    ],
  );
}

/** Objects created and not rolled back yet, newest first: the order to undo them in. */
export async function openObjects(
  target: SqlSession,
  scope: { runId: string } | { phase: Phase },
): Promise<CreatedObject[]> {
  const [column, value] = 'runId' in scope ? ['run_id', scope.runId] : ['phase', scope.phase];
  const rows = await target.query(
    `SELECT id, run_id, object_type, table_name, object_name FROM migration_ddl
      WHERE ${ident(column)} = ? AND rolled_back_at IS NULL ORDER BY id DESC`,
    [value],
  );
  return rows.map((r) => ({
    id: num(r, 'id'),
    runId: str(r, 'run_id'),
    objectType: str(r, 'object_type') as ObjectType,
    tableName: str(r, 'table_name'),
    objectName: str(r, 'object_name'),
  }));
}

/** The statement that removes a created object (tenant rows are keyed by their table's unique column). */
export function undoStatement(database: string, object: CreatedObject): { sql: string; params: string[] } {
  const table = qualified(database, object.tableName);
  switch (object.objectType) {
    case 'table':
      return { sql: `DROP TABLE IF EXISTS ${table}`, params: [] };
    case 'column':
      return { sql: `ALTER TABLE ${table} DROP COLUMN ${ident(object.objectName, 'column')}`, params: [] };
    case 'index':
      return { sql: `ALTER TABLE ${table} DROP INDEX ${ident(object.objectName, 'index')}`, params: [] };
    case 'row': {
      // object_name is "<key column>=<value>".
      const at = object.objectName.indexOf('=');
      return {
        sql: `DELETE FROM ${table} WHERE ${ident(object.objectName.slice(0, at), 'column')} = ?`,
        params: [object.objectName.slice(at + 1)],
      };
    }
  }
}

export async function markRolledBack(
  target: SqlSession,
  ids: readonly number[],
  byRunId: string,
): Promise<void> {
  if (ids.length === 0) return;
  await target.execute(
    `UPDATE migration_ddl SET rolled_back_at = ?, rolled_back_by = ? WHERE id IN (${ids.map(() => '?').join(', ')})`,
    [nowText(), byRunId, ...ids],
  );
}
