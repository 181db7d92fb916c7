/**
 * A smoke query's SQL as text outside quotes: what `;` and `:tenant` are looked for in. Quoted strings ('…', "…",
 * `…`, with doubled quotes and backslash escapes) and comments become spaces, so a `;` or `:tenant` inside a string
 * is data, not a statement end or a parameter.
 */
export function codeOutsideQuotes(sql: string): string {
  let out = '';
  for (let i = 0; i < sql.length; ) {
    const c = sql[i] ?? '';
    if (c === "'" || c === '"' || c === '`') {
      let j = i + 1;
      for (; j < sql.length; j += 1) {
        if (sql[j] === '\\' && c !== '`') j += 1;
        else if (sql[j] === c) {
          if (sql[j + 1] === c) j += 1;
          else break;
        }
      }
      out += ' '.repeat(Math.min(j + 1, sql.length) - i);
      i = j + 1;
    } else if (sql.startsWith('--', i) || c === '#') {
      const end = sql.indexOf('\n', i);
      const stop = end === -1 ? sql.length : end;
      out += ' '.repeat(stop - i);
      i = stop;
    } else if (sql.startsWith('/*', i)) {
      const end = sql.indexOf('*/', i + 2);
      const stop = end === -1 ? sql.length : end + 2;
      out += ' '.repeat(stop - i);
      i = stop;
    } else {
      out += c;
      i += 1;
    }
  }
  return out;
}

/** The query with each `:tenant` outside quotes as `?`, and how many there were. */
export function bindTenant(sql: string): { sql: string; uses: number } {
  const code = codeOutsideQuotes(sql);
  let out = '';
  let uses = 0;
  for (let i = 0; i < sql.length; ) {
    if (code.startsWith(':tenant', i) && !/[A-Za-z0-9_]/.test(code[i + 7] ?? '')) {
      out += '?';
      uses += 1;
      i += 7;
    } else {
      out += sql[i];
      i += 1;
    }
  }
  return { sql: out, uses };
}
