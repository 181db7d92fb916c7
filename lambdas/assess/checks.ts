import type { Config } from '../core/config/schema.ts';
import { changeColumn } from '../core/preflight.ts';
import type { SchemaInfo } from '../core/schema/types.ts';
import type { SqlSession } from '../core/sql/port.ts';
import { num, str, strOrNull } from '../core/sql/rows.ts';
import type { Problem } from './schema.ts';

/** Character sets that hold every character the target's utf8mb4 columns do. */
const FULL_UNICODE = /^utf8mb4/;

/**
 * The checks a DBA runs before a migration, as DMS's premigration assessment does, each with its fix: storage
 * engines, character sets, triggers, routines and events, declared foreign keys, what the sync phase will need from
 * the binary log, the server's packet size, SQL mode and time zone. Read-only; a server that will not say (a
 * missing privilege) gives no finding for that check.
 */
export async function sourceChecks(source: SqlSession, schema: SchemaInfo): Promise<Problem[]> {
  const problems: Problem[] = [];
  const db = schema.database;
  for (const table of schema.tables) {
    if (table.engine !== null && table.engine.toUpperCase() !== 'INNODB')
      problems.push({
        severity: 'warning',
        code: 'non-transactional-engine',
        table: table.name,
        message: `${table.name} uses the ${table.engine} engine: it has no transactions, so a chunk read while the application writes has no consistent snapshot, and the copy can only be made equal by a later pass. Convert it (ALTER TABLE \`${table.name}\` ENGINE=InnoDB) before the data phase, or migrate it while nothing writes to it`,
      });
    const narrow = [
      ...(table.collation !== null && !FULL_UNICODE.test(table.collation)
        ? [`table ${table.collation}`]
        : []),
      ...table.columns
        .filter((c) => c.charset !== null && !FULL_UNICODE.test(c.charset) && c.charset !== 'binary')
        .map((c) => `${c.name} ${c.charset}`),
    ];
    if (narrow.length > 0)
      problems.push({
        severity: 'warning',
        code: 'not-utf8mb4',
        table: table.name,
        message: `${table.name} is not utf8mb4 (${narrow.slice(0, 5).join(', ')}${narrow.length > 5 ? `, and ${narrow.length - 5} more` : ''}): the target keeps the source's character sets, so text that only utf8mb4 holds (emoji, some CJK) cannot be written there either. Check what the application stores, and convert it (ALTER TABLE \`${table.name}\` CONVERT TO CHARACTER SET utf8mb4) if it needs more`,
      });
    if (table.foreignKeys.length > 0)
      problems.push({
        severity: 'warning',
        code: 'declared-foreign-keys',
        table: table.name,
        message: `${table.name} declares ${table.foreignKeys.length} foreign key(s) (${table.foreignKeys.map((f) => f.name).join(', ')}): the target tables are created without them (the tenant model links rows by tenant_bid and business ids), and the copy orders tables by them. Add them to the target yourself after go-live if the application relies on them`,
      });
  }

  const triggers = await query(
    source,
    'SELECT TRIGGER_NAME AS name, EVENT_OBJECT_TABLE AS tbl, EVENT_MANIPULATION AS event FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY TRIGGER_NAME',
    [db],
  );
  for (const t of triggers)
    problems.push({
      severity: 'warning',
      code: 'trigger',
      table: str(t, 'tbl'),
      message: `trigger ${str(t, 'name')} (${str(t, 'event')} on ${str(t, 'tbl')}) is not migrated, and does not fire when rows are copied: what it maintains must be copied as data, or the trigger recreated on the target`,
    });
  const routines = await query(
    source,
    'SELECT ROUTINE_TYPE AS kind, ROUTINE_NAME AS name FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_NAME',
    [db],
  );
  for (const r of routines)
    problems.push({
      severity: 'info',
      code: 'routine',
      message: `${str(r, 'kind').toLowerCase()} ${str(r, 'name')} is not migrated: recreate it on the target if the application calls it`,
    });
  const events = await query(
    source,
    'SELECT EVENT_NAME AS name FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME',
    [db],
  );
  for (const e of events)
    problems.push({
      severity: 'warning',
      code: 'scheduled-event',
      message: `scheduled event ${str(e, 'name')} keeps running on the source and is not migrated: recreate it on the target at go-live, and make sure it does not run on both`,
    });

  const [settings] = await query(
    source,
    'SELECT @@GLOBAL.log_bin AS log_bin, @@GLOBAL.binlog_format AS binlog_format, @@GLOBAL.binlog_row_image AS row_image, @@GLOBAL.max_allowed_packet AS packet, @@SESSION.sql_mode AS sql_mode, @@GLOBAL.time_zone AS time_zone, @@GLOBAL.system_time_zone AS system_time_zone',
  );
  if (settings !== undefined) {
    const logBin = strOrNull(settings, 'log_bin');
    const format = strOrNull(settings, 'binlog_format');
    const image = strOrNull(settings, 'row_image');
    if (logBin === '0' || logBin === 'OFF')
      problems.push({
        severity: 'info',
        code: 'binlog-off',
        message:
          'the source writes no binary log: the sync phase then finds changes by the change columns and by comparing checksums, not from the log. Enable it (log_bin, binlog_format=ROW, binlog_row_image=FULL) for change capture',
      });
    else if (format !== null && format.toUpperCase() !== 'ROW')
      problems.push({
        severity: 'warning',
        code: 'binlog-not-row',
        message: `binlog_format is ${format}: change capture needs ROW (SET GLOBAL binlog_format = 'ROW', or the cluster parameter group)`,
      });
    else if (image !== null && image.toUpperCase() !== 'FULL')
      problems.push({
        severity: 'warning',
        code: 'binlog-row-image',
        message: `binlog_row_image is ${image}: change capture needs FULL (every column of a changed row)`,
      });
    const [retention] = await query(
      source,
      'SELECT @@GLOBAL.binlog_expire_logs_seconds AS seconds, @@GLOBAL.expire_logs_days AS days',
    );
    const kept = binlogRetention(
      logBin !== '0' && logBin !== 'OFF',
      retention === undefined ? null : Number(retention.seconds ?? 0) || Number(retention.days ?? 0) * 86_400,
    );
    if (kept !== null) problems.push(kept);
    const packet = num(settings, 'packet');
    const largest = Math.max(
      0,
      ...schema.tables.map((t) => (t.rowsEstimate > 0 ? t.dataBytes / t.rowsEstimate : 0)),
    );
    if (packet < 16 * 1024 * 1024)
      problems.push({
        severity: 'warning',
        code: 'max-allowed-packet',
        message: `max_allowed_packet is ${Math.round(packet / 1024)} KB (the largest average row is about ${Math.round(largest / 1024)} KB): the copy sends rows in statements of up to 4 MB, so keep it at 16 MB or more on both servers (SET GLOBAL max_allowed_packet = 67108864)`,
      });
    const mode = strOrNull(settings, 'sql_mode') ?? '';
    if (!/STRICT_(TRANS|ALL)_TABLES/.test(mode))
      problems.push({
        severity: 'warning',
        code: 'sql-mode-not-strict',
        message: `the source's sql_mode (${mode === '' ? 'empty' : mode}) is not strict: it may hold values a strict target refuses (zero dates, truncated text). The copy writes them as they are; look for them before the data phase`,
      });
    const zone = strOrNull(settings, 'time_zone') ?? '';
    const system = strOrNull(settings, 'system_time_zone') ?? '';
    if (
      !['+00:00', 'UTC'].includes(zone) &&
      !(zone === 'SYSTEM' && ['UTC', 'Etc/UTC', 'GMT'].includes(system))
    )
      problems.push({
        severity: 'info',
        code: 'time-zone',
        message: `the source's time zone is ${zone}${zone === 'SYSTEM' ? ` (${system})` : ''}: DATETIME values are copied as they are written (no conversion); TIMESTAMP values are read and written in UTC. Keep the application's reading of them the same on the target`,
      });
  }
  return problems;
}

/** A query that a missing privilege makes return nothing instead of failing the assessment. */
async function query(source: SqlSession, sql: string, params: readonly string[] = []) {
  try {
    return await source.query(sql, params);
  } catch {
    return [];
  }
}

/**
 * What the sync phase will find per migrated table: the change column its catch-up reads changed rows by (the
 * config's `changeColumn`, else the column declared ON UPDATE CURRENT_TIMESTAMP), and whether an index leads with
 * it. Without one, only checksum reconciliation finds changes; without the index, each catch-up reads the table.
 */
export function syncChecks(config: Config, schema: SchemaInfo): Problem[] {
  const problems: Problem[] = [];
  for (const table of schema.tables) {
    const rules = config.tables[table.name];
    if (rules === undefined || rules.exclude !== undefined) continue;
    const column = changeColumn(config, table);
    if (column === null) {
      problems.push({
        severity: 'info',
        code: 'no-change-column',
        table: table.name,
        message: `${table.name} has no change column (no DATETIME/TIMESTAMP column ON UPDATE CURRENT_TIMESTAMP, and none named in tables.${table.name}.changeColumn): sync keeps it in step by checksum reconciliation alone, which finds a change only when its chunk is compared (every pass with sync.slices 1)`,
      });
      continue;
    }
    if (!table.indexes.some((i) => i.columns[0] === column.name))
      problems.push({
        severity: 'info',
        code: 'change-column-not-indexed',
        table: table.name,
        message: `${table.name}: sync catches up by ${column.name}, which no index leads with, so each pass reads the whole table to find what changed. On a large table add one (ALTER TABLE \`${table.name}\` ADD INDEX (\`${column.name}\`)) before the sync phase`,
      });
    else
      problems.push({
        severity: 'info',
        code: 'change-column',
        table: table.name,
        message: `${table.name}: sync catches up by ${column.name} (indexed)`,
      });
  }
  return problems;
}

/** A day: the least binlog retention that lets a sync pass stopped overnight catch up from the log. */
const DAY_SECONDS = 86_400;

/**
 * How long the source keeps its binary logs, as change capture would need them: a warning under a day; null when
 * there is no log (said elsewhere), or it is kept until purged by hand (0), or it cannot be read.
 */
export function binlogRetention(logBin: boolean, seconds: number | null): Problem | null {
  if (!logBin || seconds === null || seconds === 0 || seconds >= DAY_SECONDS) return null;
  return {
    severity: 'warning',
    code: 'binlog-retention',
    message: `the source keeps its binary logs for ${Math.round(seconds / 3_600)} h: change capture that stops for longer than that cannot catch up from the log. Keep at least a day (SET GLOBAL binlog_expire_logs_seconds = 604800, or the cluster parameter group)`,
  };
}

const GIB = 1024 ** 3;
const gib = (bytes: number): string => `${(bytes / GIB).toFixed(bytes < 10 * GIB ? 2 : 0)} GiB`;

/**
 * Room on the target for the copy: its tables and indexes about as large as the source's, plus half again for
 * the indexes built after the copy, the ledger, the redo and binary logs. Blocking below that, a warning below
 * twice that; `free` null when the server's disk cannot be read (then a warning naming what to check).
 */
export function targetFreeSpace(input: {
  readonly sourceBytes: number;
  /** What the target holds already of the migrated tables (a copy resumed or repeated). @default 0 */
  readonly targetBytes?: number;
  /** Whether the target writes a binary log: the copy goes into it as well. @default false */
  readonly binlog?: boolean;
  readonly free: number | null;
  /** Where the free space was read, or why it could not be. */
  readonly where: string;
  /** Aurora's cluster volume grows by itself (to 128 TiB): nothing to check. */
  readonly aurora: boolean;
}): Problem {
  const copy = input.sourceBytes * 1.5 + (input.binlog === true ? input.sourceBytes : 0);
  const already = input.targetBytes ?? 0;
  const need = Math.max(0, Math.ceil(copy - already));
  const why = `the source's migrated tables and indexes are ${gib(input.sourceBytes)}, plus half again for the indexes built after the copy, the ledger and logs${input.binlog === true ? ', and as much again for the binary log the target writes' : ''}${already > 0 ? `, less the ${gib(already)} the target holds of them already` : ''}`;
  if (input.aurora)
    return {
      severity: 'info',
      code: 'target-free-space',
      message: `the target is Aurora, whose cluster volume grows as data is written (up to 128 TiB): the copy needs about ${gib(need)}`,
    };
  if (input.free === null)
    return {
      severity: 'warning',
      code: 'target-free-space',
      message: `the target's free disk space cannot be read from here (${input.where}): make sure its data directory has at least ${gib(need)} free (${why}), twice that to be safe; on RDS, CloudWatch's FreeStorageSpace says`,
    };
  if (input.free < need)
    return {
      severity: 'blocking',
      code: 'target-free-space',
      message: `the target has ${gib(input.free)} free at ${input.where}, and the copy needs about ${gib(need)} (${why}): free space or grow the volume first`,
    };
  return {
    severity: input.free < 2 * need ? 'warning' : 'info',
    code: 'target-free-space',
    message: `the target has ${gib(input.free)} free at ${input.where}; the copy needs about ${gib(need)}${input.free < 2 * need ? ': less than twice that, so logs growing during the run could fill it; free more space to be safe' : ''}`,
  };
}
