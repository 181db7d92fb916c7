import type { TableInfo } from './types.ts';

/** The key chunks can be planned on: the primary key, else a unique key whose columns are all NOT NULL. */
export function chunkKey(table: TableInfo): string[] | null {
  if (table.primaryKey !== null) return [...table.primaryKey];
  const notNull = new Set(table.columns.filter((c) => !c.nullable).map((c) => c.name));
  const unique = table.uniqueKeys.find((k) => !k.prefix && k.columns.every((c) => notNull.has(c)));
  return unique === undefined ? null : [...unique.columns];
}
