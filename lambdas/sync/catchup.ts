import { ident, qualified } from '../core/identifiers.ts';
import { assertRunOwner } from '../core/ledger/phase-run.ts';
import { nowText } from '../core/ledger/runs.ts';
import { changeColumn } from '../core/preflight.ts';
import { assertFrameReadable, inColumnFrame, sourceClock } from '../core/sql/clock.ts';
import { keyComparison } from '../core/sql/keyset.ts';
import type { SqlParam } from '../core/sql/port.ts';
import { num, str, strOrNull } from '../core/sql/rows.ts';
import { type TaskDeps, throwIfStopping } from '../core/task.ts';
import { type CopyJob, copyJob, exactKeyValues, type RunContext, runContext } from '../data/context.ts';
import { ChunkCancelled } from '../data/errors.ts';
import { keyIn } from '../data/exact.ts';
import { secondsBetween } from './clock-math.ts';
import { openConflictKeys, waitingKeys } from './conflicts.ts';
import { SyncNotReady } from './errors.ts';
import {
  addCounts,
  differingKeys,
  noRepairs,
  type RepairCounts,
  repairInPass,
  tenantsOwnedByTarget,
} from './repair.ts';

/** Changed keys read per page: each page is compared and repaired as one transaction. */
const PAGE_KEYS = 2_000;

/**
 * The rows of these keys, repaired in one transaction with the pass's counters: those that differ, or with `all`
 * every one (rows in an open conflict: the rules decide again, content equal or not).
 */
async function repairDiffering(
  deps: TaskDeps,
  runId: string,
  execution: string,
  context: RunContext,
  job: CopyJob,
  mode: 'tenant' | 'global',
  keys: readonly (readonly SqlParam[])[],
  all = false,
): Promise<RepairCounts> {
  const differ = all ? keys : await differingKeys(deps, job, keyIn(job.key, keys, 'a'));
  if (differ.length === 0) return noRepairs();
  return repairInPass(deps, { runId, execution }, context, job, mode, differ);
}

export interface CatchUpResult {
  readonly table: string;
  readonly changeColumn: string | null;
  readonly rowsLookedAt: number;
  readonly rowsApplied: number;
  readonly rowsDeleted: number;
  readonly conflicts: number;
  readonly lagSeconds: number | null;
  /** Reverse sync (rows of switched tenants, target → legacy): null when no tenant is switched. */
  readonly reverse: ReverseCatchUp | null;
}

export interface ReverseCatchUp {
  readonly rowsApplied: number;
  readonly rowsDeleted: number;
  readonly lagSeconds: number;
  readonly pendingRows: number;
}

/**
 * Reverse catch-up of one table: the keys of the target's rows of switched tenants whose change column is at or
 * after the reverse watermark minus the overlap (on the target's clock, in the column's frame there), compared
 * and carried back to legacy a page at a time; then the reverse watermark moves to where this read began. Deletes
 * on the target are carried back by reconciliation (a row that is gone has no change time).
 */
async function reverseCatchUp(
  deps: TaskDeps,
  runId: string,
  execution: string,
  context: RunContext,
  job: CopyJob,
  column: NonNullable<ReturnType<typeof changeColumn>>,
): Promise<ReverseCatchUp | null> {
  const owned = [...(await tenantsOwnedByTarget(deps.target))].sort();
  if (owned.length === 0 || deps.sourceWriter === undefined) return null;
  const { info, key } = job;
  await assertFrameReadable(deps.target, column);
  const [mark] = await deps.target.query(
    'SELECT reverse_watermark FROM migration_sync_watermarks WHERE table_name = ?',
    [info.name],
  );
  const [first] = await deps.target.query(
    `SELECT MIN(switched_at) AS t FROM tenant_migration_status WHERE status = 'switched'`,
  );
  const from =
    (mark === undefined ? null : strOrNull(mark, 'reverse_watermark')) ??
    (first === undefined ? null : strOrNull(first, 't')) ??
    (await sourceClock(deps.target));
  const readAt = await sourceClock(deps.target);
  const target = qualified(deps.targetUrl.database, info.name);
  const ownedBy = `a.tenant_bid IN (${owned.map(() => '?').join(', ')})`;
  const changed = `${ownedBy} AND a.${ident(column.name)} >= ${inColumnFrame(column)} - INTERVAL ? SECOND`;
  const order = key.map((k) => `a.${ident(k)}`).join(', ');
  let counts = noRepairs();
  let after: SqlParam[] | null = null;
  for (;;) {
    throwIfStopping(
      deps.signal,
      () => new ChunkCancelled(`${info.name}: reverse catch-up stopped, the pass is stopping`),
    );
    const next = after === null ? null : keyComparison(key, '>', after, 'a');
    const page = await deps.target.query(
      `SELECT ${order} FROM ${target} a WHERE ${changed}${next === null ? '' : ` AND ${next.sql}`} ORDER BY ${order} LIMIT ?`,
      [...owned, from, deps.config.sync.overlapSeconds, ...(next?.params ?? []), PAGE_KEYS],
    );
    if (page.length === 0) break;
    const keys = page.map((r) =>
      exactKeyValues(
        info,
        key,
        key.map((k) => r[k] ?? null),
      ),
    );
    counts = addCounts(counts, await repairDiffering(deps, runId, execution, context, job, 'tenant', keys));
    after = keys.at(-1) ?? null;
    if (page.length < PAGE_KEYS) break;
  }
  const [pending] = await deps.target.query(
    `SELECT COUNT(*) AS n FROM ${target} a WHERE ${ownedBy} AND a.${ident(column.name)} >= ${inColumnFrame(column)}`,
    [...owned, readAt.slice(0, 19)],
  );
  const pendingRows = pending === undefined ? 0 : num(pending, 'n');
  const lagSeconds = pendingRows === 0 ? 0 : secondsBetween(readAt, await sourceClock(deps.target));
  await deps.target.execute(
    `INSERT INTO migration_sync_watermarks (table_name, watermark, reverse_watermark, last_run_id, last_run_at) VALUES (?, '', ?, ?, ?)
     ON DUPLICATE KEY UPDATE reverse_watermark = GREATEST(COALESCE(reverse_watermark, ''), VALUES(reverse_watermark))`,
    [info.name, readAt, runId, nowText()],
  );
  await deps.target.execute(
    'UPDATE migration_sync_passes SET reverse_lag_seconds = ?, reverse_pending_rows = ? WHERE run_id = ? AND table_name = ?',
    [lagSeconds, pendingRows, runId, info.name],
  );
  return {
    rowsApplied: counts.reverseApplied,
    rowsDeleted: counts.reverseDeleted,
    lagSeconds,
    pendingRows,
  };
}

/** Where a table's catch-up starts: its watermark, else the source's clock as the followed copy began. */
async function watermarkOf(deps: TaskDeps, table: string): Promise<string> {
  const [mark] = await deps.target.query(
    'SELECT watermark FROM migration_sync_watermarks WHERE table_name = ?',
    [table],
  );
  if (mark !== undefined && str(mark, 'watermark') !== '') return str(mark, 'watermark');
  const [data] = await deps.target.query(
    "SELECT COALESCE(source_clock, started_at) AS began FROM migration_runs WHERE phase = 'data' AND status = 'succeeded' ORDER BY started_at DESC LIMIT 1",
  );
  if (data === undefined)
    throw new SyncNotReady(`${table} has no sync watermark and no data run copied it: run data first`);
  return str(data, 'began');
}

/**
 * Watermark catch-up of one table: the keys of rows whose change column is at or after the watermark minus
 * `sync.overlapSeconds` (the watermark and the column compared on the source, in the column's own time frame), in
 * key order, a page at a time; each page's rows that differ are repaired in one transaction. Then the watermark
 * moves to the source's clock as the pass began, and the lag is measured: rows changed since this catch-up began
 * reading are the ones it may have missed.
 */
export async function catchUp(
  deps: TaskDeps,
  runId: string,
  execution: string,
  table: string,
  mode: 'tenant' | 'global',
): Promise<CatchUpResult> {
  await assertRunOwner(deps.target, runId, execution);
  const context = await runContext(deps, runId);
  const job = copyJob(context, table);
  const { info, key } = job;
  const column = changeColumn(deps.config, info);
  if (column === null)
    return {
      table,
      changeColumn: null,
      rowsLookedAt: 0,
      rowsApplied: 0,
      rowsDeleted: 0,
      conflicts: 0,
      lagSeconds: null,
      reverse: null,
    };
  await assertFrameReadable(deps.source, column);
  const [run] = await deps.target.query('SELECT source_clock FROM migration_runs WHERE run_id = ?', [runId]);
  const passClock = run === undefined ? null : strOrNull(run, 'source_clock');
  const from = await watermarkOf(deps, table);
  const readAt = await sourceClock(deps.source);
  const source = qualified(deps.sourceUrl.database, table);
  const changed = `a.${ident(column.name)} >= ${inColumnFrame(column)} - INTERVAL ? SECOND`;
  const order = key.map((k) => `a.${ident(k)}`).join(', ');
  let counts = noRepairs();
  let lookedAt = 0;
  let after: SqlParam[] | null = null;
  for (;;) {
    throwIfStopping(
      deps.signal,
      () => new ChunkCancelled(`${table}: catch-up stopped, the pass is stopping`),
    );
    const next = after === null ? null : keyComparison(key, '>', after, 'a');
    const page = await deps.source.query(
      `SELECT ${order} FROM ${source} a WHERE ${changed}${next === null ? '' : ` AND ${next.sql}`} ORDER BY ${order} LIMIT ?`,
      [from, deps.config.sync.overlapSeconds, ...(next?.params ?? []), PAGE_KEYS],
    );
    if (page.length === 0) break;
    lookedAt += page.length;
    const keys = page.map((r) =>
      exactKeyValues(
        info,
        key,
        key.map((k) => r[k] ?? null),
      ),
    );
    counts = addCounts(counts, await repairDiffering(deps, runId, execution, context, job, mode, keys));
    after = keys.at(-1) ?? null;
    if (page.length < PAGE_KEYS) break;
  }
  // Rows in an open tenant conflict are looked at again every pass, changed or not: the rules may have been fixed.
  // So are rows an earlier pass left waiting for their parent: their change may be older than this watermark.
  const open = [...(await openConflictKeys(deps.target, job)), ...(await waitingKeys(deps.target, job))];
  for (let i = 0; i < open.length; i += PAGE_KEYS) {
    const keys = open.slice(i, i + PAGE_KEYS).map((c) => c.values);
    counts = addCounts(counts, await repairDiffering(deps, runId, execution, context, job, mode, keys, true));
  }
  const [pending] = await deps.source.query(
    `SELECT COUNT(*) AS n FROM ${source} a WHERE a.${ident(column.name)} >= ${inColumnFrame(column)}`,
    // Whole seconds: a DATETIME written in the second catch-up began may hold that second, rounded either way.
    [readAt.slice(0, 19)],
  );
  const pendingRows = pending === undefined ? 0 : num(pending, 'n');
  const now = await sourceClock(deps.source);
  // A row that waits for its parent was written after its parent, after the parent table's turn in this pass: no
  // older than the pass.
  const lagSeconds =
    counts.waiting > 0
      ? secondsBetween(passClock ?? readAt, now)
      : pendingRows === 0
        ? 0
        : secondsBetween(readAt, now);
  // The next pass reads from where this one began (rows left waiting are tried again by key, whatever their time).
  const watermark = passClock ?? readAt;
  await deps.target.execute(
    `INSERT INTO migration_sync_watermarks (table_name, watermark, last_run_id, last_run_at) VALUES (?, ?, ?, ?)
     ON DUPLICATE KEY UPDATE watermark = GREATEST(watermark, VALUES(watermark)), last_run_id = VALUES(last_run_id), last_run_at = VALUES(last_run_at)`,
    [table, watermark, runId, nowText()],
  );
  await deps.target.execute(
    'UPDATE migration_sync_passes SET change_column = ?, caught_up_at = ?, rows_looked_at = ?, applied_through = ?, lag_seconds = ?, pending_rows = ? WHERE run_id = ? AND table_name = ?',
    [column.name, nowText(), lookedAt, readAt, lagSeconds, pendingRows, runId, table],
  );
  return {
    table,
    changeColumn: column.name,
    rowsLookedAt: lookedAt,
    rowsApplied: counts.applied,
    rowsDeleted: counts.deleted,
    conflicts: counts.conflicts,
    lagSeconds,
    reverse: mode === 'tenant' ? await reverseCatchUp(deps, runId, execution, context, job, column) : null,
  };
}
