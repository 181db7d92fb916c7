import type { ArchiveStore } from '../core/archive/port.ts';
import type { Config } from '../core/config/schema.ts';
import { tenantRules } from '../core/config/schema.ts';
import { introspect } from '../core/schema/introspect.ts';
import { chunkKey } from '../core/schema/keys.ts';
import type { ColumnInfo, SchemaInfo, TableInfo } from '../core/schema/types.ts';
import { parseKeyTuple } from '../core/sql/keyset.ts';
import type { Row, SqlParam } from '../core/sql/port.ts';
import { str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import type { RuleContext } from '../core/tenant/sql.ts';
import { UnsupportedKey } from './errors.ts';
import type { Chunk } from './schema.ts';

/** What every step of one data run shares: the source's structure as read at its start. */
export interface RunContext {
  readonly runId: string;
  readonly schema: SchemaInfo;
  readonly tables: ReadonlyMap<string, TableInfo>;
  /**
   * Tenants of referenced rows already looked up by this process for this run: `table.column` → value → tenant,
   * null when no row has that value. A table's parents are complete before its level starts and never change
   * during the run, so an answer stays true. At most {@link MAX_REMEMBERED_PARENTS} values per column.
   */
  readonly parentTenants: Map<string, Map<string, string | null>>;
}

/** Bound on each column's RunContext.parentTenants: about 10 MB at its fullest, whatever the table sizes. */
export const MAX_REMEMBERED_PARENTS = 100_000;

const schemaKey = (runId: string) => `runs/${runId}/schema.json`;
/**
 * Run contexts in memory, per archive store: on Lambda one per container (its dependencies are built once per
 * config version), locally one per function, so a local run reads the archive where a function on Lambda would.
 */
const caches = new WeakMap<ArchiveStore, Map<string, RunContext>>();
/** Runs kept in memory: a warm Lambda container serves run after run, each with its remembered parents. */
const CACHED_RUNS = 2;

function cacheOf(deps: TaskDeps): Map<string, RunContext> {
  let cache = caches.get(deps.archive);
  if (cache === undefined) {
    cache = new Map();
    caches.set(deps.archive, cache);
  }
  return cache;
}

/** The run's source structure is not in the archive: its start ended before it wrote it. */
export class RunContextMissing extends Error {
  override name = 'RunContextMissing';
}

/** A run's context, kept in memory (the oldest run dropped beyond CACHED_RUNS). */
function remember(deps: TaskDeps, runId: string, schema: SchemaInfo): RunContext {
  const cache = cacheOf(deps);
  const context: RunContext = {
    runId,
    schema,
    tables: new Map(schema.tables.map((t) => [t.name, t])),
    parentTenants: new Map(),
  };
  cache.delete(context.runId);
  cache.set(context.runId, context);
  for (const runId of cache.keys()) {
    if (cache.size <= CACHED_RUNS) break;
    cache.delete(runId);
  }
  return context;
}

/** Keeps the source's structure for the run (read now, unless the caller just read it). */
export async function saveRunContext(deps: TaskDeps, runId: string, read?: SchemaInfo): Promise<RunContext> {
  const schema = read ?? (await introspect(deps.source, deps.sourceUrl.database));
  await deps.archive.put(schemaKey(runId), JSON.stringify(schema), { contentType: 'application/json' });
  return remember(deps, runId, schema);
}

/**
 * The run's schema, from memory (a warm container) or the archive. Missing there, it is read from the source when
 * `orRead` (the start of a resumed run keeps it in the archive; the CLI's verify, which writes nothing, does not);
 * otherwise that is {@link RunContextMissing}: every step after the start finds what the start wrote.
 */
export async function runContext(
  deps: TaskDeps,
  runId: string,
  options: { readonly orRead?: 'and-keep' | 'only' } = {},
): Promise<RunContext> {
  const cached = cacheOf(deps).get(runId);
  if (cached !== undefined) return cached;
  const body = await deps.archive.get(schemaKey(runId));
  if (body === undefined) {
    if (options.orRead === 'and-keep') return saveRunContext(deps, runId);
    if (options.orRead === 'only')
      return remember(deps, runId, await introspect(deps.source, deps.sourceUrl.database));
    throw new RunContextMissing(
      `the source structure of ${runId} is not in ${deps.archive.location} (${schemaKey(runId)}): the run was started with another archive.url, or its start did not finish`,
    );
  }
  const schema = JSON.parse(body.toString('utf8')) as SchemaInfo;
  return remember(deps, runId, schema);
}

export function tableInfo(context: RunContext, table: string): TableInfo {
  const info = context.tables.get(table);
  if (info === undefined) throw new Error(`${table} is not in the source schema of ${context.runId}`);
  return info;
}

/** The copy key: the primary key, else a NOT NULL unique key; never binary (keys travel as JSON). */
export function copyKey(info: TableInfo): string[] {
  const key = chunkKey(info);
  if (key === null)
    throw new UnsupportedKey(
      `${info.name} has no primary key and no NOT NULL unique key: see the assessment`,
    );
  const binary = key.filter((k) =>
    /binary|blob/.test(info.columns.find((c) => c.name === k)?.dataType ?? ''),
  );
  if (binary.length > 0)
    throw new UnsupportedKey(
      `${info.name}'s key has binary columns (${binary.join(', ')}): chunk bounds and quarantined keys are kept as JSON text, which binary values do not survive (the assessment blocks on it)`,
    );
  return key;
}

/** The columns a copy writes: every source column except generated ones, in order. */
export function copyColumns(info: TableInfo): ColumnInfo[] {
  return info.columns.filter((c) => !c.generated);
}

/** Rules context for SQL that resolves references against the target, as copies do. */
export function targetRuleContext(
  deps: TaskDeps,
  context: RunContext,
  options: { joins?: 'unique' | 'all' } = {},
): RuleContext {
  return {
    config: deps.config,
    database: deps.sourceUrl.database,
    tables: context.tables,
    references: {
      kind: 'target',
      database: deps.targetUrl.database,
      ...(options.joins === undefined ? {} : { joins: options.joins }),
    },
  };
}

export function onUnmapped(config: Config, table: string): Config['onUnmapped'] {
  return config.tables[table]?.onUnmapped ?? config.onUnmapped;
}

/** Reference rules of a table (child column → parent table and key). */
export function referenceRules(config: Config, table: string) {
  const rules = config.tables[table];
  return (rules === undefined ? [] : tenantRules(rules)).flatMap((r) => (r.by === 'reference' ? [r] : []));
}

/** Columns of `table` that another table's reference rule looks rows up by. */
export function lookupColumns(config: Config, table: string): string[] {
  const columns = Object.keys(config.tables)
    .flatMap((t) => referenceRules(config, t))
    .filter((r) => r.references.table === table)
    .map((r) => r.references.column);
  return [...new Set(columns)];
}

/** A chunk as the ledger (migration_chunks) records it: key bounds as JSON arrays, NULL when open. */
export function chunkFromRow(row: Row): Chunk {
  const bound = (field: string) => (row[field] === null ? null : parseKeyTuple(str(row, field)));
  return { n: Number(row.chunk_no), after: bound('key_from'), upTo: bound('key_to') };
}

/** A chunk's key bounds as SQL parameters: exact for every key type (see {@link exactKeyValues}). */
export interface KeyBounds {
  readonly n: number;
  readonly after: readonly SqlParam[] | null;
  readonly upTo: readonly SqlParam[] | null;
}

const INTEGER_TYPE = /int$/;

/**
 * Key values as parameters that compare exactly: an integer key value beyond 2^53 travels and is stored as its
 * digits (JSON has no exact form for it), and a digit string compared with an integer column is compared as a
 * double by MySQL; as a `bigint` parameter it is an exact integer literal (DECIMAL on the Data API).
 */
export function exactKeyValues(
  info: TableInfo,
  key: readonly string[],
  values: readonly (string | number | SqlParam)[],
): SqlParam[] {
  return values.map((value, i) => {
    const type = info.columns.find((c) => c.name === key[i])?.dataType ?? '';
    return typeof value === 'string' && INTEGER_TYPE.test(type) && /^-?\d+$/.test(value)
      ? BigInt(value)
      : value;
  });
}

/** A chunk's bounds with {@link exactKeyValues}. */
export function exactBounds(job: Pick<CopyJob, 'info' | 'key'>, chunk: KeyBounds): KeyBounds {
  const exact = (bound: readonly SqlParam[] | null) =>
    bound === null ? null : exactKeyValues(job.info, job.key, bound as (string | number)[]);
  return { n: chunk.n, after: exact(chunk.after), upTo: exact(chunk.upTo) };
}

/** What both copy paths need to know about the table they copy. */
export interface CopyJob {
  /** The run the job is for. */
  readonly runId: string;
  readonly info: TableInfo;
  readonly key: string[];
  readonly columns: ColumnInfo[];
}

export function copyJob(context: RunContext, table: string): CopyJob {
  const info = tableInfo(context, table);
  return { runId: context.runId, info, key: copyKey(info), columns: copyColumns(info) };
}

/**
 * The structure a rollback deletes by: the run's, from the archive; when the archive does not hold it (the run was
 * started with another archive.url, or the folder is gone), the target's own tables, which foundation made with the
 * source's keys. Kept in memory only.
 */
export async function rollbackContext(deps: TaskDeps, runId: string): Promise<RunContext> {
  try {
    return await runContext(deps, runId);
  } catch (error) {
    if (!(error instanceof RunContextMissing)) throw error;
    const key = `target:${runId}`;
    return (
      cacheOf(deps).get(key) ?? remember(deps, key, await introspect(deps.target, deps.targetUrl.database))
    );
  }
}
