import { rangeChecksum } from '../core/checksum.ts';
import { ident, qualified } from '../core/identifiers.ts';
import { targetHasTable } from '../core/ledger/runs.ts';
import { changeColumn } from '../core/preflight.ts';
import type { TableInfo } from '../core/schema/types.ts';
import { inColumnFrame } from '../core/sql/clock.ts';
import type { SqlParam } from '../core/sql/port.ts';
import { num, scalarNumber, str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { openConflictKeys } from '../sync/conflicts.ts';
import { quarantinedKeys } from './compare.ts';
import { copyColumns, copyKey, exactKeyValues, runContext, tableInfo } from './context.ts';
import { keyIn } from './exact.ts';
import { checkIsolation } from './isolation.ts';
import { planLevels } from './plan.ts';

export interface TableVerification {
  readonly table: string;
  readonly mode: 'tenant' | 'global';
  readonly sourceRows: number;
  readonly targetRows: number;
  readonly quarantined: number;
  /** Rows in an open tenant conflict (sync left them as the target has them): out of both checksums. */
  readonly conflicts: number;
  /** Go-live: rows the multi-tenant side changed since its last drain began, out of both checksums. */
  readonly changedSinceDrain: number;
  readonly chunks: {
    readonly total: number;
    readonly validated: number;
    readonly failed: number;
    /** Rows were still being written on the source when compared: left to the sync phase. */
    readonly changing: number;
  };
  /** Whole-table COUNT and checksum, source (less quarantined rows) against target (less tenant_bid). */
  readonly checksum: { readonly source: string; readonly target: string; readonly equal: boolean };
  readonly isolation: {
    readonly unknownTenant: number;
    readonly ruleMismatch: number;
    readonly parentMismatch: number;
  } | null;
  readonly differences: number;
}

export interface Verification {
  readonly runId: string | null;
  readonly differences: number;
  readonly tables: readonly TableVerification[];
}

/**
 * Read-only integrity and isolation check of the target against the source, for the latest data run:
 * per table, rows on each side, quarantined rows, chunk states, a whole-table checksum, tenant isolation.
 */
export async function verifyTarget(
  deps: TaskDeps,
  options: {
    /**
     * Go-live: the source clock at which its last drain began. Rows the multi-tenant side changed since (by the
     * table's change column, less `sync.overlapSeconds`) are its own newer versions, which that drain could not
     * carry: left out of both checksums and counted, so live traffic does not fail the verification.
     */
    readonly changedSince?: string;
  } = {},
): Promise<Verification> {
  const ledger = await targetHasTable(deps.targetServer, deps.targetUrl.database, 'migration_runs');
  const [latest] = !ledger
    ? []
    : await deps.target.query(
        "SELECT run_id FROM migration_runs WHERE phase = 'data' AND status NOT IN ('rolled_back', 'refused') ORDER BY started_at DESC LIMIT 1",
      );
  if (latest === undefined) return { runId: null, differences: 0, tables: [] };
  const runId = str(latest, 'run_id');
  const context = await runContext(deps, runId, { orRead: 'only' });
  const isolation = new Map((await checkIsolation(deps, runId)).map((f) => [f.table, f]));
  // A ledger made before sync existed has no conflicts (verify reads without creating anything).
  const syncLedger = await targetHasTable(
    deps.targetServer,
    deps.targetUrl.database,
    'migration_sync_conflicts',
  );
  const tables: TableVerification[] = [];
  for (const { table, mode } of planLevels(deps, context.schema.tables).flat()) {
    const info = tableInfo(context, table);
    const key = copyKey(info);
    const columns = copyColumns(info);
    const exclude =
      mode === 'tenant' ? (await quarantinedKeys(deps, table, { info, key })).map((q) => q.values) : [];
    // Rows sync left in an open tenant conflict are out of both sides: reported, not compared.
    const conflicts = syncLedger
      ? (await openConflictKeys(deps.target, { info, key })).map((q) => q.values)
      : [];
    const changed =
      options.changedSince === undefined ? [] : await changedOnTarget(deps, info, key, options.changedSince);
    const whole = { after: null, upTo: null };
    const [source, target] = await Promise.all([
      rangeChecksum(deps.source, {
        database: deps.sourceUrl.database,
        table,
        columns,
        key,
        range: whole,
        exclude: [...exclude, ...conflicts, ...changed],
      }),
      rangeChecksum(deps.target, {
        database: deps.targetUrl.database,
        table,
        columns,
        key,
        range: whole,
        exclude: [...conflicts, ...changed],
      }),
    ]);
    const sourceRows = scalarNumber(
      await deps.source.query(`SELECT COUNT(*) AS n FROM ${qualified(deps.sourceUrl.database, table)}`),
    );
    // Conflicted keys the target does not hold (a re-registration left out): the target's own count has the rest.
    let targetConflictsGone = 0;
    for (let i = 0; i < conflicts.length; i += 1_000) {
      const where = keyIn(key, conflicts.slice(i, i + 1_000));
      targetConflictsGone +=
        Math.min(1_000, conflicts.length - i) -
        scalarNumber(
          await deps.target.query(
            `SELECT COUNT(*) AS n FROM ${qualified(deps.targetUrl.database, table)} WHERE ${where.sql}`,
            where.params,
          ),
        );
    }
    // Conflicted keys the source still has (the others are rows it deleted since).
    let sourceConflicts = 0;
    for (let i = 0; i < conflicts.length; i += 1_000) {
      const where = keyIn(key, conflicts.slice(i, i + 1_000));
      sourceConflicts += scalarNumber(
        await deps.source.query(
          `SELECT COUNT(*) AS n FROM ${qualified(deps.sourceUrl.database, table)} WHERE ${where.sql}`,
          where.params,
        ),
      );
    }
    const chunkRows = await deps.target.query(
      "SELECT COUNT(*) AS total, COALESCE(SUM(status = 'validated'), 0) AS validated, COALESCE(SUM(status = 'mismatch'), 0) AS failed, COALESCE(SUM(status = 'changing'), 0) AS changing FROM migration_chunks WHERE run_id = ? AND table_name = ?",
      [runId, table],
    );
    const chunks = chunkRows[0];
    const found = isolation.get(table) ?? null;
    const equal = source.rows === target.rows && source.sum === target.sum;
    const isolationProblems =
      found === null ? 0 : found.unknownTenant + found.ruleMismatch + found.parentMismatch;
    tables.push({
      table,
      mode,
      sourceRows,
      targetRows: target.rows + conflicts.length - targetConflictsGone,
      // Source rows held in the quarantine (an entry whose row the source has since deleted holds nothing).
      quarantined: sourceRows - source.rows - sourceConflicts,
      conflicts: conflicts.length,
      changedSinceDrain: changed.length,
      chunks: {
        total: chunks === undefined ? 0 : num(chunks, 'total'),
        validated: chunks === undefined ? 0 : num(chunks, 'validated'),
        failed: chunks === undefined ? 0 : num(chunks, 'failed'),
        changing: chunks === undefined ? 0 : num(chunks, 'changing'),
      },
      checksum: { source: `${source.rows}:${source.sum}`, target: `${target.rows}:${target.sum}`, equal },
      isolation:
        found === null
          ? null
          : {
              unknownTenant: found.unknownTenant,
              ruleMismatch: found.ruleMismatch,
              parentMismatch: found.parentMismatch,
            },
      // The checksums compare the source less its quarantined rows with the target, counts included.
      differences: (equal ? 0 : 1) + isolationProblems,
    });
  }
  return { runId, differences: tables.reduce((s, t) => s + t.differences, 0), tables };
}

/** More keys than this changed since the drain: not left out (the table differs, and is drained again). */
const MAX_CHANGED_KEYS = 50_000;

/** Keys of the rows the target changed since `since` (source clock, UTC), by the table's change column. */
async function changedOnTarget(
  deps: TaskDeps,
  info: TableInfo,
  key: readonly string[],
  since: string,
): Promise<SqlParam[][]> {
  const column = changeColumn(deps.config, info);
  if (column === null) return [];
  const rows = await deps.target.query(
    `SELECT ${key.map((k) => `a.${ident(k)}`).join(', ')} FROM ${qualified(deps.targetUrl.database, info.name)} a
      WHERE a.${ident(column.name)} >= ${inColumnFrame(column)} - INTERVAL ? SECOND LIMIT ?`,
    [since, deps.config.sync.overlapSeconds, MAX_CHANGED_KEYS + 1],
  );
  if (rows.length > MAX_CHANGED_KEYS) return [];
  return rows.map((r) =>
    exactKeyValues(
      info,
      key,
      key.map((k) => (r[k] ?? null) as string | number),
    ),
  );
}
