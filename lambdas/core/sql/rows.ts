import type { Row, SqlValue } from './port.ts';

/**
 * Typed reads of result rows. A column with an unexpected type is a bug in our SQL or a server we do not
 * understand, so it throws with the column's name instead of letting a wrong type travel on.
 */

function column(row: Row, name: string): SqlValue {
  if (!(name in row))
    throw new TypeError(`result has no column ${name} (has ${Object.keys(row).join(', ')})`);
  return row[name] ?? null;
}

export function str(row: Row, name: string): string {
  const value = column(row, name);
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (typeof value === 'number') return String(value);
  throw new TypeError(`column ${name} is NULL where a string was expected`);
}

export function strOrNull(row: Row, name: string): string | null {
  return column(row, name) === null ? null : str(row, name);
}

/** A number; BIGINT strings and DECIMAL strings are converted when they are exact as numbers. */
export function num(row: Row, name: string): number {
  const value = column(row, name);
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value.trim() !== '') {
    const parsed = Number(value);
    if (Number.isFinite(parsed)) return parsed;
  }
  throw new TypeError(`column ${name} is ${JSON.stringify(value)} where a number was expected`);
}

export function numOrNull(row: Row, name: string): number | null {
  return column(row, name) === null ? null : num(row, name);
}

/** The first row's first column as a number: for `SELECT COUNT(*) …`. */
export function scalarNumber(rows: readonly Row[]): number {
  const first = rows[0];
  if (first === undefined) throw new TypeError('query returned no row where one was expected');
  const key = Object.keys(first)[0];
  if (key === undefined) throw new TypeError('query returned a row with no column');
  return num(first, key);
}
