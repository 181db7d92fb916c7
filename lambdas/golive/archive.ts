import { createHash } from 'node:crypto';
import { pipeline, Readable, Transform, type TransformCallback } from 'node:stream';
import { createGzip } from 'node:zlib';
import { type Checksum, rangeChecksum } from '../core/checksum.ts';
import { ident, identList, qualified } from '../core/identifiers.ts';
import { nowText } from '../core/ledger/runs.ts';
import { introspect } from '../core/schema/introspect.ts';
import { chunkKey } from '../core/schema/keys.ts';
import type { ColumnInfo, TableInfo } from '../core/schema/types.ts';
import { keyComparison, readKeyset } from '../core/sql/keyset.ts';
import type { Row, SqlParam, SqlSession } from '../core/sql/port.ts';
import { num, str, strOrNull } from '../core/sql/rows.ts';
import { type TaskDeps, throwIfStopping } from '../core/task.ts';
import { exactKeyValues } from '../data/context.ts';
import { sliceableColumns } from '../data/copy-client.ts';
import { integerRanges } from '../data/plan.ts';
import { ArchiveChanged, ArchiveIncomplete, ArchiveStopped } from './errors.ts';

/**
 * The archive of the legacy tables: per table, its rows in gzip-compressed JSON Lines objects (one per key range,
 * a "part"), and a manifest that says how to read them and what they must add up to. Every value is kept exactly:
 * a JSON string of the text MySQL gives (DECIMAL, BIGINT beyond 2^53, DATETIME and TIMESTAMP in UTC, JSON text),
 * binary values as base64 strings, SQL NULL as JSON null. The checksum of each part and of the table is the one
 * the data phase computes (CRC pair per row, XORed), taken on the source in the same snapshot the rows were read
 * in, so a restore is proven by computing it again on the restored table.
 */

/** Where archives live in the archive store: `legacy-archive/<run>/<table>/…`. */
export const ARCHIVE_ROOT = 'legacy-archive';
export const ARCHIVE_FORMAT = 'shifu-migrate.jsonl.gz';
export const ARCHIVE_FORMAT_VERSION = 1;

/** Rows per part at most; fewer for wide rows, so a part stays about {@link PART_BYTES} before compression. */
const PART_ROWS = 100_000;
const PART_BYTES = 64 * 1024 * 1024;
/** Rows read per page: memory follows a page, never a part or a table. */
const PAGE_ROWS = 2_000;
const PAGE_BYTES = 8 * 1024 * 1024;

const BINARY_TYPE =
  /blob$|binary$|^bit$|^(geometry|point|linestring|polygon|multipoint|multilinestring|multipolygon|geometrycollection)$/;

/**
 * gzip's level 3, not its default 6: on the demo's JSON Lines a quarter less CPU for 1.15 times the bytes of level 6
 * (measured: docs/benchmarks.md has the archive's time and bytes against mariadb-dump | gzip).
 */
const GZIP_LEVEL = 3;

/** A column as the manifest describes it. */
export interface ArchivedColumn {
  readonly name: string;
  /** As declared: `decimal(20,10)`, `bigint(20) unsigned`, `varbinary(16)`. */
  readonly columnType: string;
  readonly dataType: string;
  readonly nullable: boolean;
  /** `base64` for binary values; `text` for every other value, as MySQL writes it. */
  readonly encoding: 'text' | 'base64';
}

/** What the parts of one table need: written once at planning, read by every part's task. */
export interface ArchivedTable {
  readonly table: string;
  /** `SHOW CREATE TABLE` of the source at planning time. */
  readonly ddl: string;
  readonly columns: readonly ArchivedColumn[];
  /** The key the parts are ranges of; empty for a table without one (then a single part). */
  readonly key: readonly string[];
}

/** One part: a key range of one table (bounds as JSON-safe values; integer keys beyond 2^53 as digits). */
export interface ArchivePart {
  readonly table: string;
  readonly n: number;
  readonly after: readonly (string | number)[] | null;
  readonly upTo: readonly (string | number)[] | null;
}

export interface ArchivedObject {
  readonly key: string;
  readonly part: number;
  /** The part's key range: after (exclusive) and up to (inclusive); null is open. */
  readonly after: readonly (string | number)[] | null;
  readonly upTo: readonly (string | number)[] | null;
  readonly rows: number;
  readonly bytes: number;
  /** SHA-256 of the object as stored (gzip). */
  readonly sha256: string;
  /** SHA-256 of its lines, uncompressed: computed again from a restored table, or from legacy before cleanup. */
  readonly linesSha256: string;
  /** The part's checksum (decimal text of the unsigned 64-bit XOR). */
  readonly checksum: string;
}

/** The per-table manifest, `legacy-archive/<run>/<table>/manifest.json`. */
export interface TableManifest extends ArchivedTable {
  readonly format: typeof ARCHIVE_FORMAT;
  readonly formatVersion: number;
  readonly runId: string;
  readonly sourceDatabase: string;
  readonly archivedAt: string;
  readonly rows: number;
  readonly bytes: number;
  /** The table's checksum: rows and the XOR of every row's hash, as the data phase computes it. */
  readonly checksum: Checksum;
  readonly objects: readonly ArchivedObject[];
  /** How another tool reads the parts with every value typed exactly (DuckDB). */
  readonly readWith: string;
}

/** The archive's own manifest, `legacy-archive/<run>/manifest.json`. */
export interface ArchiveManifest {
  readonly format: typeof ARCHIVE_FORMAT;
  readonly formatVersion: number;
  readonly runId: string;
  readonly sourceDatabase: string;
  readonly archivedAt: string;
  readonly tables: readonly {
    readonly table: string;
    readonly manifest: string;
    readonly rows: number;
    readonly objects: number;
    readonly bytes: number;
    readonly checksum: Checksum;
  }[];
}

/**
 * The archive's objects are kept unchangeable for `golive.archive.retentionDays` and a year more (S3 Object Lock,
 * compliance mode: the functions that wrote them cannot shorten it, nor can anyone else); none with 0 days.
 */
function retention(deps: TaskDeps): { retainUntil?: Date } {
  const days = deps.config.golive.archive.retentionDays;
  // A year past the earliest cleanup: once legacy is dropped the archive is the only copy, and still locked.
  return days === 0
    ? {}
    : { retainUntil: new Date(Date.now() + (days + LOCKED_AFTER_CLEANUP_DAYS) * 86_400_000) };
}

/** How long the archive stays locked after cleanup-legacy may first drop legacy. */
export const LOCKED_AFTER_CLEANUP_DAYS = 365;

/** A table name as a key part (table names may hold `$`; keys may not). */
const keyName = (table: string) => table.replaceAll('$', '!');

export const archivePrefix = (runId: string) => `${ARCHIVE_ROOT}/${runId}`;
export const archiveManifestKey = (runId: string) => `${archivePrefix(runId)}/manifest.json`;
export const tableManifestKey = (runId: string, table: string) =>
  `${archivePrefix(runId)}/${keyName(table)}/manifest.json`;
const tablePlanKey = (runId: string, table: string) => `runs/${runId}/archive/${keyName(table)}.table.json`;
/** A table's parts, as its Distributed Map reads them (ItemReader), and where the map writes its results. */
export const partListKey = (runId: string, table: string) =>
  `runs/${runId}/archive/${keyName(table)}.parts.json`;
export const partResultsKey = (runId: string, table: string) =>
  `runs/${runId}/archive/results/${keyName(table)}`;
export const partKey = (runId: string, table: string, n: number) =>
  `${archivePrefix(runId)}/${keyName(table)}/part-${String(n + 1).padStart(5, '0')}.jsonl.gz`;

function archivedColumns(info: TableInfo): ArchivedColumn[] {
  return info.columns
    .filter((c) => !c.generated)
    .map((c) => ({
      name: c.name,
      columnType: c.columnType,
      dataType: c.dataType,
      nullable: c.nullable,
      encoding: BINARY_TYPE.test(c.dataType) ? 'base64' : 'text',
    }));
}

/** Columns in the form the checksum needs (name and nullability are all it reads). */
export function checksumColumns(columns: readonly ArchivedColumn[]): ColumnInfo[] {
  return columns.map((c) => ({ name: c.name, nullable: c.nullable }) as ColumnInfo);
}

/** Rows per part for a table whose rows average `rowBytes`. */
function partRows(info: TableInfo, configured: number): number {
  const rowBytes = info.rowsEstimate > 0 ? info.dataBytes / info.rowsEstimate : 0;
  const byBytes = rowBytes > 0 ? Math.floor(PART_BYTES / rowBytes) : PART_ROWS;
  return Math.max(1, Math.min(configured, byBytes));
}

/** Rows per page for a table whose rows average `rowBytes`. */
function pageRows(info: TableInfo): number {
  const rowBytes = info.rowsEstimate > 0 ? info.dataBytes / info.rowsEstimate : 0;
  return Math.max(1, Math.min(PAGE_ROWS, rowBytes > 0 ? Math.floor(PAGE_BYTES / rowBytes) : PAGE_ROWS));
}

export interface ArchivePlan {
  readonly parts: { readonly bucket: string; readonly key: string; readonly count: number };
  readonly batchSize: number;
  /** Children that run at once (the Distributed Map's MaxConcurrency). */
  readonly maxConcurrency: number;
  readonly results: { readonly bucket: string; readonly prefix: string };
}

/**
 * Plans the archive: every table of the legacy database described (DDL, columns, key) for the parts' tasks, once
 * (a retried plan keeps what it wrote); the tables to archive, in order.
 */
export async function planArchive(deps: TaskDeps, runId: string): Promise<{ tables: string[] }> {
  const schema = await introspect(deps.source, deps.sourceUrl.database);
  for (const info of schema.tables) {
    if ((await deps.archive.list(tablePlanKey(runId, info.name))).length > 0) continue;
    const [create] = await deps.source.query(
      `SHOW CREATE TABLE ${qualified(deps.sourceUrl.database, info.name)}`,
    );
    const described: ArchivedTable = {
      table: info.name,
      ddl: str(create ?? {}, 'Create Table'),
      columns: archivedColumns(info),
      key: chunkKey(info) ?? [],
    };
    await deps.archive.put(tablePlanKey(runId, info.name), JSON.stringify(described), {
      contentType: 'application/json',
    });
  }
  return { tables: schema.tables.map((t) => t.name) };
}

/**
 * One table's parts: recorded in the ledger in one transaction (a plan is whole or absent; a resumed run keeps the
 * one it recorded), then their list in the archive store for the table's Distributed Map.
 */
export async function planTableParts(deps: TaskDeps, runId: string, table: string): Promise<ArchivePlan> {
  const recorded = await deps.target.query(
    'SELECT chunk_no, key_from, key_to FROM migration_archive_chunks WHERE run_id = ? AND table_name = ? ORDER BY chunk_no',
    [runId, table],
  );
  let parts: ArchivePart[];
  if (recorded.length > 0) {
    const bound = (r: Row, field: string) => {
      const text = strOrNull(r, field);
      return text === null ? null : (JSON.parse(text) as (string | number)[]);
    };
    parts = recorded.map((r) => ({
      table,
      n: num(r, 'chunk_no'),
      after: bound(r, 'key_from'),
      upTo: bound(r, 'key_to'),
    }));
  } else {
    const described = await tableOf(deps, runId, table);
    const info = await introspectOne(deps, table);
    if (info === null) throw new ArchiveIncomplete(`${table} is no longer in ${deps.sourceUrl.database}`);
    parts = await planParts(deps, info, described.key);
    await deps.target.transaction(async (tx) => {
      for (let i = 0; i < parts.length; i += 500) {
        const slice = parts.slice(i, i + 500);
        await tx.execute(
          `INSERT INTO migration_archive_chunks (run_id, table_name, chunk_no, key_from, key_to, status) VALUES ${slice.map(() => "(?, ?, ?, ?, ?, 'planned')").join(', ')}`,
          slice.flatMap((p) => [
            runId,
            table,
            p.n,
            p.after === null ? null : JSON.stringify(p.after),
            p.upTo === null ? null : JSON.stringify(p.upTo),
          ]),
        );
      }
    });
  }
  const key = partListKey(runId, table);
  await deps.archive.put(key, JSON.stringify(parts), { contentType: 'application/json' });
  const list = deps.archive.address(key);
  const results = deps.archive.address(partResultsKey(runId, table));
  const workers = Math.max(1, deps.config.golive.archive.maxConcurrency) * 4;
  return {
    parts: { bucket: list.bucket, key: list.key, count: parts.length },
    batchSize: Math.min(100, Math.max(1, Math.ceil(parts.length / workers))),
    maxConcurrency: deps.config.golive.archive.maxConcurrency,
    results: { bucket: results.bucket, prefix: results.key },
  };
}

/** Key ranges of about `partRows` rows: equal widths for an integer key, index walks otherwise. */
async function planParts(deps: TaskDeps, info: TableInfo, key: readonly string[]): Promise<ArchivePart[]> {
  const table = info.name;
  if (key.length === 0) return [{ table, n: 0, after: null, upTo: null }];
  const size = partRows(info, deps.config.golive.archive.partRows);
  const source = qualified(deps.sourceUrl.database, table);
  const column = info.columns.find((c) => c.name === key[0]);
  if (key.length === 1 && /int$/.test(column?.dataType ?? '')) {
    const k = `\`${key[0]}\``;
    const [bounds] = await deps.source.query(`SELECT MIN(${k}) AS lo, MAX(${k}) AS hi FROM ${source}`);
    if (bounds === undefined || bounds.lo === null || bounds.hi === null) {
      return [{ table, n: 0, after: null, upTo: null }];
    }
    return integerRanges(
      BigInt(String(bounds.lo)),
      BigInt(String(bounds.hi)),
      Math.max(info.rowsEstimate, 1),
      size,
    ).map((c) => ({ table, n: c.n, after: c.after, upTo: c.upTo }));
  }
  const parts: ArchivePart[] = [];
  const names = key.map((k) => `\`${k}\``);
  let after: (string | number)[] | null = null;
  for (let n = 0; ; n += 1) {
    const lower = after === null ? undefined : keyComparison(key, '>', exactKeyValues(info, key, after));
    const [boundary] = await deps.source.query(
      `SELECT ${names.join(', ')} FROM ${source}${lower === undefined ? '' : ` WHERE ${lower.sql}`} ORDER BY ${names.map((k) => `${k} ASC`).join(', ')} LIMIT 1 OFFSET ?`,
      [...(lower?.params ?? []), size - 1],
    );
    if (boundary === undefined) {
      parts.push({ table, n, after, upTo: null });
      return parts;
    }
    const upTo = key.map((k) => boundary[k] as string | number);
    parts.push({ table, n, after, upTo });
    after = upTo;
  }
}

const described = new Map<string, ArchivedTable>();

async function tableOf(deps: TaskDeps, runId: string, table: string): Promise<ArchivedTable> {
  const cacheKey = `${deps.archive.location}|${runId}|${table}`;
  const known = described.get(cacheKey);
  if (known !== undefined) return known;
  const body = await deps.archive.get(tablePlanKey(runId, table));
  if (body === undefined) {
    throw new ArchiveIncomplete(`the archive plan of ${table} (${tablePlanKey(runId, table)}) is missing`);
  }
  const value = JSON.parse(body.toString('utf8')) as ArchivedTable;
  described.set(cacheKey, value);
  return value;
}

/** One row as a JSON Lines line: every value a string (binary as base64) or null, columns in table order. */
export function rowLine(
  names: readonly string[],
  fields: readonly string[],
  base64: readonly boolean[],
  row: Row,
) {
  let line = '{';
  for (let i = 0; i < names.length; i += 1) {
    const value = row[names[i] as string];
    let text: string;
    if (value === null || value === undefined) text = 'null';
    else if (Buffer.isBuffer(value)) {
      if (!base64[i]) throw new TypeError(`column ${names[i]} returned bytes but is archived as text`);
      text = `"${value.toString('base64')}"`;
      // A number as MySQL writes it: JavaScript's `1e+21` is MySQL's `1e21`.
    } else text = JSON.stringify(typeof value === 'string' ? value : String(value).replace('e+', 'e'));
    line += `${i === 0 ? '' : ','}${fields[i]}:${text}`;
  }
  return `${line}}\n`;
}

/** Counts and hashes the bytes that pass (the compressed object, as stored). */
class Digest extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
}

export interface PartResult {
  readonly table: string;
  readonly part: number;
  readonly rows: number;
  readonly bytes: number;
}

/**
 * Archives one part: in one transaction on the source, the range's checksum (which fixes the snapshot), its rows
 * page by page into a gzip stream hashed on its way to the store, then the checksum again: equal, and equal in rows
 * to what was written, or the part is not recorded (the source changed under a non-snapshot read) and is retried.
 * Writing the same part again replaces its object: a retry or a resumed run leaves one object per part.
 */
export async function archivePart(deps: TaskDeps, runId: string, part: ArchivePart): Promise<PartResult> {
  const started = performance.now();
  const table = await tableOf(deps, runId, part.table);
  const info = (await introspectOne(deps, part.table)) ?? undefined;
  const columns = checksumColumns(table.columns);
  const key = [...table.key];
  const exact = (bound: readonly (string | number)[] | null) =>
    bound === null || info === undefined ? bound : exactKeyValues(info, key, bound);
  const range = {
    after: exact(part.after) as SqlParam[] | null,
    upTo: exact(part.upTo) as SqlParam[] | null,
  };
  const [recorded] = await deps.target.query(
    'SELECT status, rows_archived, bytes, checksum FROM migration_archive_chunks WHERE run_id = ? AND table_name = ? AND chunk_no = ?',
    [runId, part.table, part.n],
  );
  if (recorded !== undefined && str(recorded, 'status') === 'archived') {
    // Archived by an earlier attempt of this run: kept only while legacy still holds what it archived (a resumed
    // go-live drained again before it came here, and that drain may have carried writes to legacy).
    const now = await partChecksum(deps.source, deps, table, columns, range);
    if (now.rows === num(recorded, 'rows_archived') && now.sum === strOrNull(recorded, 'checksum'))
      return {
        table: part.table,
        part: part.n,
        rows: num(recorded, 'rows_archived'),
        bytes: num(recorded, 'bytes'),
      };
  }
  const objectKey = partKey(runId, part.table, part.n);
  const digest = new Digest();
  // The lines' own SHA-256 (uncompressed): what restore-archive and cleanup-legacy compute again from a table.
  const content = createHash('sha256');
  let rows = 0;

  const work = async (session: SqlSession) => {
    const before = await partChecksum(session, deps, table, columns, range);
    async function* lines(): AsyncGenerator<Buffer> {
      for await (const page of linesOf(
        { session, database: deps.sourceUrl.database, adapter: deps.source.adapter },
        table,
        range,
        info,
      )) {
        throwIfStopping(
          deps.signal,
          () => new ArchiveStopped(`${part.table} part ${part.n + 1} stopped: the run is stopping`),
        );
        rows += page.rows;
        content.update(page.bytes);
        yield page.bytes;
      }
    }
    // pipeline, not pipe: a read that fails destroys the gzip and hash streams, so the store's write fails with it.
    const body = pipeline(Readable.from(lines()), createGzip({ level: GZIP_LEVEL }), digest, () => {});
    await deps.archive.put(objectKey, body, { contentType: 'application/gzip', ...retention(deps) });
    const after = await partChecksum(session, deps, table, columns, range);
    return { before, after };
  };
  // On mysql2, one transaction: one snapshot for the checksums and the rows. The Data API ends a transaction when a
  // row is over its 64 KB (and such rows are read in slices, each in a transaction of its own): there the two equal
  // checksums alone say the part did not change while it was read.
  const result =
    deps.source.adapter === 'data-api' ? await work(deps.source) : await deps.source.transaction(work);
  if (result.before.sum !== result.after.sum || result.before.rows !== rows || result.after.rows !== rows) {
    throw new ArchiveChanged(
      `${part.table} part ${part.n + 1} changed while it was archived (${result.before.rows} rows before, ${rows} read, ${result.after.rows} after): the legacy database is still written; the part is archived again`,
    );
  }
  const sha256 = digest.hash.digest('hex');
  await deps.target.execute(
    `UPDATE migration_archive_chunks SET status = 'archived', object_key = ?, rows_archived = ?, bytes = ?, sha256 = ?, lines_sha256 = ?, checksum = ?, seconds = ?
     WHERE run_id = ? AND table_name = ? AND chunk_no = ?`,
    [
      objectKey,
      rows,
      digest.bytes,
      sha256,
      content.digest('hex'),
      result.before.sum,
      (performance.now() - started) / 1000,
      runId,
      part.table,
      part.n,
    ],
  );
  deps.metrics.put('golive', { ArchivedRows: rows });
  return { table: part.table, part: part.n, rows, bytes: digest.bytes };
}

const introspected = new Map<string, TableInfo | null>();

/** The source's description of one table (for exact key values), once per container. */
async function introspectOne(deps: TaskDeps, table: string): Promise<TableInfo | null> {
  const cacheKey = `${deps.sourceUrl.database}|${table}`;
  if (!introspected.has(cacheKey)) {
    const schema = await introspect(deps.source, deps.sourceUrl.database);
    for (const t of schema.tables) introspected.set(`${deps.sourceUrl.database}|${t.name}`, t);
  }
  return introspected.get(cacheKey) ?? null;
}

function partChecksum(
  session: SqlSession,
  deps: TaskDeps,
  table: ArchivedTable,
  columns: readonly ColumnInfo[],
  range: { after: SqlParam[] | null; upTo: SqlParam[] | null },
): Promise<Checksum> {
  return rangeChecksum(session, {
    database: deps.sourceUrl.database,
    table: table.table,
    columns,
    key: table.key.length === 0 ? ['__none__'] : table.key,
    range: table.key.length === 0 ? { after: null, upTo: null } : range,
  });
}

/**
 * One row's JSON Lines line, built by the server: every value as `CAST(… AS CHAR)` gives it (the text the client
 * would receive), binary values as base64 (without the line breaks TO_BASE64 puts in), NULL as null. The server
 * formats while this process compresses, and a row reaches the client as one string instead of a value per column.
 * A line longer than the server's max_allowed_packet comes back NULL: its page is read again column by column.
 */
export function lineExpression(columns: readonly ArchivedColumn[]): string {
  const parts = columns.map((c) => {
    const column = ident(c.name, 'column');
    // A FLOAT as its exact double (CAST of a FLOAT gives six digits): the nearest FLOAT to that text is the value.
    const value =
      c.encoding === 'base64'
        ? `REPLACE(TO_BASE64(${column}), CHAR(10), '')`
        : c.dataType === 'float'
          ? `CAST((${column} + 0E0) AS CHAR)`
          : `CAST(${column} AS CHAR)`;
    return `'${JSON.stringify(c.name)}:', COALESCE(JSON_QUOTE(${value}), 'null')`;
  });
  // As bytes: the line travels as UTF-8 into the gzip stream without being decoded into a string and encoded back.
  return `CAST(CONCAT('{', ${parts.join(", ',', ")}, '}', CHAR(10)) AS BINARY)`;
}

/**
 * A part's lines, page by page: on mysql2 built by the server (see {@link lineExpression}); through the Data API
 * (whose rows are bounded at 64 KB, read in slices when larger) from the rows' values.
 */
async function* linesOf(
  from_: LineSource,
  table: ArchivedTable,
  range: { after: SqlParam[] | null; upTo: SqlParam[] | null },
  info: TableInfo | undefined,
): AsyncGenerator<{ bytes: Buffer; rows: number }> {
  const names = table.columns.map((c) => c.name);
  const fields = names.map((n) => JSON.stringify(n));
  const base64 = table.columns.map((c) => c.encoding === 'base64');
  const fromValues = async function* (r: typeof range) {
    for await (const page of pagesOf(from_, table, r, info)) {
      let text = '';
      for (const row of page) text += rowLine(names, fields, base64, row);
      yield { bytes: Buffer.from(text, 'utf8'), rows: page.length };
    }
  };
  if (from_.adapter !== 'mysql' || table.key.length === 0 || info === undefined) {
    yield* fromValues(range);
    return;
  }
  const { session } = from_;
  const key = table.key;
  const from = qualified(from_.database, table.table);
  const expression = lineExpression(table.columns);
  const order = key.map((k) => `${ident(k)} ASC`).join(', ');
  const rowsPerPage = pageRows(info);
  let after = range.after;
  for (;;) {
    const where: { sql: string; params: SqlParam[] }[] = [];
    if (after !== null) where.push(keyComparison(key, '>', after));
    if (range.upTo !== null) where.push(keyComparison(key, '<=', range.upTo));
    const page = await session.query(
      `SELECT ${identList(key)}, ${expression} AS \`__line\` FROM ${from}${where.length === 0 ? '' : ` WHERE ${where.map((w) => `(${w.sql})`).join(' AND ')}`} ORDER BY ${order} LIMIT ?`,
      [...where.flatMap((w) => w.params), rowsPerPage],
    );
    if (page.length === 0) return;
    const last = page.at(-1) ?? {};
    const upTo = exactKeyValues(
      info,
      key,
      key.map((k) => last[k] as string | number),
    );
    if (page.some((r) => r.__line === null || r.__line === undefined)) {
      // A line over max_allowed_packet: this page again, value by value (large values in slices).
      yield* fromValues({ after, upTo });
    } else {
      yield { bytes: Buffer.concat(page.map((r) => r.__line as Buffer)), rows: page.length };
    }
    if (page.length < rowsPerPage) return;
    after = upTo;
  }
}

/** Where lines are read from: legacy at archive and cleanup time, a restored database at restore time. */
export interface LineSource {
  readonly session: SqlSession;
  readonly database: string;
  readonly adapter: 'mysql' | 'data-api';
}

/** The table as introspection would describe it, from the manifest (the column types are what key values need). */
export function manifestInfo(table: ArchivedTable): TableInfo {
  return {
    name: table.table,
    rowsEstimate: 0,
    dataBytes: 0,
    columns: table.columns.map((c) => ({ ...c, generated: false, isJson: false, maxLength: null })),
  } as unknown as TableInfo;
}

/**
 * A part's lines read again, from any database holding the table (a restore, or legacy before it is dropped), and
 * their SHA-256: equal to the archive's when every value of every row of the range is the same, in key order.
 */
export async function partLinesDigest(
  from: LineSource,
  table: ArchivedTable,
  part: {
    readonly after: readonly (string | number)[] | null;
    readonly upTo: readonly (string | number)[] | null;
  },
): Promise<{ sha256: string; rows: number }> {
  const info = manifestInfo(table);
  const exact = (bound: readonly (string | number)[] | null) =>
    bound === null || table.key.length === 0 ? null : (exactKeyValues(info, table.key, bound) as SqlParam[]);
  const hash = createHash('sha256');
  let rows = 0;
  for await (const page of linesOf(from, table, { after: exact(part.after), upTo: exact(part.upTo) }, info)) {
    hash.update(page.bytes);
    rows += page.rows;
  }
  return { sha256: hash.digest('hex'), rows };
}

/** FLOAT columns read as their exact double (`col + 0E0`), as the server-built lines write them. */
function floatExpressions(table: ArchivedTable): Record<string, string> {
  return Object.fromEntries(
    table.columns
      .filter((c) => c.dataType === 'float' && !table.key.includes(c.name))
      .map((c) => [c.name, `(${ident(c.name)} + 0E0)`]),
  );
}

/** A part's rows, page by page: keyset pages on its key; a table without a key is read whole, in key-less pages. */
async function* pagesOf(
  { session, database }: LineSource,
  table: ArchivedTable,
  range: { after: SqlParam[] | null; upTo: SqlParam[] | null },
  info: TableInfo | undefined,
): AsyncGenerator<Row[]> {
  const names = table.columns.map((c) => c.name);
  const rowsPerPage = info === undefined ? PAGE_ROWS : pageRows(info);
  if (table.key.length === 0) {
    const order = names.map((n) => `\`${n}\``).join(', ');
    for (let offset = 0; ; offset += rowsPerPage) {
      const page = await session.query(
        `SELECT ${order} FROM ${qualified(database, table.table)} ORDER BY ${order} LIMIT ? OFFSET ?`,
        [rowsPerPage, offset],
      );
      if (page.length === 0) return;
      yield page;
      if (page.length < rowsPerPage) return;
    }
  }
  yield* readKeyset(session, {
    schema: database,
    table: table.table,
    columns: names,
    key: table.key,
    after: range.after ?? undefined,
    upTo: range.upTo ?? undefined,
    pageRows: rowsPerPage,
    ...(info === undefined
      ? {}
      : {
          boundOf: (values: SqlParam[]) => exactKeyValues(info, table.key, values),
          sliceable: sliceableColumns(info.columns.filter((c) => !c.generated)),
          expressions: floatExpressions(table),
        }),
  });
}

/**
 * Ends the archive: every part archived, or it fails naming those that are not; then each table's manifest (its
 * objects in order, its rows and checksum, the XOR of its parts'), recorded in the ledger, and the archive's own.
 */
export async function finishArchive(deps: TaskDeps, runId: string): Promise<ArchiveManifest> {
  const rows = await deps.target.query(
    `SELECT table_name, chunk_no, key_from, key_to, status, object_key, rows_archived, bytes, sha256, lines_sha256, checksum
     FROM migration_archive_chunks WHERE run_id = ? ORDER BY table_name, chunk_no`,
    [runId],
  );
  const open = rows.filter((r) => str(r, 'status') !== 'archived');
  if (open.length > 0) {
    throw new ArchiveIncomplete(
      `${open.length} archive parts are not archived (${open
        .slice(0, 5)
        .map((r) => `${str(r, 'table_name')} part ${num(r, 'chunk_no') + 1}`)
        .join(', ')}${open.length > 5 ? ', …' : ''}): run golive again to finish them`,
    );
  }
  const byTable = new Map<string, Row[]>();
  for (const r of rows) byTable.set(str(r, 'table_name'), [...(byTable.get(str(r, 'table_name')) ?? []), r]);
  const archivedAt = new Date().toISOString();
  const tables: ArchiveManifest['tables'][number][] = [];
  for (const [name, parts] of byTable) {
    const table = await tableOf(deps, runId, name);
    const objects: ArchivedObject[] = parts.map((r) => ({
      key: str(r, 'object_key'),
      part: num(r, 'chunk_no') + 1,
      after:
        strOrNull(r, 'key_from') === null ? null : (JSON.parse(str(r, 'key_from')) as (string | number)[]),
      upTo: strOrNull(r, 'key_to') === null ? null : (JSON.parse(str(r, 'key_to')) as (string | number)[]),
      rows: num(r, 'rows_archived'),
      bytes: num(r, 'bytes'),
      sha256: str(r, 'sha256'),
      linesSha256: str(r, 'lines_sha256'),
      checksum: str(r, 'checksum'),
    }));
    const checksum: Checksum = {
      rows: objects.reduce((sum, o) => sum + o.rows, 0),
      sum: objects.reduce((x, o) => x ^ BigInt(o.checksum), 0n).toString(),
    };
    const bytes = objects.reduce((sum, o) => sum + o.bytes, 0);
    const manifest: TableManifest = {
      format: ARCHIVE_FORMAT,
      formatVersion: ARCHIVE_FORMAT_VERSION,
      runId,
      sourceDatabase: deps.sourceUrl.database,
      archivedAt,
      ...table,
      rows: checksum.rows,
      bytes,
      checksum,
      objects,
      readWith: duckdbQuery(table, `${archivePrefix(runId)}/${keyName(name)}/part-*.jsonl.gz`),
    };
    const key = tableManifestKey(runId, name);
    await deps.archive.put(key, JSON.stringify(manifest, null, 2), {
      contentType: 'application/json',
      ...retention(deps),
    });
    await deps.target.execute(
      `INSERT INTO migration_archives (run_id, table_name, manifest_key, rows_archived, objects, bytes, checksum, archived_at, ddl_sha256)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON DUPLICATE KEY UPDATE manifest_key = VALUES(manifest_key), rows_archived = VALUES(rows_archived), objects = VALUES(objects), bytes = VALUES(bytes), checksum = VALUES(checksum), archived_at = VALUES(archived_at), ddl_sha256 = VALUES(ddl_sha256)`,
      [
        runId,
        name,
        key,
        checksum.rows,
        objects.length,
        bytes,
        checksum.sum,
        nowText(new Date(archivedAt)),
        ddlDigest(table.ddl),
      ],
    );
    tables.push({
      table: name,
      manifest: key,
      rows: checksum.rows,
      objects: objects.length,
      bytes,
      checksum,
    });
  }
  const manifest: ArchiveManifest = {
    format: ARCHIVE_FORMAT,
    formatVersion: ARCHIVE_FORMAT_VERSION,
    runId,
    sourceDatabase: deps.sourceUrl.database,
    archivedAt,
    tables,
  };
  await deps.archive.put(archiveManifestKey(runId), JSON.stringify(manifest, null, 2), {
    contentType: 'application/json',
    ...retention(deps),
  });
  return manifest;
}

/** DuckDB's type for a column, so that `read_json` keeps each value exact instead of guessing. */
function duckdbType(c: ArchivedColumn): string {
  if (c.encoding === 'base64') return 'VARCHAR';
  const type = c.columnType.toLowerCase();
  const decimal = /^decimal\((\d+),(\d+)\)/.exec(type);
  if (decimal !== null && Number(decimal[1]) <= 38) return `DECIMAL(${decimal[1]},${decimal[2]})`;
  if (/^bigint/.test(type)) return type.includes('unsigned') ? 'UBIGINT' : 'BIGINT';
  if (/^(tiny|small|medium)?int/.test(type) || /^int/.test(type)) return 'BIGINT';
  return 'VARCHAR';
}

/** A DuckDB query that reads one table's parts with every column typed (binary columns decoded with from_base64). */
export function duckdbQuery(table: ArchivedTable, glob: string): string {
  const columns = table.columns.map((c) => `'${c.name}': '${duckdbType(c)}'`).join(', ');
  const select = table.columns
    .map((c) => (c.encoding === 'base64' ? `from_base64("${c.name}") AS "${c.name}"` : `"${c.name}"`))
    .join(', ');
  return `SELECT ${select} FROM read_json('${glob}', format = 'newline_delimited', compression = 'gzip', columns = {${columns}})`;
}

/** The XOR of parts' checksums as a table checksum (exported for restore's comparison and the tests). */
export function combine(checksums: readonly Checksum[]): Checksum {
  return {
    rows: checksums.reduce((sum, c) => sum + c.rows, 0),
    sum: checksums.reduce((x, c) => x ^ BigInt(c.sum), 0n).toString(),
  };
}

/**
 * The whole archive in this process, as the golive state machine runs it step by step: the plan, each table's
 * parts (`concurrency` at a time across tables), the manifests. For the benchmark and the tests.
 */
export async function archiveInProcess(
  deps: TaskDeps,
  runId: string,
  concurrency: number,
): Promise<ArchiveManifest> {
  const { tables } = await planArchive(deps, runId);
  const parts: ArchivePart[] = [];
  for (const table of tables) {
    await planTableParts(deps, runId, table);
    parts.push(
      ...(JSON.parse(
        (await deps.archive.get(partListKey(runId, table)))?.toString() ?? '[]',
      ) as ArchivePart[]),
    );
  }
  let next = 0;
  const worker = async () => {
    for (let part = parts[next++]; part !== undefined; part = parts[next++])
      await archivePart(deps, runId, part);
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  return finishArchive(deps, runId);
}

/** The SHA-256 of a table's archived DDL, as the ledger keeps it (a restore refuses a manifest whose DDL differs). */
export function ddlDigest(ddl: string): string {
  return createHash('sha256').update(ddl, 'utf8').digest('hex');
}
