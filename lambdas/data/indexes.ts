import { ident, qualified } from '../core/identifiers.ts';
import { nowText } from '../core/ledger/runs.ts';
import { runLongDdl } from '../core/sql/long-ddl.ts';
import { scalarNumber, str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';

/**
 * Secondary indexes are built after a bulk load, not kept up to date row by row: into an empty table the copy
 * writes with the primary key only, then one ALTER builds every secondary index by sorting (as myloader's
 * --innodb-optimize-keys and our demo loader do). Random `*_bid` values otherwise make each index insert a
 * random page write. The definitions are recorded in the ledger first, so a crash, a resume or a rollback
 * puts them back exactly.
 */

const SECONDARY = /^\s*((?:UNIQUE )?KEY `([^`]+)` .*?),?$/;

/** The secondary index definitions (`KEY …`, `UNIQUE KEY …`) in a table's SHOW CREATE TABLE text. */
export function secondaryIndexDefinitions(createTable: string): { name: string; definition: string }[] {
  return createTable.split('\n').flatMap((line) => {
    const m = SECONDARY.exec(line);
    return m === null ? [] : [{ name: m[2] ?? '', definition: m[1] ?? '' }];
  });
}

/** The target table's secondary index definitions, as SHOW CREATE TABLE writes them. */
async function secondaryIndexes(
  deps: TaskDeps,
  table: string,
): Promise<{ name: string; definition: string }[]> {
  const [row] = await deps.target.query(`SHOW CREATE TABLE ${qualified(deps.targetUrl.database, table)}`);
  return secondaryIndexDefinitions(row === undefined ? '' : str(row, 'Create Table'));
}

/** Drops an empty table's secondary indexes for the copy, after recording them. Nothing when it holds rows. */
export async function deferIndexes(deps: TaskDeps, runId: string, table: string): Promise<number> {
  const target = qualified(deps.targetUrl.database, table);
  if (
    scalarNumber(await deps.target.query(`SELECT COUNT(*) AS n FROM (SELECT 1 FROM ${target} LIMIT 1) x`)) > 0
  )
    return 0;
  const indexes = await secondaryIndexes(deps, table);
  if (indexes.length === 0) return 0;
  for (const index of indexes) {
    await deps.target.execute(
      `INSERT INTO migration_deferred_indexes (run_id, table_name, index_name, definition, dropped_at) VALUES (?, ?, ?, ?, ?)
       ON DUPLICATE KEY UPDATE definition = VALUES(definition)`,
      [runId, table, index.name, index.definition, nowText()],
    );
  }
  await deps.target.execute(
    `ALTER TABLE ${target} ${indexes.map((i) => `DROP INDEX ${ident(i.name, 'index')}`).join(', ')}, ALGORITHM=INPLACE, LOCK=NONE`,
  );
  return indexes.length;
}

/** The indexes a target table has now. */
async function indexNames(deps: TaskDeps, table: string): Promise<Set<string>> {
  return new Set(
    (
      await deps.targetServer.query(
        'SELECT DISTINCT INDEX_NAME AS i FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
        [deps.targetUrl.database, table],
      )
    ).map((r) => str(r, 'i')),
  );
}

/** The run is stopping while an index build runs on the server: it is left to finish there. */
export class IndexBuildStopped extends Error {
  override name = 'IndexBuildStopped';
}

/** The first column of an index definition as SHOW CREATE TABLE writes it: KEY `name` (`col`, …). */
function leadingColumn(definition: string): string | undefined {
  return /\(`((?:[^`]|``)+)`/.exec(definition)?.[1]?.replace(/``/g, '`');
}

/**
 * Builds what deferIndexes dropped (for this run and table, or every table of the run), in one ALTER each.
 * With `lookups`, only the indexes that lead with one of those columns: what a later level's reference rule
 * looks rows up by, built before that level starts; the rest wait for the end of the run.
 */
export async function rebuildIndexes(
  deps: TaskDeps,
  runId: string,
  table?: string,
  lookups?: readonly string[],
): Promise<number> {
  const deferred = await deps.target.query(
    `SELECT table_name, index_name, definition FROM migration_deferred_indexes WHERE run_id = ? AND rebuilt_at IS NULL${table === undefined ? '' : ' AND table_name = ?'}`,
    table === undefined ? [runId] : [runId, table],
  );
  const byTable = new Map<string, { name: string; definition: string }[]>();
  for (const row of deferred) {
    const definition = str(row, 'definition');
    if (lookups !== undefined && !lookups.includes(leadingColumn(definition) ?? '')) continue;
    const list = byTable.get(str(row, 'table_name')) ?? [];
    list.push({ name: str(row, 'index_name'), definition });
    byTable.set(str(row, 'table_name'), list);
  }
  let built = 0;
  for (const [name, indexes] of byTable) {
    const present = await indexNames(deps, name);
    const missing = indexes.filter((i) => !present.has(i.name));
    if (missing.length > 0) {
      // A sort of the whole table: through the Data API it outlives the call's 45 s and is waited for.
      await runLongDdl(
        deps.target,
        `ALTER TABLE ${qualified(deps.targetUrl.database, name)} ${missing.map((i) => `ADD ${i.definition}`).join(', ')}, ALGORITHM=INPLACE, LOCK=NONE`,
        async () => {
          const now = await indexNames(deps, name);
          return missing.every((i) => now.has(i.name));
        },
        {
          signal: deps.signal,
          stopped: () => new IndexBuildStopped(`${name}: the run is stopping while its indexes are built`),
          ...(deps.target.pollMs === undefined ? {} : { pollMs: deps.target.pollMs }),
        },
      );
      built += missing.length;
    }
    await deps.target.execute(
      `UPDATE migration_deferred_indexes SET rebuilt_at = ? WHERE run_id = ? AND table_name = ? AND rebuilt_at IS NULL AND index_name IN (${indexes.map(() => '?').join(', ')})`,
      [nowText(), runId, name, ...indexes.map((i) => i.name)],
    );
  }
  return built;
}
