import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatabaseError } from '../../lambdas/core/errors.ts';
import { createDataApiClient } from '../../lambdas/core/sql/data-api.ts';
import { insertRows } from '../../lambdas/core/sql/insert.ts';
import { readKeyset } from '../../lambdas/core/sql/keyset.ts';
import { type Row, type SqlClient, type SqlSession, typed } from '../../lambdas/core/sql/port.ts';
import { scalarNumber } from '../../lambdas/core/sql/rows.ts';
import { type FakeDataApi, fakeDataApi } from '../support/fake-data-api.ts';
import { mysqlClient, scratchDatabase } from '../support/mariadb.ts';

/**
 * The SQL port's contract: the same cases, the same expected JS values, for every adapter.
 * mysql2 talks to MariaDB; the Data API adapter talks to aws-sdk-client-mock, whose handler runs the
 * statement on the same MariaDB and answers in the Data API's shapes.
 */

interface Harness {
  client: SqlClient;
  tooLargeResponses(): number;
  close(): Promise<void>;
}

const adapters: { name: string; open(database: string): Promise<Harness> }[] = [
  {
    name: 'mysql2 on MariaDB',
    async open(database) {
      const client = mysqlClient(database);
      return { client, tooLargeResponses: () => 0, close: () => client.close() };
    },
  },
  {
    name: 'RDS Data API (aws-sdk-client-mock over MariaDB)',
    async open(database) {
      const fake: FakeDataApi = await fakeDataApi({ database });
      const client = createDataApiClient({
        client: fake.client,
        resourceArn: 'arn:aws:rds:us-east-1:123456789012:cluster:shifu',
        secretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:shifu-AbCdEf',
        database,
      });
      return { client, tooLargeResponses: () => fake.tooLargeResponses, close: () => fake.close() };
    },
  },
];

const TEXT = 'emoji 😀 CJK 中文 𠮷 quote \' double " back\\slash tab\t newline\n';
const BYTES = Buffer.from([0, 1, 2, 127, 128, 254, 255, 0x27, 0x5c]);

describe.each(adapters)('SQL port contract: $name', (adapter) => {
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  let h: Harness;

  beforeAll(async () => {
    db = await scratchDatabase('contract');
    h = await adapter.open(db.name);
  });
  afterAll(async () => {
    await h?.close();
    await db?.drop();
  });

  it('returns every column type as the same JS value it was written with', async () => {
    await h.client.execute(`CREATE TABLE types_probe (
      id INT NOT NULL PRIMARY KEY,
      big_safe BIGINT, big_unsigned BIGINT UNSIGNED, big_negative BIGINT, small SMALLINT,
      money DECIMAL(20,6), price DECIMAL(10,2), ratio DOUBLE,
      dt DATETIME, dt6 DATETIME(6), ts3 TIMESTAMP(3) NULL, d DATE, t TIME,
      doc JSON, txt VARCHAR(255), long_text MEDIUMTEXT, bin VARBINARY(16), hash BINARY(4), nothing VARCHAR(8) NULL
    ) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);
    const longText = '中文😀'.repeat(30_000);
    await h.client.execute(
      'INSERT INTO types_probe VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [
        1,
        9007199254740991,
        18446744073709551615n,
        '-9223372036854775808',
        -32768,
        typed('DECIMAL', '12345678901234.123456'),
        '0.10',
        0.1,
        typed('TIMESTAMP', '2024-02-29 23:59:59'),
        typed('TIMESTAMP', '2024-02-29 23:59:59.123456'),
        // 02:30 on 10 March 2024 does not exist in US time zones: only a UTC session keeps it.
        typed('TIMESTAMP', '2024-03-10 02:30:00.500'),
        typed('DATE', '2024-02-29'),
        typed('TIME', '838:59:59'),
        typed('JSON', '{"a": [1, 2, {"b": "ü😀"}], "n": null}'),
        TEXT,
        longText,
        BYTES,
        Buffer.from([0, 0, 0, 1]),
        null,
      ],
    );
    // Read as the copy reads: keyset pages, the long text sliced where one row outgrows a response (the Data API's
    // 64 KB per row; this one is 300 KB), and put together again.
    const rows: Row[] = [];
    for await (const page of readKeyset(h.client, {
      table: 'types_probe',
      columns: [
        'id',
        'big_safe',
        'big_unsigned',
        'big_negative',
        'small',
        'money',
        'price',
        'ratio',
        'dt',
        'dt6',
        'ts3',
        'd',
        't',
        'doc',
        'txt',
        'long_text',
        'bin',
        'hash',
        'nothing',
      ],
      key: ['id'],
      pageRows: 10,
      sliceable: [{ name: 'long_text', binary: false }],
    }))
      rows.push(...page);
    expect(rows).toEqual([
      {
        id: 1,
        big_safe: 9007199254740991,
        big_unsigned: '18446744073709551615',
        big_negative: '-9223372036854775808',
        small: -32768,
        money: '12345678901234.123456',
        price: '0.10',
        ratio: 0.1,
        dt: '2024-02-29 23:59:59',
        dt6: '2024-02-29 23:59:59.123456',
        ts3: '2024-03-10 02:30:00.500',
        d: '2024-02-29',
        t: '838:59:59',
        doc: '{"a": [1, 2, {"b": "ü😀"}], "n": null}',
        txt: TEXT,
        long_text: longText,
        bin: BYTES,
        hash: Buffer.from([0, 0, 0, 1]),
        nothing: null,
      },
    ]);
  });

  it('labels columns by their alias and treats ? inside quotes and comments as text', async () => {
    const rows = await h.client.query(
      "SELECT '?' AS q, ? AS v, `?`.x AS `a?` FROM (SELECT 1 AS x) AS `?` /* ? */ -- ?",
      ['value'],
    );
    expect(rows).toEqual([{ q: '?', v: 'value', 'a?': 1 }]);
  });

  it('reports the rows a write changed', async () => {
    await h.client.execute('CREATE TABLE counted (id INT PRIMARY KEY, v INT)');
    expect(await h.client.execute('INSERT INTO counted VALUES (1, 1), (2, 2), (3, 3)')).toEqual({
      affectedRows: 3,
    });
    expect(await h.client.execute('UPDATE counted SET v = v + 1 WHERE id >= ?', [2])).toEqual({
      affectedRows: 2,
    });
    expect(await h.client.execute('DELETE FROM counted WHERE id = ?', [99])).toEqual({ affectedRows: 0 });
  });

  it('commits a transaction that resolves and rolls back one that throws, rethrowing its error', async () => {
    await h.client.execute('CREATE TABLE ledger (id INT PRIMARY KEY, note VARCHAR(20))');
    const committed = await h.client.transaction(async (tx) => {
      await tx.execute('INSERT INTO ledger VALUES (?, ?)', [1, 'kept']);
      return (await tx.query('SELECT COUNT(*) AS n FROM ledger')).length;
    });
    expect(committed).toBe(1);
    const failure = new Error('work failed half-way');
    await expect(
      h.client.transaction(async (tx) => {
        await tx.execute('INSERT INTO ledger VALUES (?, ?)', [2, 'discarded']);
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(await h.client.query('SELECT id, note FROM ledger ORDER BY id')).toEqual([
      { id: 1, note: 'kept' },
    ]);
  });

  it('runs a batch all or nothing', async () => {
    await h.client.execute('CREATE TABLE batched (id INT PRIMARY KEY, v VARCHAR(10))');
    await h.client.batch('INSERT INTO batched VALUES (?, ?)', [
      [1, 'a'],
      [2, 'b'],
    ]);
    await expect(
      h.client.batch('INSERT INTO batched VALUES (?, ?)', [
        [3, 'c'],
        [1, 'duplicate'],
      ]),
    ).rejects.toBeInstanceOf(DatabaseError);
    expect(await h.client.query('SELECT id FROM batched ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }]);
  });

  it('upserts multi-row inserts by primary key without duplicating rows', async () => {
    await h.client.execute('CREATE TABLE upserted (id INT PRIMARY KEY, v VARCHAR(10), note VARCHAR(10))');
    const rows = [1, 2, 3, 4].map((id) => [id, `v${id}`, 'first']);
    await insertRows(h.client, {
      table: 'upserted',
      columns: ['id', 'v', 'note'],
      rows,
      onDuplicate: 'update',
      maxStatementBytes: h.client.maxStatementBytes,
    });
    await insertRows(h.client, {
      table: 'upserted',
      columns: ['id', 'v', 'note'],
      rows: [...[1, 2, 3, 4].map((id) => [id, `w${id}`, 'second']), [5, 'w5', 'second']],
      onDuplicate: 'update',
      updateColumns: ['v'],
      maxStatementBytes: h.client.maxStatementBytes,
    });
    expect(await h.client.query('SELECT id, v, note FROM upserted ORDER BY id')).toEqual([
      { id: 1, v: 'w1', note: 'first' },
      { id: 2, v: 'w2', note: 'first' },
      { id: 3, v: 'w3', note: 'first' },
      { id: 4, v: 'w4', note: 'first' },
      { id: 5, v: 'w5', note: 'second' },
    ]);
  });

  it('splits a multi-row insert into statements that fit the byte budget', async () => {
    await h.client.execute('CREATE TABLE split (id INT PRIMARY KEY, payload VARCHAR(200))');
    const statements: string[] = [];
    const counting: SqlSession = {
      query: (sql, params) => h.client.query(sql, params),
      batch: (sql, sets) => h.client.batch(sql, sets),
      execute: (sql, params) => {
        statements.push(sql);
        return h.client.execute(sql, params);
      },
    };
    const rows = Array.from({ length: 500 }, (_, i) => [i + 1, `${'x'.repeat(100)}${i}`]);
    const affected = await insertRows(counting, {
      table: 'split',
      columns: ['id', 'payload'],
      rows,
      maxStatementBytes: 8 * 1024,
    });
    expect(affected).toBe(500);
    expect(statements.length).toBeGreaterThan(10);
    for (const sql of statements) expect(sql.length).toBeLessThanOrEqual(8 * 1024);
    expect(scalarNumber(await h.client.query('SELECT COUNT(*) AS n FROM split'))).toBe(500);
  });

  it('writes rows read back from every column type identically with prepared and plain inserts', async () => {
    const ddl = (name: string) => `CREATE TABLE ${name} (
      id INT NOT NULL PRIMARY KEY, flag TINYINT(1), big_unsigned BIGINT UNSIGNED, big_negative BIGINT,
      money DECIMAL(20,6), ratio DOUBLE, approx FLOAT, bits BIT(10), yr YEAR, dt6 DATETIME(6), t TIME,
      kind ENUM('a','b'), tags SET('x','y','z'), doc JSON, txt VARCHAR(255), blob_ BLOB, nothing VARCHAR(8) NULL
    ) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`;
    for (const name of ['typed_source', 'typed_plain', 'typed_prepared']) await h.client.execute(ddl(name));
    await h.client.execute(
      `INSERT INTO typed_source VALUES
        (1, 1, 18446744073709551615, -9223372036854775808, -12345678901234.123456, 0.1, 3.14159, b'1010101010', 2024,
         '2024-02-29 23:59:59.123456', '-838:59:59', 'b', 'x,z', '{"k": [1, "ü😀"]}', ?, ?, NULL),
        (2, 0, 0, 9007199254740993, 0.000001, -1.5e300, -0.000123, b'0', 1901, '1000-01-01 00:00:00', '00:00:00.5',
         'a', '', 'null', '', '', 'x')`,
      [TEXT, BYTES],
    );
    const rows = await h.client.query('SELECT * FROM typed_source ORDER BY id');
    const columns = Object.keys(rows[0] ?? {});
    const values = rows.map((r) => columns.map((c) => r[c] ?? null));
    for (const [table, prepared] of [
      ['typed_plain', false],
      ['typed_prepared', true],
    ] as const) {
      await insertRows(h.client, {
        table,
        columns,
        rows: values,
        onDuplicate: 'update',
        maxStatementBytes: h.client.maxStatementBytes,
        prepared,
      });
      expect(await h.client.query(`SELECT * FROM ${table} ORDER BY id`)).toEqual(rows);
    }
    const sums = await h.client.query('CHECKSUM TABLE typed_source, typed_plain, typed_prepared EXTENDED');
    expect(new Set(sums.map((r) => r.Checksum)).size).toBe(1);
  });

  it('sends prepared inserts in power-of-two row counts, so a table has few statement texts', async () => {
    await h.client.execute('CREATE TABLE pow (id INT PRIMARY KEY, v VARCHAR(10))');
    const sent: { rows: number; prepared: boolean }[] = [];
    const counting: SqlSession = {
      query: (sql, params) => h.client.query(sql, params),
      batch: (sql, sets) => h.client.batch(sql, sets),
      execute: (sql, params, options) => {
        sent.push({ rows: (params?.length ?? 0) / 2, prepared: options?.prepared === true });
        return h.client.execute(sql, params, options);
      },
    };
    const rows = Array.from({ length: 1000 }, (_, i) => [i + 1, `v${i}`]);
    expect(
      await insertRows(counting, {
        table: 'pow',
        columns: ['id', 'v'],
        rows,
        maxStatementBytes: h.client.maxStatementBytes,
        prepared: true,
      }),
    ).toBe(1000);
    expect(sent).toEqual([512, 256, 128, 64, 32, 8].map((n) => ({ rows: n, prepared: true })));
    expect(await h.client.query('SELECT id, v FROM pow ORDER BY id')).toEqual(
      rows.map(([id, v]) => ({ id, v })),
    );
  });

  it('pages a key range in key order, composite keys and bounds included', async () => {
    await h.client.execute(
      'CREATE TABLE paged (a INT NOT NULL, b VARCHAR(8) NOT NULL, v INT, PRIMARY KEY (a, b))',
    );
    const all: { a: number; b: string; v: number }[] = [];
    for (let a = 0; a < 40; a += 1)
      for (const b of ['x', 'y', 'z']) all.push({ a, b, v: a * 10 + b.charCodeAt(0) });
    await insertRows(h.client, {
      table: 'paged',
      columns: ['a', 'b', 'v'],
      rows: all.map(({ a, b, v }) => [a, b, v]),
      maxStatementBytes: h.client.maxStatementBytes,
    });
    const pages: Row[][] = [];
    for await (const page of readKeyset(h.client, {
      table: 'paged',
      columns: ['a', 'b', 'v'],
      key: ['a', 'b'],
      after: [3, 'y'],
      upTo: [30, 'x'],
      pageRows: 7,
    })) {
      pages.push(page);
    }
    const expected = all.filter(
      ({ a, b }) => (a === 3 ? b === 'z' : a > 3) && (a === 30 ? b === 'x' : a < 30),
    );
    expect(pages.flat()).toEqual(expected);
    expect(pages.every((p) => p.length <= 7)).toBe(true);
  });

  it('halves the page when a response is too large, and still returns every row once', async () => {
    await h.client.execute('CREATE TABLE wide (id INT PRIMARY KEY, body MEDIUMTEXT)');
    const rows = Array.from({ length: 40 }, (_, i) => [i + 1, `${i}:${'y'.repeat(60_000)}`]);
    await insertRows(h.client, {
      table: 'wide',
      columns: ['id', 'body'],
      rows,
      maxStatementBytes: h.client.maxStatementBytes,
    });
    const before = h.tooLargeResponses();
    const seen: number[] = [];
    for await (const page of readKeyset(h.client, {
      table: 'wide',
      columns: ['id', 'body'],
      key: ['id'],
      pageRows: 40,
    })) {
      for (const row of page) {
        expect(row.body).toBe(`${Number(row.id) - 1}:${'y'.repeat(60_000)}`);
        seen.push(Number(row.id));
      }
    }
    expect(seen).toEqual(rows.map(([id]) => id));
    // 40 rows of 60 KB exceed the Data API's 1 MiB: that adapter had to halve at least once.
    if (h.client.adapter === 'data-api') expect(h.tooLargeResponses()).toBeGreaterThan(before);
  });

  it("never carries the values it was sent in a failing statement's error, cause included", async () => {
    await h.client.execute('CREATE TABLE secrets_probe (id INT PRIMARY KEY, card VARCHAR(40))');
    await h.client.execute('INSERT INTO secrets_probe VALUES (?, ?)', [1, 'first']);
    const error = await h.client
      .execute('INSERT INTO secrets_probe VALUES (?, ?)', [1, '4111-1111-1111-1111'])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatabaseError);
    expect(inspect(error, { depth: 8 })).not.toContain('4111-1111-1111-1111');
  });

  it('raises DatabaseError with the server message for a failing statement', async () => {
    await h.client.execute('CREATE TABLE unique_probe (id INT PRIMARY KEY)');
    await h.client.execute('INSERT INTO unique_probe VALUES (?)', [1]);
    await expect(h.client.execute('INSERT INTO unique_probe VALUES (?)', [1])).rejects.toThrow(
      /Duplicate entry/,
    );
    await expect(h.client.query('SELECT * FROM no_such_table')).rejects.toBeInstanceOf(DatabaseError);
  });
});
