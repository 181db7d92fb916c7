import { randomBytes } from 'node:crypto';
import { formatPath } from './config/load.ts';
import { type Config, tenantRules } from './config/schema.ts';
import { InputError } from './errors.ts';
import { isSafeIdentifier } from './identifiers.ts';
import type { ColumnInfo, SchemaInfo, TableInfo } from './schema/types.ts';
import type { SqlClient } from './sql/port.ts';
import { num, strOrNull } from './sql/rows.ts';

/**
 * Checks made before a phase writes anything: the target is not the source (by what the servers say, not by
 * host names), and the config fits the source (every column and table a rule names exists, every migrated name
 * is one we can quote).
 */

/** Source and target are one database: the migration would write its target tables into the legacy database. */
export class SourceIsTarget extends InputError {
  override name = 'SourceIsTarget';
}

/** The config names columns or tables the source does not have, or the source has names we cannot handle. */
export class ConfigMismatch extends InputError {
  override name = 'ConfigMismatch';
}

/**
 * Whether the two clients reach the same server: a user-level lock (server-wide, no privilege needed) taken
 * through `a`, in a transaction so the Data API keeps the session, is seen as used through `b`. Host aliases,
 * proxies and port forwards cannot fool it.
 */
export async function sameServer(a: SqlClient, b: SqlClient): Promise<boolean> {
  const name = `shifu-migrate-identity-${randomBytes(8).toString('hex')}`;
  return a.transaction(async (tx) => {
    const [taken] = await tx.query('SELECT GET_LOCK(?, 0) AS got', [name]);
    if (taken === undefined || num(taken, 'got') !== 1) return false;
    try {
      const [seen] = await b.query('SELECT IS_USED_LOCK(?) AS holder', [name]);
      return seen !== undefined && strOrNull(seen, 'holder') !== null;
    } finally {
      await tx.query('SELECT RELEASE_LOCK(?) AS released', [name]);
    }
  });
}

/**
 * Refuses ({@link SourceIsTarget}, exit 2) when the target database is the source database: same server (see
 * {@link sameServer}) and the same name (compared without case where the server folds table names).
 */
export async function assertSourceIsNotTarget(deps: {
  readonly source: SqlClient;
  readonly targetServer: SqlClient;
  readonly sourceUrl: { readonly database: string };
  readonly targetUrl: { readonly database: string };
}): Promise<void> {
  if (!(await sameServer(deps.targetServer, deps.source))) return;
  const [row] = await deps.source.query('SELECT @@lower_case_table_names AS folded');
  const folded = row !== undefined && num(row, 'folded') !== 0;
  const s = deps.sourceUrl.database;
  const t = deps.targetUrl.database;
  if (s === t || (folded && s.toLowerCase() === t.toLowerCase())) {
    throw new SourceIsTarget(
      `target.url names the source database: ${t} on the server source.url reaches (another host name for the same server). The target must be another database: change target.url`,
    );
  }
}

/** One thing the config asks of the source that the source does not have: the config field and the fix. */
export interface ConfigProblem {
  readonly table: string;
  readonly path: string;
  readonly message: string;
}

/**
 * What the config asks of the source that it does not have, and migrated names we will not quote: an empty list
 * when the config fits. `assess` reports these as blocking findings; foundation and data refuse to start.
 */
export function configProblems(config: Config, schema: SchemaInfo): ConfigProblem[] {
  const tables = new Map(schema.tables.map((t) => [t.name, t]));
  const has = (table: string, column: string) =>
    tables.get(table)?.columns.some((c) => c.name === column) ?? false;
  const problems: ConfigProblem[] = [];
  for (const [table, rules] of Object.entries(config.tables)) {
    const info = tables.get(table);
    if (info === undefined || rules.exclude !== undefined) continue;
    const list = tenantRules(rules);
    list.forEach((rule, i) => {
      const at = (...rest: (string | number)[]) =>
        formatPath(['tables', table, 'tenant', ...(Array.isArray(rules.tenant) ? [i] : []), ...rest]);
      if (rule.by === 'fixed') return;
      if (!has(table, rule.column)) {
        problems.push({
          table,
          path: at('column'),
          message: `${table} has no column ${JSON.stringify(rule.column)}: name one of its columns (${columnList(info.columns)})`,
        });
      }
      if (rule.by !== 'reference') return;
      const parent = tables.get(rule.references.table);
      if (parent === undefined) {
        problems.push({
          table,
          path: at('references', 'table'),
          message: `the source has no table ${JSON.stringify(rule.references.table)}: name the table this reference points at`,
        });
        return;
      }
      if (!has(parent.name, rule.references.column)) {
        problems.push({
          table,
          path: at('references', 'column'),
          message: `${parent.name} has no column ${JSON.stringify(rule.references.column)}: name one of its columns (${columnList(parent.columns)})`,
        });
      }
      const choice = rule.whenNotUnique;
      const ordering =
        choice === undefined || typeof choice === 'string'
          ? undefined
          : 'newest' in choice
            ? choice.newest
            : choice.oldest;
      if (ordering !== undefined && !has(parent.name, ordering)) {
        problems.push({
          table,
          path: at('whenNotUnique'),
          message: `${parent.name} has no column ${JSON.stringify(ordering)} to pick the deciding row by: name one of its columns`,
        });
      }
    });
    if (rules.changeColumn !== undefined) {
      const column = info.columns.find((c) => c.name === rules.changeColumn);
      const path = formatPath(['tables', table, 'changeColumn']);
      if (column === undefined)
        problems.push({
          table,
          path,
          message: `${table} has no column ${JSON.stringify(rules.changeColumn)}: name its DATETIME or TIMESTAMP column the application sets on every write (${columnList(info.columns)})`,
        });
      else if (!CHANGE_TYPES.has(column.dataType))
        problems.push({
          table,
          path,
          message: `${table}.${column.name} is ${column.columnType}, not a DATETIME or TIMESTAMP: sync reads rows changed since a time by it`,
        });
    }
    const unsafe = [info.name, ...info.columns.map((c) => c.name)].filter((n) => !isSafeIdentifier(n));
    if (unsafe.length > 0) {
      problems.push({
        table,
        path: formatPath(['tables', table]),
        message: `${JSON.stringify(table)} has names shifu-migrate does not handle (${unsafe.map((n) => JSON.stringify(n)).join(', ')}; only A-Z, a-z, 0-9, _ and $ are used unquoted): rename them on the source, or exclude the table`,
      });
    }
  }
  return problems;
}

/** Types a change column may have: sync compares them with a time read from the source's clock. */
const CHANGE_TYPES = new Set(['datetime', 'timestamp']);

/**
 * The column sync catches up by: the config's `changeColumn`, else the table's DATETIME or TIMESTAMP column declared
 * `ON UPDATE CURRENT_TIMESTAMP` (the first, if several); null when it has none (reconciliation only).
 */
export function changeColumn(config: Config, info: TableInfo): ColumnInfo | null {
  const named = config.tables[info.name]?.changeColumn;
  if (named !== undefined) return info.columns.find((c) => c.name === named) ?? null;
  return (
    info.columns.find((c) => CHANGE_TYPES.has(c.dataType) && /on update current_timestamp/i.test(c.extra)) ??
    null
  );
}

function columnList(columns: readonly { readonly name: string }[]): string {
  const names = columns.map((c) => c.name);
  return names.length > 12 ? `${names.slice(0, 12).join(', ')}, …` : names.join(', ');
}

/** Refuses ({@link ConfigMismatch}, exit 2) when {@link configProblems} finds anything. */
export function assertConfigFits(config: Config, schema: SchemaInfo): void {
  const problems = configProblems(config, schema);
  if (problems.length > 0) {
    throw new ConfigMismatch(
      `the config does not fit the source ${schema.database}:`,
      problems.map((p) => `${p.path}: ${p.message}`),
    );
  }
}
