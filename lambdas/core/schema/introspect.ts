import { assertIdentifier } from '../identifiers.ts';
import type { Row, SqlSession } from '../sql/port.ts';
import { num, numOrNull, str, strOrNull } from '../sql/rows.ts';
import { findBusinessKey, inferReferences } from './references.ts';
import type { ColumnInfo, ForeignKeyInfo, IndexInfo, SchemaInfo, ServerInfo, TableInfo } from './types.ts';

/** Which server this is, from `VERSION()`. */
export async function readServerInfo(session: SqlSession): Promise<ServerInfo> {
  const [row] = await session.query('SELECT VERSION() AS version');
  const version = row === undefined ? '' : str(row, 'version');
  const [major = 0, minor = 0, patch = 0] = (/^(\d+)\.(\d+)\.(\d+)/.exec(version) ?? []).slice(1).map(Number);
  return { flavor: /mariadb/i.test(version) ? 'mariadb' : 'mysql', version, major, minor, patch };
}

// MariaDB quotes literal defaults ('abc') and writes an explicit NULL default as the word NULL.
function normaliseDefault(
  raw: string | null,
  extra: string,
  flavor: ServerInfo['flavor'],
): { value: string | null; expression: boolean } {
  if (raw === null) return { value: null, expression: false };
  if (flavor === 'mariadb') {
    if (raw === 'NULL') return { value: null, expression: false };
    const quoted = /^'(.*)'$/s.exec(raw);
    if (quoted) return { value: (quoted[1] ?? '').replace(/''/g, "'"), expression: false };
    return { value: raw, expression: !/^-?\d+(?:\.\d+)?$/.test(raw) };
  }
  return { value: raw, expression: /DEFAULT_GENERATED/i.test(extra) };
}

function groupBy<T>(rows: readonly Row[], key: (r: Row) => string, map: (r: Row) => T): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const row of rows) {
    const k = key(row);
    const list = groups.get(k) ?? [];
    list.push(map(row));
    groups.set(k, list);
  }
  return groups;
}

/**
 * Reads a database's structure from information_schema: tables, columns in order, keys, indexes, declared
 * foreign keys, size estimates, and the references inferred from `*_bid` columns. Read-only; a handful of
 * queries whatever the number of tables.
 */
export async function introspect(session: SqlSession, database: string): Promise<SchemaInfo> {
  assertIdentifier(database, 'database');
  const server = await readServerInfo(session);

  const tableRows = await session.query(
    `SELECT TABLE_NAME AS name, TABLE_TYPE AS type, ENGINE AS engine, TABLE_COLLATION AS collation,
            COALESCE(TABLE_ROWS, 0) AS rows_estimate, COALESCE(DATA_LENGTH, 0) AS data_bytes,
            COALESCE(INDEX_LENGTH, 0) AS index_bytes, AUTO_INCREMENT AS auto_increment
       FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME`,
    [database],
  );
  const columnRows = await session.query(
    `SELECT TABLE_NAME AS table_name, COLUMN_NAME AS name, ORDINAL_POSITION AS position, DATA_TYPE AS data_type,
            COLUMN_TYPE AS column_type, IS_NULLABLE AS nullable, COLUMN_DEFAULT AS default_value,
            CHARACTER_SET_NAME AS charset, COLLATION_NAME AS collation, EXTRA AS extra,
            CHARACTER_MAXIMUM_LENGTH AS max_length, NUMERIC_PRECISION AS numeric_precision,
            NUMERIC_SCALE AS numeric_scale, DATETIME_PRECISION AS datetime_precision
       FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION`,
    [database],
  );
  const indexRows = await session.query(
    `SELECT TABLE_NAME AS table_name, INDEX_NAME AS index_name, NON_UNIQUE AS non_unique,
            COLUMN_NAME AS column_name, SUB_PART AS sub_part
       FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ?
      ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX`,
    [database],
  );
  const fkRows = await session.query(
    `SELECT TABLE_NAME AS table_name, CONSTRAINT_NAME AS name, COLUMN_NAME AS column_name,
            REFERENCED_TABLE_NAME AS referenced_table, REFERENCED_COLUMN_NAME AS referenced_column
       FROM information_schema.KEY_COLUMN_USAGE
      WHERE TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME IS NOT NULL
      ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION`,
    [database],
  );
  // MariaDB stores JSON as LONGTEXT guarded by a json_valid() check named after the column.
  const jsonColumns = new Set<string>();
  if (server.flavor === 'mariadb') {
    const checks = await session.query(
      `SELECT TABLE_NAME AS table_name, CHECK_CLAUSE AS clause
         FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?`,
      [database],
    );
    for (const check of checks) {
      const match = /^json_valid\(`([^`]+)`\)$/i.exec(str(check, 'clause').trim());
      if (match) jsonColumns.add(`${str(check, 'table_name')}.${match[1]}`);
    }
  }

  const columnsByTable = groupBy(
    columnRows,
    (r) => str(r, 'table_name'),
    (r): ColumnInfo => {
      const table = str(r, 'table_name');
      const name = str(r, 'name');
      const extra = strOrNull(r, 'extra') ?? '';
      const dataType = str(r, 'data_type').toLowerCase();
      const def = normaliseDefault(strOrNull(r, 'default_value'), extra, server.flavor);
      return {
        name,
        position: num(r, 'position'),
        dataType,
        columnType: str(r, 'column_type'),
        nullable: str(r, 'nullable') === 'YES',
        defaultValue: def.value,
        defaultIsExpression: def.expression,
        charset: strOrNull(r, 'charset'),
        collation: strOrNull(r, 'collation'),
        extra,
        generated: /GENERATED/i.test(extra) && !/DEFAULT_GENERATED/i.test(extra),
        maxLength: numOrNull(r, 'max_length'),
        numericPrecision: numOrNull(r, 'numeric_precision'),
        numericScale: numOrNull(r, 'numeric_scale'),
        datetimePrecision: numOrNull(r, 'datetime_precision'),
        isJson: dataType === 'json' || jsonColumns.has(`${table}.${name}`),
      };
    },
  );

  const indexParts = groupBy(
    indexRows,
    (r) => `${str(r, 'table_name')}\u0000${str(r, 'index_name')}`,
    (r) => ({
      column: str(r, 'column_name'),
      unique: num(r, 'non_unique') === 0,
      prefix: r.sub_part !== null,
    }),
  );
  const indexesByTable = new Map<string, IndexInfo[]>();
  for (const [key, parts] of indexParts) {
    const [table = '', name = ''] = key.split('\u0000');
    const list = indexesByTable.get(table) ?? [];
    list.push({
      name,
      unique: parts.every((p) => p.unique),
      columns: parts.map((p) => p.column),
      prefix: parts.some((p) => p.prefix),
    });
    indexesByTable.set(table, list);
  }

  const fkParts = groupBy(
    fkRows,
    (r) => `${str(r, 'table_name')}\u0000${str(r, 'name')}`,
    (r) => ({
      column: str(r, 'column_name'),
      table: str(r, 'referenced_table'),
      to: str(r, 'referenced_column'),
    }),
  );
  const fksByTable = new Map<string, ForeignKeyInfo[]>();
  for (const [key, parts] of fkParts) {
    const [table = '', name = ''] = key.split('\u0000');
    const list = fksByTable.get(table) ?? [];
    list.push({
      name,
      columns: parts.map((p) => p.column),
      referencedTable: parts[0]?.table ?? '',
      referencedColumns: parts.map((p) => p.to),
    });
    fksByTable.set(table, list);
  }

  const tables: TableInfo[] = [];
  const views: string[] = [];
  for (const row of tableRows) {
    const name = str(row, 'name');
    if (str(row, 'type') !== 'BASE TABLE') {
      views.push(name);
      continue;
    }
    const columns = columnsByTable.get(name) ?? [];
    const indexes = indexesByTable.get(name) ?? [];
    const primary = indexes.find((i) => i.name === 'PRIMARY');
    tables.push({
      name,
      engine: strOrNull(row, 'engine'),
      collation: strOrNull(row, 'collation'),
      rowsEstimate: num(row, 'rows_estimate'),
      dataBytes: num(row, 'data_bytes'),
      indexBytes: num(row, 'index_bytes'),
      autoIncrement: numOrNull(row, 'auto_increment'),
      columns,
      primaryKey: primary ? primary.columns : null,
      uniqueKeys: indexes.filter((i) => i.unique && i.name !== 'PRIMARY'),
      indexes,
      foreignKeys: fksByTable.get(name) ?? [],
      businessKey: findBusinessKey(name, columns, indexes),
    });
  }
  const { references, ambiguous } = inferReferences(tables);
  return { database, server, tables, views, references, ambiguousReferences: ambiguous };
}
