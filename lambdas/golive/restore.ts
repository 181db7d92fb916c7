import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { ArchiveStore } from '../core/archive/port.ts';
import { type Checksum, rangeChecksum } from '../core/checksum.ts';
import { InputError } from '../core/errors.ts';
import { ident, qualified } from '../core/identifiers.ts';
import { nowText } from '../core/ledger/runs.ts';
import { insertRows } from '../core/sql/insert.ts';
import type { SqlClient, SqlParam, SqlSession } from '../core/sql/port.ts';
import { codeOutsideQuotes } from '../core/sql/quoted.ts';
import { secondaryIndexDefinitions } from '../data/indexes.ts';
import {
  ARCHIVE_FORMAT,
  ARCHIVE_ROOT,
  type ArchivedObject,
  type ArchiveManifest,
  archiveManifestKey,
  checksumColumns,
  ddlDigest,
  partLinesDigest,
  type TableManifest,
} from './archive.ts';
import { ArchiveIncomplete, ArchiveTampered } from './errors.ts';

/** Rows per INSERT batch of a restore (insertRows splits it further by statement size). */
const BATCH_ROWS = 2_000;

export interface RestoredTable {
  readonly table: string;
  readonly rows: number;
  readonly objects: number;
  readonly bytes: number;
  /** The checksum the archive recorded: the source's at archive time. */
  readonly expected: Checksum;
  /** The restored table's, computed by the same expression. */
  readonly actual: Checksum;
  readonly verified: boolean;
  /** Parts whose lines, read again from the restored table, are not the archived ones. */
  readonly differingParts: readonly number[];
  /** From the restore's start to this table's verification. */
  readonly seconds: number;
}

export interface RestoreOptions {
  readonly archive: ArchiveStore;
  /** The database restored into (its client's database); its tables must not exist yet. */
  readonly into: SqlClient;
  /** How the destination is named in messages and the ledger: host and database, no password. */
  readonly intoLabel: string;
  /** A run id (`golive-…`), an archive prefix (`legacy-archive/golive-…`), or `latest`. */
  readonly which: string;
  /** Only this table. */
  readonly table?: string | undefined;
  /** Where each table's verification is recorded (`migration_archive_restores`); nowhere when omitted. */
  readonly ledger?: SqlSession | undefined;
  readonly onTable?:
    | ((event: { table: string; phase: 'loading' | 'checking' | 'done'; rows: number }) => void)
    | undefined;
  /** Objects loaded at once. @default 2 */
  readonly concurrency?: number;
}

/** The run ids that have an archive in the store, oldest first (run ids sort by time). */
export async function archivedRuns(archive: ArchiveStore): Promise<string[]> {
  const keys = await archive.list(`${ARCHIVE_ROOT}/`);
  return keys
    .map((k) => /^legacy-archive\/([^/]+)\/manifest\.json$/.exec(k)?.[1])
    .filter((k): k is string => k !== undefined)
    .sort();
}

/** The archive a `which` names: a run id, a prefix, or `latest`; an input error saying what exists otherwise. */
export async function findArchive(archive: ArchiveStore, which: string): Promise<ArchiveManifest> {
  const runs = await archivedRuns(archive);
  const wanted =
    which === 'latest' ? runs.at(-1) : which.replace(/^legacy-archive\//, '').replace(/\/+$/, '');
  if (wanted === undefined || !runs.includes(wanted)) {
    throw new InputError(
      runs.length === 0
        ? `no archive in ${archive.location}: golive writes one (legacy-archive/<run>/manifest.json)`
        : `no archive ${JSON.stringify(which)} in ${archive.location}; archives: ${runs.join(', ')} (or latest)`,
    );
  }
  const manifest = await readJson<ArchiveManifest>(archive, archiveManifestKey(wanted));
  if (manifest.format !== ARCHIVE_FORMAT) {
    throw new ArchiveIncomplete(`${archiveManifestKey(wanted)} is not a ${ARCHIVE_FORMAT} manifest`);
  }
  return manifest;
}

async function readJson<T>(archive: ArchiveStore, key: string): Promise<T> {
  const body = await archive.get(key);
  if (body === undefined) throw new ArchiveIncomplete(`${key} is missing from ${archive.location}`);
  return JSON.parse(body.toString('utf8')) as T;
}

/** The DDL of an archived table, checked to create that table and nothing else (the manifest is data, not code). */
function createStatement(manifest: TableManifest): string {
  const prefix = `CREATE TABLE ${ident(manifest.table)} (`;
  // CREATE TABLE … SELECT (or LIKE, or another engine's storage) would read or reach what the restoring user may:
  // outside quoted names and strings, none of those words may appear.
  if (
    !manifest.ddl.startsWith(prefix) ||
    /\b(SELECT|LIKE|VALUES|CONNECTION|CONNECT|FEDERATED|DIRECTORY|UNION)\b|\)\s*(AS\s+)?(WITH|TABLE)\b/i.test(
      codeOutsideQuotes(manifest.ddl),
    )
  ) {
    throw new ArchiveIncomplete(
      `the manifest of ${manifest.table} holds no CREATE TABLE of that table: it was altered, restore refused`,
    );
  }
  return manifest.ddl;
}

/**
 * Loads archived tables into an empty database and proves them: each object's SHA-256 is checked before a row of
 * it is written (an altered object stops the restore naming it), each object goes in one transaction, and the
 * restored table's checksum, computed as at archive time, must equal the manifest's. Tables that exist already are
 * refused before anything is written.
 */
export async function restoreArchive(
  options: RestoreOptions,
): Promise<{ runId: string; tables: RestoredTable[] }> {
  const archive = options.archive;
  const top = await findArchive(archive, options.which);
  const entries =
    options.table === undefined ? top.tables : top.tables.filter((t) => t.table === options.table);
  if (entries.length === 0) {
    throw new InputError(
      `the archive ${top.runId} has no table ${JSON.stringify(options.table)}; it has ${top.tables.map((t) => t.table).join(', ')}`,
    );
  }
  const manifests: TableManifest[] = [];
  for (const entry of entries) manifests.push(await readJson<TableManifest>(archive, entry.manifest));
  await crossCheck(options, top.runId, manifests);
  const existing = await options.into.query(
    `SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ? AND table_name IN (${manifests.map(() => '?').join(', ')})`,
    [options.into.database, ...manifests.map((m) => m.table)],
  );
  if (existing.length > 0) {
    throw new InputError(
      `${options.intoLabel} already has ${existing.map((r) => String(r.t ?? r.T ?? r.TABLE_NAME)).join(', ')}: restore into an empty database (or drop those tables first)`,
    );
  }
  const created: string[] = [];
  try {
    return await restoreTables(options, top.runId, manifests, created);
  } catch (error) {
    // What this restore made is taken away (empty or partly loaded tables), so that it can simply run again.
    for (const table of created)
      await options.into
        .execute(`DROP TABLE IF EXISTS ${qualified(options.into.database, table)}`)
        .catch(() => undefined);
    if (error instanceof Error && created.length > 0)
      error.message += ` (the ${created.length} tables this restore had created in ${options.intoLabel} were dropped again)`;
    throw error;
  }
}

async function restoreTables(
  options: RestoreOptions,
  runId: string,
  manifests: readonly TableManifest[],
  created: string[],
): Promise<{ runId: string; tables: RestoredTable[] }> {
  const started = performance.now();
  // Tables first, without their secondary indexes: built once each after the load, by sorting, instead of row by
  // row (a table with foreign keys keeps its indexes: they back the constraints).
  const deferred = new Map<string, { name: string; definition: string }[]>();
  for (const manifest of manifests) {
    const indexes = manifest.ddl.includes('FOREIGN KEY') ? [] : secondaryIndexDefinitions(manifest.ddl);
    await options.into.transaction(async (tx) => {
      await tx.execute('SET SESSION foreign_key_checks = 0');
      await tx.execute(createStatement(manifest));
      created.push(manifest.table);
      if (indexes.length > 0)
        await tx.execute(
          `ALTER TABLE ${qualified(options.into.database, manifest.table)} ${indexes.map((i) => `DROP INDEX ${ident(i.name, 'index')}`).join(', ')}`,
        );
    });
    deferred.set(manifest.table, indexes);
  }
  const loaded = new Map<string, number>(manifests.map((m) => [m.table, 0]));
  const queue = manifests.flatMap((manifest) => manifest.objects.map((object) => ({ manifest, object })));
  let next = 0;
  const worker = async () => {
    for (let item = queue[next++]; item !== undefined; item = queue[next++]) {
      const rows = await loadVerified(options, item.manifest, item.object);
      loaded.set(item.manifest.table, (loaded.get(item.manifest.table) ?? 0) + rows);
      options.onTable?.({
        table: item.manifest.table,
        phase: 'loading',
        rows: loaded.get(item.manifest.table) ?? 0,
      });
    }
  };
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(options.concurrency ?? 3, queue.length)) }, worker),
  );
  const tables: RestoredTable[] = [];
  let i = 0;
  const finisher = async () => {
    for (let manifest = manifests[i++]; manifest !== undefined; manifest = manifests[i++])
      tables.push(
        await finishTable(
          options,
          manifest,
          loaded.get(manifest.table) ?? 0,
          deferred.get(manifest.table) ?? [],
          started,
        ),
      );
  };
  await Promise.all([finisher(), finisher()]);
  tables.sort((a, b) => a.table.localeCompare(b.table));
  return { runId, tables };
}

/** One object: its SHA-256 checked first, then its rows in one transaction; the row count must be the manifest's. */
async function loadVerified(
  options: RestoreOptions,
  manifest: TableManifest,
  object: ArchivedObject,
): Promise<number> {
  const { archive, into } = options;
  const body = await archive.get(object.key);
  if (body === undefined) throw new ArchiveIncomplete(`${object.key} is missing from ${archive.location}`);
  const sha256 = createHash('sha256').update(body).digest('hex');
  if (sha256 !== object.sha256 || body.length !== object.bytes) {
    throw new ArchiveTampered(
      `${object.key}: SHA-256 ${sha256} (${body.length} bytes), the manifest records ${object.sha256} (${object.bytes} bytes): the object was altered or damaged; nothing of it was restored`,
    );
  }
  const names = manifest.columns.map((c) => c.name);
  const base64 = manifest.columns.map((c) => c.encoding === 'base64');
  const loaded = await into.transaction(async (tx) => {
    await tx.execute('SET SESSION foreign_key_checks = 0');
    // An AUTO_INCREMENT column holding 0 keeps 0 (otherwise the server would give the row a new id).
    await tx.execute(
      "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'NO_AUTO_VALUE_ON_ZERO')",
    );
    return loadObject(tx, into, manifest.table, names, base64, body);
  });
  if (loaded !== object.rows) {
    throw new ArchiveTampered(`${object.key} holds ${loaded} rows, the manifest records ${object.rows}`);
  }
  return loaded;
}

/** A loaded table: its secondary indexes built, its checksum computed and compared, the verification recorded. */
async function finishTable(
  options: RestoreOptions,
  manifest: TableManifest,
  rows: number,
  indexes: readonly { name: string; definition: string }[],
  started: number,
): Promise<RestoredTable> {
  const { into } = options;
  if (indexes.length > 0) {
    options.onTable?.({ table: manifest.table, phase: 'checking', rows });
    await into.execute(
      `ALTER TABLE ${qualified(into.database, manifest.table)} ${indexes.map((i) => `ADD ${i.definition}`).join(', ')}`,
    );
  }
  options.onTable?.({ table: manifest.table, phase: 'checking', rows });
  const names = manifest.columns.map((c) => c.name);
  const actual = await rangeChecksum(into, {
    database: into.database,
    table: manifest.table,
    columns: checksumColumns(manifest.columns),
    key: manifest.key.length === 0 ? (names.slice(0, 1) as string[]) : [...manifest.key],
    range: { after: null, upTo: null },
  });
  // Then every part's lines again, from the restored table: the same bytes as archived, value for value, in key order.
  const differing: number[] = [];
  for (const object of manifest.objects) {
    const again = await partLinesDigest(
      { session: into, database: into.database, adapter: into.adapter },
      manifest,
      object,
    );
    if (again.sha256 !== object.linesSha256 || again.rows !== object.rows) differing.push(object.part);
  }
  const verified =
    actual.rows === manifest.checksum.rows && actual.sum === manifest.checksum.sum && differing.length === 0;
  await options.ledger?.execute(
    `INSERT INTO migration_archive_restores (archive_run_id, table_name, restored_into, verified, detail, checked_at)
     VALUES (?, ?, ?, ?, ?, ?)`,
    [
      manifest.runId,
      manifest.table,
      options.intoLabel.slice(0, 255),
      verified ? 1 : 0,
      `${actual.rows} rows, checksum ${actual.sum}; archived ${manifest.checksum.rows} rows, checksum ${manifest.checksum.sum}${differing.length === 0 ? '; every part read again equal to its archived lines' : `; parts ${differing.join(', ')} read again differ from their archived lines`}`,
      nowText(),
    ],
  );
  options.onTable?.({ table: manifest.table, phase: 'done', rows });
  return {
    table: manifest.table,
    rows,
    objects: manifest.objects.length,
    bytes: manifest.bytes,
    expected: manifest.checksum,
    actual,
    verified,
    differingParts: differing,
    seconds: (performance.now() - started) / 1000,
  };
}

/** One object's rows into the table, in batches, streamed from its gzip: memory follows a batch. */
async function loadObject(
  tx: SqlSession,
  client: SqlClient,
  table: string,
  names: readonly string[],
  base64: readonly boolean[],
  body: Buffer,
): Promise<number> {
  let rows = 0;
  let batch: SqlParam[][] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    await insertRows(tx, {
      schema: client.database,
      table,
      columns: names,
      rows: batch,
      maxStatementBytes: client.maxStatementBytes,
      prepared: client.preparesStatements,
    });
    rows += batch.length;
    batch = [];
  };
  let rest = '';
  const gunzip = Readable.from([body]).pipe(createGunzip());
  gunzip.setEncoding('utf8');
  for await (const piece of gunzip as AsyncIterable<string>) {
    const text = rest + piece;
    let start = 0;
    for (let end = text.indexOf('\n', start); end !== -1; end = text.indexOf('\n', start)) {
      batch.push(valuesOf(text.slice(start, end), names, base64));
      start = end + 1;
      if (batch.length >= BATCH_ROWS) await flush();
    }
    rest = text.slice(start);
  }
  if (rest.length > 0) batch.push(valuesOf(rest, names, base64));
  await flush();
  return rows;
}

function valuesOf(line: string, names: readonly string[], base64: readonly boolean[]): SqlParam[] {
  const row = JSON.parse(line) as Record<string, string | null>;
  const values = new Array<SqlParam>(names.length);
  for (let i = 0; i < names.length; i += 1) {
    const value = row[names[i] as string] ?? null;
    values[i] = value !== null && base64[i] ? Buffer.from(value, 'base64') : value;
  }
  return values;
}

/**
 * The manifests against the ledger that recorded the archive (when the restore has it, as the CLI does): every
 * object's SHA-256, lines digest and rows must be what the archive run recorded. A manifest edited to fit an altered
 * object (its SHA-256 and size changed with it) is caught here, before anything is loaded.
 */
async function crossCheck(
  options: RestoreOptions,
  runId: string,
  manifests: readonly TableManifest[],
  out?: (line: string) => void,
): Promise<void> {
  if (options.ledger === undefined) return;
  let tables: Awaited<ReturnType<SqlSession['query']>>;
  let parts: Awaited<ReturnType<SqlSession['query']>>;
  try {
    tables = await options.ledger.query(
      'SELECT table_name, rows_archived, checksum, ddl_sha256 FROM migration_archives WHERE run_id = ?',
      [runId],
    );
    parts = await options.ledger.query(
      'SELECT table_name, chunk_no, key_from, key_to, sha256, lines_sha256, rows_archived FROM migration_archive_chunks WHERE run_id = ? ORDER BY table_name, chunk_no',
      [runId],
    );
  } catch (error) {
    out?.(
      `Not cross-checked against the ledger (${(error as Error).message}): the manifests are trusted as they are.`,
    );
    return;
  }
  if (tables.length === 0) {
    out?.(`The ledger has no record of archive ${runId}: the manifests are trusted as they are.`);
    return;
  }
  const altered = (table: string, what: string) =>
    new ArchiveTampered(
      `the manifest of ${table} does not match what the archive run ${runId} recorded in the ledger (${what}): it was altered; nothing was restored`,
    );
  for (const manifest of manifests) {
    const table = tables.find((t) => t.table_name === manifest.table);
    if (table === undefined) throw altered(manifest.table, 'no such table in migration_archives');
    if (
      Number(table.rows_archived) !== manifest.rows ||
      String(table.checksum) !== manifest.checksum.sum ||
      manifest.checksum.rows !== manifest.rows
    )
      throw altered(manifest.table, 'its rows or checksum');
    if (
      table.ddl_sha256 !== null &&
      table.ddl_sha256 !== undefined &&
      table.ddl_sha256 !== ddlDigest(manifest.ddl)
    )
      throw altered(manifest.table, 'its DDL');
    const recorded = parts.filter((p) => p.table_name === manifest.table);
    if (recorded.length !== manifest.objects.length) throw altered(manifest.table, 'its number of parts');
    for (const [i, r] of recorded.entries()) {
      const object = manifest.objects[i];
      const bound = (v: unknown) => (v === null || v === undefined ? null : String(v));
      if (
        object === undefined ||
        object.part !== Number(r.chunk_no) + 1 ||
        r.sha256 !== object.sha256 ||
        r.lines_sha256 !== object.linesSha256 ||
        Number(r.rows_archived) !== object.rows ||
        bound(r.key_from) !== (object.after === null ? null : JSON.stringify(object.after)) ||
        bound(r.key_to) !== (object.upTo === null ? null : JSON.stringify(object.upTo))
      )
        throw altered(manifest.table, `part ${Number(r.chunk_no) + 1}: its object, lines, rows or key range`);
    }
  }
}
