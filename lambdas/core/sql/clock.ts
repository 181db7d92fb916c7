import type { ColumnInfo } from '../schema/types.ts';
import type { SqlSession } from './port.ts';
import { str, strOrNull } from './rows.ts';

/**
 * The source server's clock, never the client's: sync's watermarks compare it with change columns the server itself
 * set (`ON UPDATE CURRENT_TIMESTAMP`), so a client whose clock runs ahead or behind loses nothing.
 */

/** The server's time now, UTC, as DATETIME(6) text (`2026-12-01 06:27:37.546289`). */
export async function sourceClock(session: SqlSession): Promise<string> {
  const [row] = await session.query('SELECT UTC_TIMESTAMP(6) AS now');
  if (row === undefined) throw new Error('the server did not say what time it is');
  return str(row, 'now');
}

/**
 * SQL for a UTC time (one `?` parameter) in the frame a change column's values are written in: a TIMESTAMP reads in
 * the session's time zone; a DATETIME holds what the writing session's clock said, in the server's own zone (the
 * application's sessions keep it, as AI-Shifu's do).
 */
export function inColumnFrame(column: ColumnInfo): string {
  return column.dataType === 'timestamp'
    ? "CONVERT_TZ(?, '+00:00', @@SESSION.time_zone)"
    : "CONVERT_TZ(?, '+00:00', @@GLOBAL.time_zone)";
}

/** The server's zone has no time zone tables behind its name: a DATETIME change time cannot be compared. */
export class ClockUnreadable extends Error {
  override name = 'ClockUnreadable';
}

/** Throws {@link ClockUnreadable} when {@link inColumnFrame} would give NULL for this column. */
export async function assertFrameReadable(session: SqlSession, column: ColumnInfo): Promise<void> {
  const [row] = await session.query(`SELECT ${inColumnFrame(column)} AS t, @@GLOBAL.time_zone AS zone`, [
    '2000-01-01 00:00:00',
  ]);
  if (row !== undefined && strOrNull(row, 't') !== null) return;
  throw new ClockUnreadable(
    `the source's time zone ${row === undefined ? '' : (strOrNull(row, 'zone') ?? '')} has no time zone tables on the server, so the time of a change in ${column.name} cannot be compared with the server's clock: load them (mysql_tzinfo_to_sql), or set the server's time_zone as an offset such as '+08:00'`,
  );
}
