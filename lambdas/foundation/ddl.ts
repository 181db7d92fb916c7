import { ident } from '../core/identifiers.ts';
import type { TableInfo } from '../core/schema/types.ts';
import { SchemaDrift } from './errors.ts';

export const TENANT_COLUMN = 'tenant_bid';

/**
 * The tenant column's type, with the charset and collation of `tenant_tenants.tenant_bid` spelled out: a
 * migrated table in another collation (MariaDB's default utf8mb4_general_ci, MySQL 8's utf8mb4_0900_ai_ci) would
 * otherwise give its tenant_bid that collation, and comparing it with tenant_tenants fails ("Illegal mix of
 * collations").
 */
export const TENANT_COLUMN_TYPE = 'varchar(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL';

const KEY_LINE = /^\s*(PRIMARY KEY|UNIQUE KEY|UNIQUE INDEX|KEY|INDEX|FULLTEXT|SPATIAL|CONSTRAINT)\b/i;
const FOREIGN_KEY = /^\s*CONSTRAINT\s+`[^`]+`\s+FOREIGN KEY\b/i;

/** The `(tenant_bid, <business key>)` index: tenant-scoped lookups by business id. */
export function tenantIndex(table: TableInfo): { name: string; columns: string[] } {
  const key = table.businessKey?.column;
  const columns = key !== undefined ? [key] : [...(table.primaryKey ?? [])];
  const name = `idx_tenant_${columns[0] ?? 'row'}`.slice(0, 64);
  return { name, columns: [TENANT_COLUMN, ...columns] };
}

/**
 * The target table's CREATE statement, from the source's `SHOW CREATE TABLE`: the same columns, keys and
 * options, plus (for tenant tables) `tenant_bid VARCHAR(32) NOT NULL` and its index; without declared
 * foreign keys (the tenant model links rows by tenant_bid and business ids) and without the source's
 * AUTO_INCREMENT counter (ids are copied as they are).
 */
export function targetCreateStatement(
  showCreate: string,
  table: TableInfo,
  mode: 'tenant' | 'global',
): { sql: string; droppedForeignKeys: string[] } {
  if (mode === 'tenant' && table.columns.some((c) => c.name === TENANT_COLUMN)) {
    throw new SchemaDrift(
      `${table.name} already has a ${TENANT_COLUMN} column in the source: rename it before migrating`,
    );
  }
  const lines = showCreate.split('\n');
  const head = lines[0] ?? '';
  const tail = lines[lines.length - 1] ?? '';
  if (!/^CREATE TABLE `[^`]+` \($/.test(head) || !tail.startsWith(')')) {
    throw new SchemaDrift(`unexpected SHOW CREATE TABLE output for ${table.name}: ${head}`);
  }
  const body = lines.slice(1, -1).map((l) => l.replace(/,$/, ''));
  const droppedForeignKeys = body.filter((l) => FOREIGN_KEY.test(l)).map((l) => l.trim());
  const kept = body.filter((l) => !FOREIGN_KEY.test(l));
  const firstKey = kept.findIndex((l) => KEY_LINE.test(l));
  const columns = firstKey === -1 ? kept : kept.slice(0, firstKey);
  const keys = firstKey === -1 ? [] : kept.slice(firstKey);
  if (mode === 'tenant') {
    columns.push(`  ${ident(TENANT_COLUMN)} ${TENANT_COLUMN_TYPE}`);
    const index = tenantIndex(table);
    keys.push(`  KEY ${ident(index.name, 'index')} (${index.columns.map((c) => ident(c)).join(', ')})`);
  }
  const options = tail.replace(/\s+AUTO_INCREMENT=\d+/i, '');
  const sql = `CREATE TABLE ${ident(table.name, 'table')} (\n${[...columns, ...keys].join(',\n')}\n${options}`;
  return { sql, droppedForeignKeys };
}
