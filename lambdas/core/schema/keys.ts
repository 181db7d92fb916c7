import type { TableInfo } from './types.ts';

/** The key chunks can be planned on: the primary key, else a unique key whose columns are all NOT NULL. */
export function chunkKey(table: TableInfo): string[] | null {
  if (table.primaryKey !== null) return [...table.primaryKey];
  const notNull = new Set(table.columns.filter((c) => !c.nullable).map((c) => c.name));
  const unique = table.uniqueKeys.find((k) => !k.prefix && k.columns.every((c) => notNull.has(c)));
  return unique === undefined ? null : [...unique.columns];
}

/**
 * Whether one column alone identifies a row: a one-column primary key or unique index (a prefix index does not
 * count). References to such a key need no "newest row wins", and may be joined 1:1.
 */
export function isUniqueColumn(table: TableInfo | undefined, column: string): boolean {
  if (table === undefined) return false;
  if (table.primaryKey?.length === 1 && table.primaryKey[0] === column) return true;
  return table.uniqueKeys.some((k) => !k.prefix && k.columns.length === 1 && k.columns[0] === column);
}
