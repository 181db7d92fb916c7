import { isUniqueColumn } from './keys.ts';
import type {
  AmbiguousReference,
  BusinessKey,
  ColumnInfo,
  IndexInfo,
  Reference,
  TableInfo,
} from './types.ts';

/**
 * AI-Shifu declares no foreign keys: rows point at each other through `*_bid` strings. These functions
 * infer those links from names and indexes, the way a person reading the schema would.
 */

const BID = /_bid$/;

/** `users` → `user`, `categories` → `category`, `boxes` → `box`, `status` → `status`. */
export function singular(word: string): string {
  if (/ies$/.test(word)) return `${word.slice(0, -3)}y`;
  if (/(?:s|x|z|ch|sh)es$/.test(word)) return word.slice(0, -2);
  if (/ss$/.test(word) || /us$/.test(word)) return word;
  if (/s$/.test(word)) return word.slice(0, -1);
  return word;
}

/**
 * The table's business key: a `*_bid` column that alone is a unique (or primary) key, preferring the one
 * named after the table; else the `<singular of the last word of the table name>_bid` column.
 */
export function findBusinessKey(
  table: string,
  columns: readonly ColumnInfo[],
  indexes: readonly IndexInfo[],
): BusinessKey | null {
  const bidColumns = columns.filter((c) => BID.test(c.name)).map((c) => c.name);
  const last = table.split('_').at(-1) ?? table;
  // Spelling cannot tell `shifus` (shifu + s) from `status`: try each plausible singular in turn.
  const names = [...new Set([singular(last), last.replace(/s$/, ''), last])].map((w) => `${w}_bid`);
  const named = names.find((n) => bidColumns.includes(n)) ?? names[0] ?? '';
  const uniqueAlone = new Set(
    indexes.filter((i) => i.unique && !i.prefix && i.columns.length === 1).map((i) => i.columns[0] ?? ''),
  );
  const uniqueBids = bidColumns.filter((c) => uniqueAlone.has(c));
  if (uniqueBids.length > 0) {
    const column = uniqueBids.includes(named) ? named : (uniqueBids[0] ?? named);
    return { column, reason: 'unique index', unique: true };
  }
  if (bidColumns.includes(named)) return { column: named, reason: 'table name', unique: false };
  return null;
}

/**
 * The names a table's own identity column may have: `<singular of the last words of its name>_bid`, for every
 * run of last words (`learn_progress_records` → `record_bid`, `progress_record_bid`, `learn_progress_record_bid`).
 * Such a column identifies the row itself; it never points at another table, even when another table's key is a
 * suffix of it (`progress_record_bid` ends like `study_records.record_bid`).
 */
export function ownIdentityNames(table: string): Set<string> {
  const words = table.split('_');
  const last = words.at(-1) ?? table;
  const singulars = [...new Set([singular(last), last.replace(/s$/, ''), last])];
  const names = new Set<string>();
  for (let i = 0; i < words.length; i += 1) {
    const head = words.slice(i, -1);
    for (const s of singulars) names.add(`${[...head, s].join('_')}_bid`);
  }
  return names;
}

/**
 * Links every `*_bid` column to the table whose business key it names: the same name (`user_bid` →
 * `user_users.user_bid`) or a qualified one (`created_user_bid` → `user_users.user_bid`). A name that fits
 * the keys of several tables is reported as ambiguous rather than guessed; the config settles it.
 */
export function inferReferences(tables: readonly TableInfo[]): {
  references: Reference[];
  ambiguous: AmbiguousReference[];
} {
  const keyed = tables.filter((t) => t.businessKey !== null);
  const references: Reference[] = [];
  const ambiguous: AmbiguousReference[] = [];
  for (const table of tables) {
    for (const fk of table.foreignKeys) {
      fk.columns.forEach((column, i) => {
        const target = tables.find((t) => t.name === fk.referencedTable);
        const toColumn = fk.referencedColumns[i] ?? '';
        references.push({
          fromTable: table.name,
          fromColumn: column,
          toTable: fk.referencedTable,
          toColumn,
          kind: 'declared',
          toUnique: target === undefined ? false : isUniqueColumn(target, toColumn),
        });
      });
    }
    const declared = new Set(table.foreignKeys.flatMap((fk) => fk.columns));
    const own = ownIdentityNames(table.name);
    for (const column of table.columns) {
      if (!BID.test(column.name) || declared.has(column.name)) continue;
      if (table.businessKey?.column === column.name || own.has(column.name)) continue;
      const matches = keyed.filter((t) => {
        const key = t.businessKey?.column ?? '';
        return t.name !== table.name && (column.name === key || column.name.endsWith(`_${key}`));
      });
      // A unique key beats a key recognised only by its name when both fit.
      const best = matches.some((t) => t.businessKey?.unique)
        ? matches.filter((t) => t.businessKey?.unique)
        : matches;
      const [only] = best;
      if (best.length === 1 && only?.businessKey) {
        references.push({
          fromTable: table.name,
          fromColumn: column.name,
          toTable: only.name,
          toColumn: only.businessKey.column,
          kind: 'inferred',
          toUnique: only.businessKey.unique,
        });
      } else if (best.length > 1) {
        ambiguous.push({
          fromTable: table.name,
          fromColumn: column.name,
          candidates: best.map((t) => t.name),
        });
      }
    }
  }
  return { references, ambiguous };
}
