import { rulesFingerprint } from '../core/config/fingerprint.ts';
import { ident, qualified } from '../core/identifiers.ts';
import { describeHolder } from '../core/ledger/lock.ts';
import { beginRun, failStart } from '../core/ledger/phase-run.ts';
import { nowText } from '../core/ledger/runs.ts';
import { assertConfigFits, assertSourceIsNotTarget } from '../core/preflight.ts';
import { introspect } from '../core/schema/introspect.ts';
import type { TableInfo } from '../core/schema/types.ts';
import { sourceClock } from '../core/sql/clock.ts';
import { keyComparison } from '../core/sql/keyset.ts';
import type { SqlParam } from '../core/sql/port.ts';
import { num, str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { assertLegacyOwnsEveryTenant } from '../core/tenant/ownership.ts';
import {
  chunkFromRow,
  copyKey,
  exactKeyValues,
  referenceRules,
  runContext,
  saveRunContext,
  tableInfo,
} from './context.ts';
import { DataNotReady } from './errors.ts';
import { deferIndexes } from './indexes.ts';
import type { Chunk, PlannedTable } from './schema.ts';

const PHASE = 'data' as const;

/** Deeper than any real chain of tenant references. */
const MAX_REFERENCE_DEPTH = 64;

/**
 * The most chunks one child execution of the copy's Distributed Map takes (ItemBatcher `MaxItemsPerBatchPath`):
 * each costs its child about 12 history events (Copy Chunk, then Validate Chunk), 74 if every retry is spent, so a
 * batch stays far inside the
 * 25,000-event limit (test/infra/budget.test.ts works it out from the ASL).
 */
export const MAX_CHUNKS_PER_BATCH = 100;

/** Batches per concurrent child: enough that a slow batch does not hold the table's end back for long. */
const BATCHES_PER_WORKER = 4;

/**
 * How many chunks each child execution copies, one after another: the table's chunks spread over about four
 * batches per child that may run at once (`maxConcurrency`), between 1 and {@link MAX_CHUNKS_PER_BATCH}.
 */
export function chunksPerBatch(chunks: number, maxConcurrency: number): number {
  const workers = Math.max(1, maxConcurrency) * BATCHES_PER_WORKER;
  return Math.min(MAX_CHUNKS_PER_BATCH, Math.max(1, Math.ceil(chunks / workers)));
}

/** Where a table's chunk list goes in the archive store: the copy's Distributed Map reads it (ItemReader). */
export function chunkListKey(runId: string, table: string): string {
  // Table names are A-Z a-z 0-9 _ $; archive keys have no `$` (and table names no `!`).
  return `runs/${runId}/chunks/${table.replaceAll('$', '!')}.json`;
}

/** Where the copy's Distributed Map writes its child executions' results (ResultWriter). */
export function copyResultsKey(runId: string, table: string): string {
  return `runs/${runId}/copy-results/${table.replaceAll('$', '!')}`;
}

/** What Plan Chunks hands the state machine: where the chunks are, how to batch them, where results go. */
export interface PublishedPlan {
  readonly chunks: { readonly bucket: string; readonly key: string; readonly count: number };
  readonly batchSize: number;
  readonly results: { readonly bucket: string; readonly prefix: string };
}

/**
 * Writes a table's chunk list to the archive store (a JSON array, as a Distributed Map's ItemReader reads it), so
 * no chunk list travels through state, whatever its length.
 */
export async function publishPlan(
  deps: TaskDeps,
  runId: string,
  table: string,
  chunks: readonly Chunk[],
): Promise<PublishedPlan> {
  const key = chunkListKey(runId, table);
  await deps.archive.put(key, JSON.stringify(chunks), { contentType: 'application/json' });
  const list = deps.archive.address(key);
  const results = deps.archive.address(copyResultsKey(runId, table));
  return {
    chunks: { bucket: list.bucket, key: list.key, count: chunks.length },
    batchSize: chunksPerBatch(chunks.length, deps.config.chunking.maxConcurrency),
    results: { bucket: results.bucket, prefix: results.key },
  };
}

/**
 * Equal-width keyset ranges between `lo` and `hi` (an integer key), sized so each holds about `size` rows of the
 * `estimate` spread over the span: as many chunks as the rows need, with no cap. BigInt arithmetic keeps BIGINT keys
 * beyond 2^53 exact (their bounds stored as digits where a number would round).
 */
export function integerRanges(lo: bigint, hi: bigint, estimate: number, size: number): Chunk[] {
  const span = hi - lo + 1n;
  const density = Math.min(1, Math.max(estimate, 1) / Number(span));
  const width = BigInt(Math.max(1, Math.round(size / density)));
  const count = Number((span + width - 1n) / width);
  const exact = (v: bigint): string | number => (Number.isSafeInteger(Number(v)) ? Number(v) : v.toString());
  const chunks: Chunk[] = [];
  for (let i = 0; i < count; i += 1) {
    chunks.push({
      n: i,
      after: i === 0 ? null : [exact(lo - 1n + BigInt(i) * width)],
      upTo: i === count - 1 ? null : [exact(lo - 1n + BigInt(i + 1) * width)],
    });
  }
  return chunks;
}

/**
 * Tables in dependency levels: a table comes after every table its tenant is derived from (copies resolve a
 * reference against rows already in the target), so its level is one more than its deepest parent's. Level 0
 * holds global tables and those with column rules only. Within a level the largest tables come first: they
 * finish last, so they should start first. A table that another's reference rule looks rows up in is marked
 * `referenced`: its secondary indexes are built before the next level starts; the others' wait for the end.
 */
export function planLevels(deps: TaskDeps, sourceTables: readonly TableInfo[]): PlannedTable[][] {
  const { config } = deps;
  const parents = (table: string): string[] => {
    const rules = config.tables[table];
    return rules === undefined || rules.global
      ? []
      : referenceRules(config, table).map((r) => r.references.table);
  };
  const levelOf = new Map<string, number>();
  const level = (table: string, depth: number): number => {
    const known = levelOf.get(table);
    if (known !== undefined) return known;
    // The config schema rejects reference cycles; this only guards against a config that skipped it.
    if (depth > MAX_REFERENCE_DEPTH)
      throw new TypeError(`tenant references of ${table} go round in a circle`);
    const above = parents(table).map((p) => level(p, depth + 1));
    const found = above.length === 0 ? 0 : 1 + Math.max(...above);
    levelOf.set(table, found);
    return found;
  };
  const migrated = sourceTables.filter((t) => {
    const rules = config.tables[t.name];
    return rules !== undefined && rules.exclude === undefined;
  });
  const referenced = new Set(migrated.flatMap((t) => parents(t.name)));
  const levels: { table: TableInfo; planned: PlannedTable }[][] = [];
  for (const table of migrated) {
    const at = level(table.name, 0);
    while (levels.length <= at) levels.push([]);
    levels[at]?.push({
      table,
      planned: {
        table: table.name,
        mode: config.tables[table.name]?.global ? 'global' : 'tenant',
        referenced: referenced.has(table.name),
      },
    });
  }
  return levels
    .filter((l) => l.length > 0)
    .map((l) => [...l].sort((a, b) => b.table.rowsEstimate - a.table.rowsEstimate).map((x) => x.planned));
}

/** Every planned table, largest first: the order the end of the run builds indexes and checks isolation in. */
export function largestFirst(deps: TaskDeps, sourceTables: readonly TableInfo[]): PlannedTable[] {
  const size = new Map(sourceTables.map((t) => [t.name, t.rowsEstimate]));
  return planLevels(deps, sourceTables)
    .flat()
    .sort((a, b) => (size.get(b.table) ?? 0) - (size.get(a.table) ?? 0));
}

/** What Start Data gives the state machine (and, through its output, the CLI). */
export interface DataStart {
  readonly runId: string;
  /** Set when this start resumes a run: where it stood, and whose lock it took over. */
  readonly resumed: {
    readonly chunksDone: number;
    readonly chunksTotal: number;
    readonly tablesPlanned: number;
    /** Rows the chunks done so far copied. */
    readonly rowsDone: number;
    /** The previous owner and why it no longer counted, when the lock was taken over from it. */
    readonly tookOverFrom: string | null;
  } | null;
  readonly levels: PlannedTable[][];
  readonly tables: PlannedTable[];
  /** The server's row estimate of each planned table: the progress display's denominator, known up front. */
  readonly rowsEstimate: Record<string, number>;
  readonly maxConcurrency: number;
}

/**
 * Start: refuses a target that is the source and a config that does not fit the source (exit 2, nothing written);
 * takes the run lock (a live holder refuses the start); resumes the phase's run that was interrupted or whose
 * process died, else records a new one; plans the levels. A failure after the run is recorded closes it (a new
 * run `refused`, a resumed one `interrupted` again) and gives the lock up before it is thrown.
 */
export async function startData(deps: TaskDeps, execution: string): Promise<DataStart> {
  await assertSourceIsNotTarget(deps);
  const database = await deps.targetServer.query(
    'SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
    [deps.targetUrl.database],
  );
  if (database.length === 0)
    throw new DataNotReady(
      `the target database ${deps.targetUrl.database} does not exist yet: run foundation first`,
    );
  const schema = await introspect(deps.source, deps.sourceUrl.database);
  assertConfigFits(deps.config, schema);
  await assertLegacyOwnsEveryTenant(deps, 'a data run');
  const start = await beginRun(deps.target, PHASE, execution, {
    resumable: true,
    configHash: rulesFingerprint(deps.config),
    // Where sync's watermark starts: every change after this moment may be missing from the copy.
    sourceClock: await sourceClock(deps.source),
  });
  const { runId } = start;
  try {
    const context =
      start.resumed === null
        ? await saveRunContext(deps, runId, schema)
        : await runContext(deps, runId, { orRead: 'and-keep' });
    const levels = planLevels(deps, context.schema.tables);
    const existing = await deps.targetServer.query(
      'SELECT TABLE_NAME AS t FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND COLUMN_NAME = ?',
      [deps.targetUrl.database, 'tenant_bid'],
    );
    const ready = new Set(existing.map((r) => str(r, 't')));
    const allTables = await deps.targetServer.query(
      'SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
      [deps.targetUrl.database],
    );
    const present = new Set(allTables.map((r) => str(r, 't')));
    const missing = levels
      .flat()
      .filter((p) => (p.mode === 'tenant' ? !ready.has(p.table) : !present.has(p.table)));
    if (missing.length > 0) {
      throw new DataNotReady(
        `the target lacks ${missing.map((m) => m.table).join(', ')}${missing.some((m) => m.mode === 'tenant') ? ' (with tenant_bid)' : ''}: run foundation first`,
      );
    }
    for (const planned of levels.flat()) {
      await deps.target.execute(
        `INSERT INTO migration_progress (run_id, phase, table_name, status, started_at) VALUES (?, ?, ?, 'planned', ?)
         ON DUPLICATE KEY UPDATE run_id = VALUES(run_id), status = IF(run_id = VALUES(run_id), status, 'planned'), started_at = VALUES(started_at)`,
        [runId, PHASE, planned.table, nowText()],
      );
    }
    let resumed: DataStart['resumed'] = null;
    if (start.resumed !== null) {
      // The source went on while the run stood still: chunks compared before are compared again (and copied
      // again where they differ), so "every chunk validated" holds for this run as it ends.
      await deps.target.execute(
        "UPDATE migration_chunks SET status = 'copied', isolated_at = NULL WHERE run_id = ? AND status IN ('validated', 'changing')",
        [runId],
      );
      const [done] = await deps.target.query(
        `SELECT COUNT(*) AS total, COALESCE(SUM(status IN ('copied', 'validated', 'changing')), 0) AS done,
                COUNT(DISTINCT table_name) AS tables,
                COALESCE(SUM(CASE WHEN status IN ('copied', 'validated', 'changing') THEN rows_copied ELSE 0 END), 0) AS rows_done
           FROM migration_chunks WHERE run_id = ?`,
        [runId],
      );
      resumed = {
        chunksDone: done === undefined ? 0 : num(done, 'done'),
        chunksTotal: done === undefined ? 0 : num(done, 'total'),
        tablesPlanned: done === undefined ? 0 : num(done, 'tables'),
        rowsDone: done === undefined ? 0 : num(done, 'rows_done'),
        tookOverFrom:
          start.tookOver === null
            ? null
            : `${describeHolder(start.tookOver)}: ${start.tookOver.stale ?? 'handed over'}`,
      };
    }
    return {
      runId,
      resumed,
      levels,
      tables: largestFirst(deps, context.schema.tables),
      rowsEstimate: Object.fromEntries(
        levels
          .flat()
          .map((p) => [p.table, context.schema.tables.find((t) => t.name === p.table)?.rowsEstimate ?? 0]),
      ),
      maxConcurrency: deps.config.chunking.maxConcurrency,
    };
  } catch (error) {
    await failStart(deps.target, { runId, resumed: start.resumed !== null }, execution, error);
    throw error;
  }
}

async function rowsPerChunk(
  deps: TaskDeps,
  table: string,
  key: readonly string[],
  columns: readonly string[],
): Promise<number> {
  const { rowsPerChunk, targetChunkSeconds } = deps.config.chunking;
  if (targetChunkSeconds === undefined) return rowsPerChunk;
  // Time one page read of the table; a copy takes about three reads' time (read, write, validate).
  const sample = 2_000;
  const started = performance.now();
  await deps.source.query(
    `SELECT ${columns.map((c) => ident(c)).join(', ')} FROM ${qualified(deps.sourceUrl.database, table)} ORDER BY ${key.map((k) => ident(k)).join(', ')} LIMIT ?`,
    [sample],
  );
  const seconds = Math.max(0.001, (performance.now() - started) / 1000);
  return Math.min(1_000_000, Math.max(100, Math.round(((sample / seconds) * targetChunkSeconds) / 3)));
}

/**
 * Whether recorded chunks cover a table's whole key space: numbered 0…n-1, the first open below, the last open
 * above, each starting where the one before ended.
 */
export function isWholePlan(plan: readonly Chunk[]): boolean {
  if (plan.length === 0 || plan[0]?.after !== null || plan.at(-1)?.upTo !== null) return false;
  return plan.every(
    (c, i) => c.n === i && (i === 0 || JSON.stringify(c.after) === JSON.stringify(plan[i - 1]?.upTo ?? null)),
  );
}

/**
 * Keyset chunks of one table: for a single integer key, ranges of equal width between MIN and MAX (two index
 * probes, sized by the row estimate); otherwise boundaries walked on the key's index, one step of `size`
 * index entries each (never an OFFSET from the start). Reused as recorded when the run resumes.
 */
export async function planChunks(deps: TaskDeps, runId: string, table: string): Promise<Chunk[]> {
  const recorded = await deps.target.query(
    'SELECT chunk_no, key_from, key_to FROM migration_chunks WHERE run_id = ? AND table_name = ? ORDER BY chunk_no',
    [runId, table],
  );
  if (recorded.length > 0) {
    const plan = recorded.map((r) => chunkFromRow(r));
    if (isWholePlan(plan)) return plan;
    // A plan saved by an older version in several statements, cut short: planned again from scratch (copies are
    // upserts, and the new ranges cover the whole key space).
    await deps.target.execute('DELETE FROM migration_chunks WHERE run_id = ? AND table_name = ?', [
      runId,
      table,
    ]);
  }
  const context = await runContext(deps, runId);
  const info = tableInfo(context, table);
  const key = copyKey(info);
  const source = qualified(deps.sourceUrl.database, table);
  const size = await rowsPerChunk(
    deps,
    table,
    key,
    info.columns.map((c) => c.name),
  );
  const estimate = Math.max(info.rowsEstimate, 1);
  const chunks: Chunk[] = [];
  const keyColumn = info.columns.find((c) => c.name === key[0]);
  const integer = key.length === 1 && /int$/.test(keyColumn?.dataType ?? '');

  if (integer) {
    const [bounds] = await deps.source.query(
      `SELECT MIN(${ident(key[0] ?? '')}) AS lo, MAX(${ident(key[0] ?? '')}) AS hi FROM ${source}`,
    );
    if (bounds === undefined || bounds.lo === null || bounds.hi === null) {
      chunks.push({ n: 0, after: null, upTo: null });
    } else {
      chunks.push(...integerRanges(BigInt(String(bounds.lo)), BigInt(String(bounds.hi)), estimate, size));
    }
  } else {
    const order = key.map((k) => `${ident(k)} ASC`).join(', ');
    let after: SqlParam[] | null = null;
    for (let n = 0; ; n += 1) {
      const lower = after === null ? undefined : keyComparison(key, '>', exactKeyValues(info, key, after));
      const [boundary] = await deps.source.query(
        `SELECT ${key.map((k) => ident(k)).join(', ')} FROM ${source}${lower === undefined ? '' : ` WHERE ${lower.sql}`} ORDER BY ${order} LIMIT 1 OFFSET ?`,
        [...(lower?.params ?? []), size - 1],
      );
      if (boundary === undefined) {
        chunks.push({ n, after: after as (string | number)[] | null, upTo: null });
        break;
      }
      const upTo = key.map((k) => boundary[k] as string | number);
      chunks.push({ n, after: after as (string | number)[] | null, upTo });
      after = upTo;
    }
  }
  // One transaction: a plan is in the ledger whole or not at all, so a crash or a retry never leaves half a table
  // unplanned (and so never copied) behind a plan that looks complete.
  await deps.target.transaction(async (tx) => {
    for (let i = 0; i < chunks.length; i += 500) {
      const slice = chunks.slice(i, i + 500);
      await tx.execute(
        `INSERT INTO migration_chunks (run_id, table_name, chunk_no, key_from, key_to, status) VALUES ${slice.map(() => "(?, ?, ?, ?, ?, 'planned')").join(', ')}`,
        slice.flatMap((c) => [
          runId,
          table,
          c.n,
          c.after === null ? null : JSON.stringify(c.after),
          c.upTo === null ? null : JSON.stringify(c.upTo),
        ]),
      );
    }
  });
  // A table empty now holds, after the copy, only what data runs put there: its rollback may truncate it.
  const [any] = await deps.target.query(
    `SELECT 1 AS found FROM ${qualified(deps.targetUrl.database, table)} LIMIT 1`,
  );
  await deps.target.execute(
    "UPDATE migration_progress SET empty_at_start = GREATEST(COALESCE(empty_at_start, 0), ?) WHERE phase = 'data' AND table_name = ?",
    [any === undefined ? 1 : 0, table],
  );
  await deferIndexes(deps, runId, table);
  await deps.target.execute(
    "UPDATE migration_progress SET status = 'copying', records_total = ? WHERE phase = ? AND table_name = ?",
    [info.rowsEstimate, PHASE, table],
  );
  return chunks;
}
