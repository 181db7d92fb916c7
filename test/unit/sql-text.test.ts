import { describe, expect, it } from 'vitest';
import { InvalidIdentifier, ResponseTooLarge } from '../../lambdas/core/errors.ts';
import { ident, identList, qualified } from '../../lambdas/core/identifiers.ts';
import { keyComparison, readKeyset } from '../../lambdas/core/sql/keyset.ts';
import type { Row, SqlParam, SqlSession } from '../../lambdas/core/sql/port.ts';
import { countPlaceholders, isDdl, toNamedPlaceholders } from '../../lambdas/core/sql/statements.ts';

describe('identifiers', () => {
  it('quotes names made of the characters MySQL allows unquoted', () => {
    expect(ident('user_users')).toBe('`user_users`');
    expect(ident('$tmp_2024')).toBe('`$tmp_2024`');
    expect(qualified('shifu_legacy', 'order_orders')).toBe('`shifu_legacy`.`order_orders`');
    expect(identList(['id', 'user_bid'])).toBe('`id`, `user_bid`');
  });

  it.each([
    ['a backtick', 'user`; DROP TABLE x; --'],
    ['a space', 'user users'],
    ['a dot', 'db.table'],
    ['only digits', '12345'],
    ['nothing', ''],
    ['65 characters', 'a'.repeat(65)],
    ['a non-ASCII letter', 'usér'],
  ])('refuses a name with %s, saying what is allowed', (_, name) => {
    expect(() => ident(name, 'table')).toThrow(InvalidIdentifier);
    expect(() => ident(name, 'table')).toThrow(/unsupported table name .*A-Z, a-z, 0-9, _ or \$/);
  });
});

describe('placeholders', () => {
  it('finds ? only outside quotes and comments', () => {
    const sql = "SELECT '?', \"?\", `?`, 'it''s ?', 'a\\'?' /* ? */, ? -- ?\n, ? # ?\n";
    expect(countPlaceholders(sql)).toBe(2);
    expect(toNamedPlaceholders(sql)).toEqual({
      sql: "SELECT '?', \"?\", `?`, 'it''s ?', 'a\\'?' /* ? */, :p1 -- ?\n, :p2 # ?\n",
      names: ['p1', 'p2'],
    });
  });

  it('tells DDL from other statements', () => {
    expect(isDdl('  CREATE TABLE t (id INT)')).toBe(true);
    expect(isDdl('/* why */ alter table t add column c int')).toBe(true);
    expect(isDdl('DROP TABLE t')).toBe(true);
    expect(isDdl('INSERT INTO t SELECT * FROM created')).toBe(false);
    expect(isDdl('SELECT 1')).toBe(false);
  });
});

describe('keyset comparisons', () => {
  it('compares a one-column key with an index range', () => {
    expect(keyComparison(['id'], '>', [10])).toEqual({ sql: '`id` >= ? AND (`id` > ?)', params: [10, 10] });
  });

  it('expands a composite key lexicographically, with a leading range on the first column', () => {
    expect(keyComparison(['a', 'b', 'c'], '<=', [1, 'x', 5])).toEqual({
      sql: '`a` <= ? AND (`a` < ? OR (`a` = ? AND `b` < ?) OR (`a` = ? AND `b` = ? AND `c` <= ?))',
      params: [1, 1, 1, 'x', 1, 'x', 5],
    });
  });
});

/** A session over an in-memory sorted table that refuses pages above `maxRows`, like the Data API's limit. */
function memorySession(ids: number[], maxRows: number): SqlSession & { limits: number[] } {
  const limits: number[] = [];
  return {
    limits,
    async query(sql: string, params: readonly SqlParam[] = []): Promise<Row[]> {
      const limit = Number(params.at(-1));
      limits.push(limit);
      if (limit > maxRows)
        throw new ResponseTooLarge('Database returned more than the allowed response size limit');
      const after = sql.includes('WHERE') ? Number(params[0]) : Number.NEGATIVE_INFINITY;
      return ids
        .filter((id) => id > after)
        .slice(0, limit)
        .map((id) => ({ id }));
    },
    execute: async () => ({ affectedRows: 0 }),
    batch: async () => {},
  };
}

describe('readKeyset', () => {
  it('halves the page on ResponseTooLarge, and tries a larger one again after a page fits', async () => {
    const ids = Array.from({ length: 100 }, (_, i) => i * 3);
    const session = memorySession(ids, 20);
    const seen: number[] = [];
    for await (const page of readKeyset(session, {
      table: 't',
      columns: ['id'],
      key: ['id'],
      pageRows: 64,
    })) {
      seen.push(...page.map((r) => Number(r.id)));
    }
    expect(seen).toEqual(ids);
    expect(session.limits.slice(0, 4)).toEqual([64, 32, 16, 32]);
    // Never stuck at the smallest size a bad page needed: it grows back whenever a page fits.
    expect(Math.max(...session.limits.slice(3))).toBe(32);
  });

  it('fails naming the table and key when a single row is too large', async () => {
    const session = memorySession([1, 2, 3], 0);
    const read = readKeyset(session, {
      table: 'learn_generated_blocks',
      columns: ['id'],
      key: ['id'],
      pageRows: 4,
    });
    await expect(read.next()).rejects.toThrow(/one row of learn_generated_blocks after key \[\] is larger/);
  });
});
