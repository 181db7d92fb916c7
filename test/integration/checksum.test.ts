import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rangeChecksum } from '../../lambdas/core/checksum.ts';
import { introspect } from '../../lambdas/core/schema/introspect.ts';
import type { SqlClient, SqlParam } from '../../lambdas/core/sql/port.ts';
import { mysqlClient, scratchDatabase } from '../support/mariadb.ts';

/**
 * The chunk checksum tells apart the changes a copy could make: a NULL that became '' (or the reverse), a value
 * moved to the next column, two values swapped, one character changed, a row lost or doubled. The same rows in
 * another physical order give the same checksum.
 */
describe('chunk checksum', () => {
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  let client: SqlClient;
  const ROWS: SqlParam[][] = [
    [1, 'alpha', 'x', null, 'note'],
    [2, 'beta', '', 'b', null],
    [3, 'gamma', 'g', 'g', 'g'],
  ];

  beforeAll(async () => {
    db = await scratchDatabase('checksum');
    client = mysqlClient(db.name);
  });
  afterAll(async () => {
    await client?.close();
    await db?.drop();
  });

  let tables = 0;
  /** A fresh table with these rows (inserted in the order given) and its checksum over every row. */
  async function checksumOf(rows: readonly (readonly SqlParam[])[], ddl = ''): Promise<string> {
    tables += 1;
    const name = `t${tables}`;
    await client.execute(
      ddl === ''
        ? `CREATE TABLE ${name} (id INT NOT NULL PRIMARY KEY, name VARCHAR(20) NOT NULL, a VARCHAR(20) NULL, b VARCHAR(20) NULL, c TEXT NULL)`
        : ddl.replace('$t', name),
    );
    for (const row of rows)
      await client.execute(`INSERT INTO ${name} VALUES (${row.map(() => '?').join(', ')})`, row);
    const info = (await introspect(client, db.name)).tables.find((t) => t.name === name);
    if (info === undefined) throw new Error(`${name} not found`);
    const sum = await rangeChecksum(client, {
      database: db.name,
      table: name,
      columns: info.columns,
      key: ['id'],
      range: { after: null, upTo: null },
    });
    return `${sum.rows}:${sum.sum}`;
  }

  it('gives the same checksum for the same rows in any order, and differs on every kind of change', async () => {
    const base = await checksumOf(ROWS);
    expect(await checksumOf([...ROWS].reverse())).toBe(base);
    const changed: Record<string, SqlParam[][]> = {
      'NULL became empty': [ROWS[0] as SqlParam[], [2, 'beta', '', 'b', ''], ROWS[2] as SqlParam[]],
      'empty became NULL': [ROWS[0] as SqlParam[], [2, 'beta', null, 'b', null], ROWS[2] as SqlParam[]],
      'value moved to the next column': [[1, 'alpha', null, 'x', 'note'], ...(ROWS.slice(1) as SqlParam[][])],
      'two values swapped': [[1, 'x', 'alpha', null, 'note'], ...(ROWS.slice(1) as SqlParam[][])],
      'one character changed': [[1, 'alphA', 'x', null, 'note'], ...(ROWS.slice(1) as SqlParam[][])],
      'separator moved between values': [
        [1, 'alpha', 'x', null, 'no\u001fte'],
        ...(ROWS.slice(1) as SqlParam[][]),
      ],
      'row lost': ROWS.slice(0, 2) as SqlParam[][],
    };
    for (const [what, rows] of Object.entries(changed)) {
      expect(await checksumOf(rows), what).not.toBe(base);
    }
  });

  it('tells a NULL from an empty string in a table whose only nullable column is the last', async () => {
    const ddl = 'CREATE TABLE $t (id INT NOT NULL PRIMARY KEY, v VARCHAR(8) NULL)';
    expect(await checksumOf([[1, null]], ddl)).not.toBe(await checksumOf([[1, '']], ddl));
  });

  it('uses all 64 bits for a table of a single column', async () => {
    const ddl = 'CREATE TABLE $t (id INT NOT NULL PRIMARY KEY)';
    const [rows, sum] = (await checksumOf([[12345]], ddl)).split(':');
    expect(rows).toBe('1');
    // The two halves hash different texts ('12345' and '54321'), so they differ.
    const value = BigInt(sum ?? '0');
    expect(value >> 32n).not.toBe(value & 0xffffffffn);
  });
});
