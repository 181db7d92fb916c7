/**
 * Just enough SQL lexing to find `?` placeholders: skips '…', "…", `…` (with doubled-quote and
 * backslash escapes), `-- ` and `#` line comments and block comments.
 */
function placeholderOffsets(sql: string): number[] {
  const offsets: number[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    if (c === "'" || c === '"' || c === '`') {
      i = skipQuoted(sql, i, c);
    } else if (c === '#' || (c === '-' && sql[i + 1] === '-' && /\s/.test(sql[i + 2] ?? ' '))) {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? sql.length : end + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end === -1 ? sql.length : end + 2;
    } else {
      if (c === '?') offsets.push(i);
      i += 1;
    }
  }
  return offsets;
}

function skipQuoted(sql: string, start: number, quote: string): number {
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i];
    if (c === '\\' && quote !== '`') {
      i += 2;
    } else if (c === quote) {
      if (sql[i + 1] === quote) {
        i += 2;
      } else {
        return i + 1;
      }
    } else {
      i += 1;
    }
  }
  return sql.length;
}

/** Number of `?` placeholders outside quotes and comments. */
export function countPlaceholders(sql: string): number {
  return placeholderOffsets(sql).length;
}

/** Rewrites `?` placeholders to `:p1`, `:p2`, … (the Data API's named parameters). */
export function toNamedPlaceholders(sql: string): { sql: string; names: string[] } {
  const offsets = placeholderOffsets(sql);
  const names: string[] = [];
  let out = '';
  let from = 0;
  for (const offset of offsets) {
    const name = `p${names.length + 1}`;
    names.push(name);
    out += `${sql.slice(from, offset)}:${name}`;
    from = offset + 1;
  }
  return { sql: out + sql.slice(from), names };
}

const DDL = /^\s*(?:\/\*.*?\*\/\s*)*(CREATE|ALTER|DROP|RENAME|TRUNCATE)\b/is;

/** True for schema changes, which should finish even when the caller stops waiting. */
export function isDdl(sql: string): boolean {
  return DDL.test(sql);
}
