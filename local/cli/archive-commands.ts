import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { InputError } from '../../lambdas/core/errors.ts';
import { ident, qualified } from '../../lambdas/core/identifiers.ts';
import { ensureLedger, nowText, targetHasTable } from '../../lambdas/core/ledger/runs.ts';
import { introspect } from '../../lambdas/core/schema/introspect.ts';
import { openSql } from '../../lambdas/core/sql/open.ts';
import type { SqlSession } from '../../lambdas/core/sql/port.ts';
import { num, str } from '../../lambdas/core/sql/rows.ts';
import { type DatabaseUrl, parseDatabaseUrl, redactUrl, withDatabase } from '../../lambdas/core/sql/url.ts';
import { ddlDigest, partLinesDigest, type TableManifest } from '../../lambdas/golive/archive.ts';
import { liveSince } from '../../lambdas/golive/golive.ts';
import { findArchive, restoreArchive } from '../../lambdas/golive/restore.ts';
import { openDeps } from '../run-phase.ts';
import { count, type Output } from './output.ts';
import type { PhaseOutcome } from './phases.ts';

/** Where a database is, for comparing two URLs: host, port and database (the Data API: cluster and database). */
function place(url: DatabaseUrl): string {
  return url.kind === 'mysql'
    ? `${url.host}:${url.port}/${url.database}`
    : `${url.resourceArn}/${url.database}`;
}

/**
 * `restore-archive <run | prefix | latest> --into <url> [--table T]`: loads an archive into a database that does not
 * hold its tables yet (created when missing), checking every object's SHA-256 before it loads it and each table's
 * checksum after; the verifications are recorded in the ledger, where cleanup-legacy looks for them.
 */
export async function runRestoreArchive(
  loaded: LoadedConfig,
  which: string,
  intoRaw: string | undefined,
  table: string | undefined,
  out: Output,
  cwd: string,
): Promise<PhaseOutcome> {
  if (intoRaw === undefined)
    throw new InputError(
      'restore-archive needs --into <database-url>: a database to load the archive into, e.g. --into mysql://root@127.0.0.1:3306/shifu_restored',
    );
  const into = parseDatabaseUrl(intoRaw);
  if (place(into) === place(loaded.targetUrl))
    throw new InputError(
      `--into ${redactUrl(intoRaw)} is the config's target (multi-tenant) database: restore into a database of its own`,
    );
  // Into legacy itself: the way back after cleanup-legacy dropped its tables (those still there are refused).
  const intoLegacy = place(into) === place(loaded.sourceUrl);
  const deps = openDeps(loaded, cwd);
  const server = openSql(withDatabase(into, 'information_schema'), { label: 'target' });
  const client = openSql(into, { label: 'target' });
  try {
    const manifest = await findArchive(deps.archive, which);
    if (table !== undefined && !manifest.tables.some((t) => t.table === table))
      throw new InputError(
        `the archive ${manifest.runId} has no table ${JSON.stringify(table)}; it has ${manifest.tables.map((t) => t.table).join(', ')}`,
      );
    const [exists] = await server.query(
      'SELECT COUNT(*) AS n FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
      [into.database],
    );
    if (exists === undefined || num(exists, 'n') === 0) {
      // IF NOT EXISTS: another restore into the same new database may have made it a moment ago.
      await server.execute(
        `CREATE DATABASE IF NOT EXISTS ${ident(into.database, 'database')} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
      );
      out.info(`Created database ${into.database}`);
    }
    // The ledger records each verification (cleanup-legacy needs them); a target that is not there is not fatal.
    let ledger: typeof deps.target | undefined = deps.target;
    try {
      await ensureLedger(deps.target);
    } catch (error) {
      ledger = undefined;
      out.info(`The ledger cannot be written (${(error as Error).message}): this restore is not recorded.`);
    }
    out.info(
      `Restoring archive ${manifest.runId} (${manifest.tables.length} tables, archived ${manifest.archivedAt}) from ${deps.archive.location} into ${redactUrl(intoRaw)}`,
    );
    const began = performance.now();
    const result = await restoreArchive({
      archive: deps.archive,
      into: client,
      intoLabel: redactUrl(intoRaw),
      which: manifest.runId,
      table,
      ledger,
      onTable: (e) => {
        if (e.phase === 'loading') out.progress(`  ${e.table}: ${count(e.rows)} rows loaded`);
        if (e.phase === 'checking')
          out.progress(`  ${e.table}: ${count(e.rows)} rows loaded; computing its checksum`);
      },
    });
    // Legacy has these tables again, verified: cleanup's record of their drop no longer holds.
    const back = result.tables.filter((t) => t.verified).map((t) => t.table);
    if (intoLegacy && ledger !== undefined && back.length > 0)
      await ledger.execute(
        `UPDATE migration_archives SET dropped_at = NULL WHERE run_id = ? AND table_name IN (${back.map(() => '?').join(', ')})`,
        [result.runId, ...back],
      );
    for (const t of result.tables)
      out.info(
        t.verified
          ? `  ✓ ${t.table.padEnd(28)} ${count(t.rows).padStart(11)} rows  checksum equal to the source's at archive time (${t.actual.rows}:${t.actual.sum})`
          : `  ✗ ${t.table.padEnd(28)} ${count(t.rows).padStart(11)} rows  checksum DIFFERS: archived ${t.expected.rows}:${t.expected.sum}, restored ${t.actual.rows}:${t.actual.sum}`,
      );
    const failed = result.tables.filter((t) => !t.verified);
    const rows = result.tables.reduce((s, t) => s + t.rows, 0);
    const seconds = (performance.now() - began) / 1000;
    out.info(
      failed.length === 0
        ? `Restored and verified: ${result.tables.length} tables, ${count(rows)} rows in ${seconds.toFixed(1)} s; every object's SHA-256 and every table's checksum equal the manifest's.${ledger === undefined ? '' : ' Recorded in migration_archive_restores.'}`
        : `${failed.length} of ${result.tables.length} tables differ from the archive: ${failed.map((t) => t.table).join(', ')}. The archive is not verified restorable; cleanup-legacy will refuse.`,
    );
    return {
      code: failed.length === 0 ? 0 : 1,
      json: {
        status: failed.length === 0 ? 'VERIFIED' : 'DIFFERENCES',
        archive: result.runId,
        into: redactUrl(intoRaw),
        tables: result.tables,
      },
    };
  } finally {
    await Promise.all([deps.close(), server.close(), client.close()]);
  }
}

/** One legacy table, as cleanup-legacy judges it. */
interface Judged {
  readonly table: string;
  readonly drop: boolean;
  readonly reason: string;
}

/** SHOW CREATE TABLE without its AUTO_INCREMENT counter (which moves without the table changing). */
const ddlShape = (ddl: string) => ddl.replace(/ AUTO_INCREMENT=\d+/, '');

/** The current user as information_schema's privilege tables name grantees: 'user'@'host'. */
const GRANTEE =
  "CONCAT(CHAR(39), SUBSTRING_INDEX(CURRENT_USER(), '@', 1), CHAR(39), '@', CHAR(39), SUBSTRING_INDEX(CURRENT_USER(), '@', -1), CHAR(39))";

/** The tables the writer may not drop: DROP granted globally, on the database or on the table, else named. */
async function notDroppable(
  writer: SqlSession,
  database: string,
  tables: readonly string[],
): Promise<string[]> {
  const [global] = await writer.query(
    `SELECT COUNT(*) AS n FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ${GRANTEE} AND PRIVILEGE_TYPE = 'DROP'`,
  );
  if (num(global ?? {}, 'n') > 0) return [];
  const [schema] = await writer.query(
    `SELECT COUNT(*) AS n FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = ${GRANTEE} AND PRIVILEGE_TYPE = 'DROP' AND ? LIKE TABLE_SCHEMA`,
    [database],
  );
  if (num(schema ?? {}, 'n') > 0) return [];
  const granted = new Set(
    (
      await writer.query(
        `SELECT TABLE_NAME AS t FROM information_schema.TABLE_PRIVILEGES WHERE GRANTEE = ${GRANTEE} AND PRIVILEGE_TYPE = 'DROP' AND TABLE_SCHEMA = ?`,
        [database],
      )
    ).map((r) => String(r.t)),
  );
  return tables.filter((t) => !granted.has(t));
}

/**
 * `cleanup-legacy [--confirm]`: drops the legacy tables, only when every one of them is in the latest go-live's
 * archive, its objects are in the store, that archive was restored and verified (restore-archive),
 * `golive.archive.retentionDays` have passed since, and the table is still exactly what was archived: the same
 * definition, and every part's lines, read again from legacy, the archived lines byte for byte (a write on legacy
 * since would be lost). It says what it would drop, and drops nothing unless every table passes and --confirm is
 * given; then, holding a write lock on every legacy table, it judges them again and drops them, so no write lands
 * between the judgement and the drop.
 */
export async function runCleanupLegacy(
  loaded: LoadedConfig,
  confirm: boolean,
  out: Output,
  cwd: string,
): Promise<PhaseOutcome> {
  const deps = openDeps(loaded, cwd);
  try {
    const ledger = await targetHasTable(deps.targetServer, deps.targetUrl.database, 'migration_runs');
    const runId = ledger ? await liveSince(deps) : null;
    if (runId === null) {
      out.info(
        'No go-live has finished: the legacy tables are the only copy of their tenants’ data. Nothing dropped.',
      );
      return { code: 1, json: { status: 'REFUSED', reason: 'no go-live', dropped: [] } };
    }
    await ensureLedger(deps.target);
    const schema = await introspect(deps.source, deps.sourceUrl.database);
    const tables = schema.tables.map((t) => t.name);
    if (schema.views.length > 0)
      out.info(
        `  views are not archived nor dropped: ${schema.views.join(', ')} (drop them yourself once the tables are gone)`,
      );
    const preview = await judge(deps, loaded, runId, tables, deps.source, deps.source.adapter, out);
    for (const j of preview) out.info(`  ${j.drop ? 'drop' : 'KEEP'} ${j.table.padEnd(28)} ${j.reason}`);
    const kept = preview.filter((j) => !j.drop);
    if (kept.length > 0) {
      out.info(
        `Refused: ${kept.length} of ${preview.length} legacy tables may not be dropped yet (above). Nothing dropped.`,
      );
      return { code: 1, json: { status: 'REFUSED', archive: runId, tables: preview, dropped: [] } };
    }
    const writer = deps.sourceWriter;
    if (writer === undefined) throw new TypeError('cleanup-legacy needs the legacy writer');
    if (writer.adapter !== 'mysql')
      throw new InputError(
        'cleanup-legacy drops through a mysql:// writer (source.writeUrl), with which it locks the tables: the Data API cannot hold a lock between statements',
      );
    const denied = await notDroppable(writer, deps.sourceUrl.database, tables);
    if (denied.length > 0) {
      out.info(
        `Refused: the legacy writer (source.writeUrl) may not drop ${denied.join(', ')}: grant it DROP on them first. Nothing dropped.`,
      );
      return { code: 1, json: { status: 'REFUSED', archive: runId, tables: preview, dropped: [] } };
    }
    if (!confirm) {
      out.info(
        `Would drop ${preview.length} legacy tables from ${deps.sourceUrl.database} (archive ${runId}). Nothing dropped: run again with --confirm.`,
      );
      return { code: 2, json: { status: 'NOT_CONFIRMED', archive: runId, tables: preview, dropped: [] } };
    }
    const dropped: string[] = [];
    let final: Judged[] = [];
    await writer.transaction(async (tx) => {
      // Every legacy table write-locked on this one connection: nothing is written between the last judgement and
      // the drop. The judgement is made again under the lock, through this connection.
      await tx.execute(
        `LOCK TABLES ${tables.map((t) => `${qualified(deps.sourceUrl.database, t)} WRITE`).join(', ')}`,
      );
      try {
        final = await judge(deps, loaded, runId, tables, tx, 'mysql', out);
        if (final.some((j) => !j.drop)) return;
        await tx.execute('SET SESSION foreign_key_checks = 0');
        for (const table of tables) {
          await tx.execute(`DROP TABLE ${qualified(deps.sourceUrl.database, table)}`);
          dropped.push(table);
          await deps.target.execute(
            'UPDATE migration_archives SET dropped_at = ? WHERE run_id = ? AND table_name = ?',
            [nowText(), runId, table],
          );
          out.info(`  dropped ${table}`);
        }
      } finally {
        await tx.execute('UNLOCK TABLES');
      }
    });
    if (dropped.length === 0) {
      for (const j of final.filter((f) => !f.drop)) out.info(`  KEEP ${j.table.padEnd(28)} ${j.reason}`);
      out.info('Refused: legacy changed while cleanup-legacy looked (above). Nothing dropped.');
      return { code: 1, json: { status: 'REFUSED', archive: runId, tables: final, dropped: [] } };
    }
    out.info(
      `Dropped ${dropped.length} legacy tables from ${deps.sourceUrl.database}; their archive ${runId} stays in ${deps.archive.location} (restore-archive brings any back).`,
    );
    return { code: 0, json: { status: 'DROPPED', archive: runId, tables: final, dropped } };
  } finally {
    await deps.close();
  }
}

/** Each legacy table judged against the archive, legacy read through `session`. */
async function judge(
  deps: ReturnType<typeof openDeps>,
  loaded: LoadedConfig,
  runId: string,
  tables: readonly string[],
  session: SqlSession,
  adapter: 'mysql' | 'data-api',
  out: Output,
): Promise<Judged[]> {
  const retention = loaded.config.golive.archive.retentionDays;
  const archived = new Map(
    (
      await deps.target.query(
        'SELECT table_name, manifest_key, rows_archived, archived_at, ddl_sha256 FROM migration_archives WHERE run_id = ?',
        [runId],
      )
    ).map((r) => [str(r, 'table_name'), r]),
  );
  const restores = new Map(
    (
      await deps.target.query(
        `SELECT r.table_name, r.verified, r.restored_into, r.checked_at FROM migration_archive_restores r
          JOIN (SELECT table_name, MAX(id) AS id FROM migration_archive_restores WHERE archive_run_id = ? GROUP BY table_name) l
            ON l.id = r.id`,
        [runId],
      )
    ).map((r) => [str(r, 'table_name'), r]),
  );
  const stored = new Set(await deps.archive.list(`legacy-archive/${runId}/`));
  const judged: Judged[] = [];
  for (const table of tables) {
    const keep = (reason: string) => judged.push({ table, drop: false, reason });
    const entry = archived.get(table);
    if (entry === undefined) {
      keep(`not in the archive of ${runId} (created after go-live?)`);
      continue;
    }
    const restore = restores.get(table);
    if (restore === undefined || Number(restore.verified) !== 1) {
      keep(
        restore === undefined
          ? 'its archive was never restored and verified: npx shifu-migrate restore-archive latest --into <scratch database>'
          : `its last restore (${str(restore, 'checked_at')} UTC, into ${str(restore, 'restored_into')}) did not verify`,
      );
      continue;
    }
    const archivedAt = Date.parse(`${str(entry, 'archived_at').replace(' ', 'T')}Z`);
    const due = archivedAt + retention * 86_400_000;
    if (Date.now() < due) {
      keep(
        `archived ${str(entry, 'archived_at')} UTC: golive.archive.retentionDays (${retention}) pass on ${new Date(due).toISOString()}`,
      );
      continue;
    }
    const manifest = JSON.parse(
      (await deps.archive.get(str(entry, 'manifest_key')))?.toString('utf8') ?? 'null',
    ) as TableManifest | null;
    if (manifest === null) {
      keep(`its manifest ${str(entry, 'manifest_key')} is not in ${deps.archive.location}`);
      continue;
    }
    // The ledger, not the manifest, says what was archived: the manifest must agree with it (DDL, every part).
    if (
      entry.ddl_sha256 !== null &&
      entry.ddl_sha256 !== undefined &&
      entry.ddl_sha256 !== ddlDigest(manifest.ddl)
    ) {
      keep('its manifest’s DDL is not the one the archive run recorded: the manifest was altered');
      continue;
    }
    const parts = await deps.target.query(
      'SELECT chunk_no, key_from, key_to, lines_sha256, rows_archived FROM migration_archive_chunks WHERE run_id = ? AND table_name = ? ORDER BY chunk_no',
      [runId, table],
    );
    const agrees =
      parts.length === manifest.objects.length &&
      parts.every((r, i) => {
        const o = manifest.objects[i];
        return (
          o !== undefined &&
          o.linesSha256 === r.lines_sha256 &&
          o.rows === Number(r.rows_archived) &&
          (o.after === null ? null : JSON.stringify(o.after)) === (r.key_from ?? null) &&
          (o.upTo === null ? null : JSON.stringify(o.upTo)) === (r.key_to ?? null)
        );
      });
    if (!agrees || manifest.rows !== num(entry, 'rows_archived')) {
      keep(
        'its manifest’s parts are not the ones the archive run recorded in the ledger: the manifest was altered',
      );
      continue;
    }
    const missing = manifest.objects.filter((o) => !stored.has(o.key));
    if (missing.length > 0) {
      keep(
        `${missing.length} of its archive objects are not in ${deps.archive.location} (${missing[0]?.key}, …)`,
      );
      continue;
    }
    const [create] = await session.query(`SHOW CREATE TABLE ${qualified(deps.sourceUrl.database, table)}`);
    if (ddlShape(str(create ?? {}, 'Create Table')) !== ddlShape(manifest.ddl)) {
      keep('its definition changed since it was archived (SHOW CREATE TABLE differs from the manifest’s)');
      continue;
    }
    const [counted] = await session.query(
      `SELECT COUNT(*) AS n FROM ${qualified(deps.sourceUrl.database, table)}`,
    );
    if (num(counted ?? {}, 'n') !== num(entry, 'rows_archived')) {
      keep(
        `it holds ${count(num(counted ?? {}, 'n'))} rows, the archive ${count(num(entry, 'rows_archived'))}: dropping it would lose the difference`,
      );
      continue;
    }
    out.progress(`  ${table}: reading legacy again, part by part, against the archive`);
    let changed: number | null = null;
    for (const object of manifest.objects) {
      const now = await partLinesDigest(
        { session, database: deps.sourceUrl.database, adapter },
        manifest,
        object,
      );
      if (now.sha256 !== object.linesSha256 || now.rows !== object.rows) {
        changed = object.part;
        break;
      }
    }
    if (changed !== null) {
      keep(
        `it changed since it was archived (part ${changed} read again differs from its archived lines): dropping it would lose those writes`,
      );
      continue;
    }
    judged.push({
      table,
      drop: true,
      reason: `${count(num(entry, 'rows_archived'))} rows archived in ${runId}, restored and verified ${str(restore, 'checked_at')} UTC, unchanged since (every part read again)`,
    });
  }
  return judged;
}
