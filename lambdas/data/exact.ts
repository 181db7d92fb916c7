import { rangeCondition } from '../core/checksum.ts';
import { ident, qualified } from '../core/identifiers.ts';
import type { TableInfo } from '../core/schema/types.ts';
import type { Row, SqlParam, SqlSession } from '../core/sql/port.ts';
import type { TaskDeps } from '../core/task.ts';
import { asText } from '../core/tenant/rules.ts';
import { mayBeInRange, type QuarantinedKey } from './compare.ts';
import type { KeyBounds } from './context.ts';

/**
 * A re-copy makes the target's range equal the source's, for a source that is written while it is copied
 * (AI-Shifu stays live): the upsert adds and updates rows; this removes what the source no longer has, and keeps
 * the quarantine in step (a row that maps now leaves it, a row deleted from the source is no longer held).
 */

const INTEGER = /int$/;

/** The quarantine row key: the key's values as a JSON array, the same text on both copy paths. */
export function rowKeyText(
  info: TableInfo,
  key: readonly string[],
  row: Readonly<Record<string, SqlParam>>,
): string {
  const parts = key.map((k) => {
    const value = row[k] ?? null;
    const type = info.columns.find((c) => c.name === k)?.dataType ?? '';
    return INTEGER.test(type) ? String(value) : JSON.stringify(asText(value as Row[string]));
  });
  return `[${parts.join(', ')}]`;
}

/** `WHERE <key> IN (…)` for a list of key tuples (a row constructor for a composite key). */
export function keyIn(key: readonly string[], tuples: readonly (readonly SqlParam[])[], alias?: string) {
  const col = (k: string) => `${alias === undefined ? '' : `${alias}.`}${ident(k, 'key column')}`;
  const left = key.length === 1 ? col(key[0] ?? '') : `(${key.map(col).join(', ')})`;
  const one = key.length === 1 ? '?' : `(${key.map(() => '?').join(', ')})`;
  return { sql: `${left} IN (${tuples.map(() => one).join(', ')})`, params: tuples.flat() };
}

/** Keys of `table` in the range on one side, as rows of key columns. */
async function keysInRange(
  session: SqlSession,
  database: string,
  table: string,
  key: readonly string[],
  chunk: KeyBounds,
): Promise<Row[]> {
  const range = rangeCondition(key, chunk, 'a');
  return session.query(
    `SELECT ${key.map((k) => `a.${ident(k)}`).join(', ')} FROM ${qualified(database, table)} a WHERE ${range.sql}`,
    range.params,
  );
}

/** Deletes these keys from the target table, a thousand at a time. */
export async function deleteKeys(
  target: SqlSession,
  database: string,
  table: string,
  key: readonly string[],
  tuples: readonly (readonly SqlParam[])[],
): Promise<number> {
  let deleted = 0;
  for (let i = 0; i < tuples.length; i += 1_000) {
    const where = keyIn(key, tuples.slice(i, i + 1_000));
    const result = await target.execute(
      `DELETE FROM ${qualified(database, table)} WHERE ${where.sql}`,
      where.params,
    );
    deleted += result.affectedRows;
  }
  return deleted;
}

/**
 * Removes target rows of the range whose key the source range does not hold now (`kept`: the keys just copied,
 * as rowKeyText). Returns how many it deleted.
 */
export async function deleteMissingFromSource(
  deps: TaskDeps,
  target: SqlSession,
  info: TableInfo,
  key: readonly string[],
  chunk: KeyBounds,
  kept: ReadonlySet<string>,
): Promise<number> {
  const present = await keysInRange(target, deps.targetUrl.database, info.name, key, chunk);
  const extra = present
    .filter((row) => !kept.has(rowKeyText(info, key, row)))
    .map((row) => key.map((k) => row[k] ?? null));
  return extra.length === 0 ? 0 : deleteKeys(target, deps.targetUrl.database, info.name, key, extra);
}

/**
 * Drops quarantine rows of the range whose key the source no longer has (the row was deleted after it was
 * quarantined). Keys are checked against the source, so a text key whose range cannot be judged here is only
 * dropped when it is gone from the whole table.
 */
export async function dropStaleQuarantine(
  deps: TaskDeps,
  target: SqlSession,
  info: TableInfo,
  key: readonly string[],
  chunk: KeyBounds,
  quarantine: readonly QuarantinedKey[],
): Promise<void> {
  const candidates = quarantine.filter((q) => mayBeInRange(chunk, q.values));
  for (let i = 0; i < candidates.length; i += 1_000) {
    const slice = candidates.slice(i, i + 1_000);
    const where = keyIn(
      key,
      slice.map((q) => q.values),
      'a',
    );
    const found = await deps.source.query(
      `SELECT ${key.map((k) => `a.${ident(k)}`).join(', ')} FROM ${qualified(deps.sourceUrl.database, info.name)} a WHERE ${where.sql}`,
      where.params,
    );
    const alive = new Set(found.map((row) => rowKeyText(info, key, row)));
    const stale = slice.filter((q) => !alive.has(q.text)).map((q) => q.text);
    if (stale.length === 0) continue;
    await target.execute(
      `DELETE FROM migration_quarantine WHERE table_name = ? AND row_key IN (${stale.map(() => '?').join(', ')})`,
      [info.name, ...stale],
    );
  }
}

/** Drops the quarantine rows of these keys (rows that map now and were copied). */
export async function releaseFromQuarantine(
  target: SqlSession,
  table: string,
  keys: readonly string[],
): Promise<void> {
  for (let i = 0; i < keys.length; i += 1_000) {
    const slice = keys.slice(i, i + 1_000);
    await target.execute(
      `DELETE FROM migration_quarantine WHERE table_name = ? AND row_key IN (${slice.map(() => '?').join(', ')})`,
      [table, ...slice],
    );
  }
}
