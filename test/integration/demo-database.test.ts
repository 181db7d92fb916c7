import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../lambdas/core/errors.ts';
import { qualified } from '../../lambdas/core/identifiers.ts';
import { introspect } from '../../lambdas/core/schema/introspect.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { num, scalarNumber, str } from '../../lambdas/core/sql/rows.ts';
import { DemoShape } from '../../local/demo/generate.ts';
import { type SeedResult, seedDemo } from '../../local/demo/seed.ts';
import { mysqlClient, scratchDatabase } from '../support/mariadb.ts';

const USERS = 300;

describe('demo legacy database', () => {
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  let twin: Awaited<ReturnType<typeof scratchDatabase>>;
  let server: SqlClient;
  let result: SeedResult;
  const count = async (sql: string) =>
    scalarNumber(await server.query(sql.replaceAll('$db', `\`${db.name}\``)));

  beforeAll(async () => {
    db = await scratchDatabase('demo');
    twin = await scratchDatabase('demo_twin');
    server = mysqlClient('information_schema');
    result = await seedDemo({ client: server, database: db.name, users: USERS, reset: false });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
    await twin?.drop();
  });

  it('fills every table with the rows the generator planned', async () => {
    const planned = new DemoShape(USERS).tables().map((t) => ({ name: t.table, rows: t.count }));
    expect(result.tables).toEqual(planned);
    for (const table of planned) {
      expect(
        scalarNumber(await server.query(`SELECT COUNT(*) AS n FROM ${qualified(db.name, table.name)}`)),
      ).toBe(table.rows);
    }
    expect(result.totalRows).toBe(planned.reduce((sum, t) => sum + t.rows, 0));
    expect(result.totalRows / USERS).toBeGreaterThan(40);
  });

  it('holds the cases a migration must survive', async () => {
    // NULLs in nullable columns; phone-only users; e-mail users from mixed-case domains and subdomains.
    expect(
      await count('SELECT COUNT(*) FROM $db.user_users WHERE email IS NULL AND phone IS NOT NULL'),
    ).toBeGreaterThan(0);
    expect(
      await count("SELECT COUNT(*) FROM $db.user_users WHERE email LIKE BINARY '%@ACME.com'"),
    ).toBeGreaterThan(0);
    expect(
      await count("SELECT COUNT(*) FROM $db.user_users WHERE email LIKE '%@cn.acme.com'"),
    ).toBeGreaterThan(0);
    expect(await count("SELECT COUNT(*) FROM $db.user_users WHERE email NOT LIKE '%@%'")).toBeGreaterThan(0);
    // 4-byte UTF-8 (emoji, CJK extension B) and CJK text.
    expect(
      await count(
        "SELECT COUNT(*) FROM $db.user_users WHERE HEX(nickname) LIKE 'F0%' OR HEX(nickname) LIKE '%F0%'",
      ),
    ).toBeGreaterThan(0);
    expect(await count("SELECT COUNT(*) FROM $db.shifu_outlines WHERE title LIKE '%章%'")).toBeGreaterThan(0);
    // JSON, DECIMAL money, BIGINT UNSIGNED beyond 2^53, fractional seconds, binary.
    expect(
      await count(
        'SELECT COUNT(*) FROM $db.order_orders WHERE metadata IS NOT NULL AND JSON_VALID(metadata)',
      ),
    ).toBeGreaterThan(0);
    expect(
      await count("SELECT COUNT(*) FROM $db.order_orders WHERE payable_price = '99999999.99'"),
    ).toBeGreaterThan(0);
    expect(
      await count('SELECT COUNT(*) FROM $db.pay_payments WHERE channel_trade_no > 9007199254740993'),
    ).toBeGreaterThan(0);
    expect(
      await count('SELECT COUNT(*) FROM $db.pay_payments WHERE MICROSECOND(paid_at) > 0'),
    ).toBeGreaterThan(0);
    expect(
      await count('SELECT COUNT(*) FROM $db.user_users WHERE LENGTH(password_hash) = 32'),
    ).toBeGreaterThan(0);
    // Soft deletes; orphaned and empty-string references; a user_bid registered twice.
    expect(await count('SELECT COUNT(*) FROM $db.user_users WHERE deleted = 1')).toBeGreaterThan(0);
    expect(
      await count(
        "SELECT COUNT(*) FROM $db.order_orders o WHERE o.user_bid <> '' AND NOT EXISTS (SELECT 1 FROM $db.user_users u WHERE u.user_bid = o.user_bid)",
      ),
    ).toBeGreaterThan(0);
    expect(await count("SELECT COUNT(*) FROM $db.order_orders WHERE user_bid = ''")).toBeGreaterThan(0);
    expect(await count("SELECT COUNT(*) FROM $db.shifu_outlines WHERE parent_bid = ''")).toBeGreaterThan(0);
    expect(
      await count(
        'SELECT COUNT(*) FROM (SELECT user_bid FROM $db.user_users GROUP BY user_bid HAVING COUNT(*) > 1) d',
      ),
    ).toBeGreaterThan(0);
    // Text over 64 KB.
    expect(
      await count('SELECT COUNT(*) FROM $db.shifu_outlines WHERE LENGTH(content) > 65535'),
    ).toBeGreaterThan(0);
    // No declared foreign keys, as in AI-Shifu; user_bid indexed but not unique.
    expect(
      await count(
        `SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = '${db.name}'`,
      ),
    ).toBe(0);
    const userBidIndex = await server.query(
      "SELECT NON_UNIQUE AS non_unique FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'user_users' AND COLUMN_NAME = 'user_bid'",
      [db.name],
    );
    expect(userBidIndex.map((r) => num(r, 'non_unique'))).toEqual([1]);
  });

  it('makes the same database for the same number of users', async () => {
    await seedDemo({ client: server, database: twin.name, users: USERS, reset: false });
    for (const table of result.tables) {
      const sums = await server.query(
        `CHECKSUM TABLE ${qualified(db.name, table.name)}, ${qualified(twin.name, table.name)} EXTENDED`,
      );
      const [a, b] = sums.map((r) => str(r, 'Checksum'));
      expect(a, table.name).toBe(b);
    }
  });

  it('needs --reset to replace its own demo, and never touches a database it did not make', async () => {
    await expect(seedDemo({ client: server, database: db.name, users: 10, reset: false })).rejects.toThrow(
      /already holds the demo: pass --reset/,
    );
    const foreign = await scratchDatabase('foreign');
    try {
      await server.execute(`CREATE TABLE ${qualified(foreign.name, 'precious')} (id INT PRIMARY KEY)`);
      await server.execute(`INSERT INTO ${qualified(foreign.name, 'precious')} VALUES (1)`);
      const error = await seedDemo({ client: server, database: foreign.name, users: 10, reset: true }).catch(
        (e) => e,
      );
      expect(error).toBeInstanceOf(InputError);
      expect((error as Error).message).toMatch(/was not made by seed-demo .*refusing to touch it/);
      expect(
        scalarNumber(await server.query(`SELECT COUNT(*) AS n FROM ${qualified(foreign.name, 'precious')}`)),
      ).toBe(1);
    } finally {
      await foreign.drop();
    }
  });

  it('introspects the demo: keys, indexes, JSON columns, defaults and inferred references', async () => {
    const client = mysqlClient(db.name);
    try {
      const schema = await introspect(client, db.name);
      expect(schema.server.flavor).toBe('mariadb');
      expect(schema.views).toEqual([]);
      expect(schema.tables.map((t) => t.name)).toEqual([...result.tables.map((t) => t.name)].sort());
      const users = schema.tables.find((t) => t.name === 'user_users');
      expect(users?.primaryKey).toEqual(['id']);
      expect(users?.businessKey).toEqual({ column: 'user_bid', reason: 'table name', unique: false });
      expect(users?.indexes).toContainEqual({
        name: 'idx_user_bid',
        unique: false,
        columns: ['user_bid'],
        prefix: false,
      });
      expect(users?.columns.map((c) => c.name)).toEqual([
        'id',
        'user_bid',
        'username',
        'nickname',
        'email',
        'phone',
        'password_hash',
        'user_state',
        'language',
        'created_at',
        'updated_at',
        'deleted',
      ]);
      const column = (table: string, name: string) =>
        schema.tables.find((t) => t.name === table)?.columns.find((c) => c.name === name);
      expect(column('user_users', 'username')).toMatchObject({
        defaultValue: '',
        defaultIsExpression: false,
        nullable: false,
      });
      expect(column('user_users', 'language')).toMatchObject({
        defaultValue: 'zh-CN',
        defaultIsExpression: false,
      });
      expect(column('user_users', 'nickname')).toMatchObject({
        defaultValue: null,
        nullable: true,
        charset: 'utf8mb4',
      });
      expect(column('user_users', 'created_at')).toMatchObject({
        defaultIsExpression: true,
        dataType: 'datetime',
      });
      expect(column('user_users', 'id')).toMatchObject({ extra: 'auto_increment', dataType: 'bigint' });
      expect(column('order_orders', 'metadata')).toMatchObject({ isJson: true });
      expect(column('order_orders', 'payable_price')).toMatchObject({
        numericPrecision: 10,
        numericScale: 2,
      });
      expect(column('pay_payments', 'paid_at')).toMatchObject({ datetimePrecision: 6, nullable: true });
      expect(column('user_users', 'email')).toMatchObject({ isJson: false, maxLength: 255 });
      const orders = schema.tables.find((t) => t.name === 'order_orders');
      expect(orders?.uniqueKeys).toEqual([
        { name: 'uk_order_bid', unique: true, columns: ['order_bid'], prefix: false },
      ]);
      expect(orders?.rowsEstimate).toBeGreaterThan(0);
      expect(orders?.dataBytes).toBeGreaterThan(0);
      const links = schema.references
        .map((r) => `${r.fromTable}.${r.fromColumn}→${r.toTable}.${r.toColumn}`)
        .sort();
      expect(links).toEqual(
        [
          'learn_generated_blocks.progress_bid→learn_progress_records.progress_bid',
          'learn_generated_blocks.user_bid→user_users.user_bid',
          'learn_progress_records.outline_bid→shifu_outlines.outline_bid',
          'learn_progress_records.shifu_bid→shifu_shifus.shifu_bid',
          'learn_progress_records.user_bid→user_users.user_bid',
          'order_orders.shifu_bid→shifu_shifus.shifu_bid',
          'order_orders.user_bid→user_users.user_bid',
          'pay_payments.order_bid→order_orders.order_bid',
          'pay_payments.user_bid→user_users.user_bid',
          'shifu_outlines.shifu_bid→shifu_shifus.shifu_bid',
          'shifu_shifus.created_user_bid→user_users.user_bid',
          'study_records.outline_bid→shifu_outlines.outline_bid',
          'study_records.shifu_bid→shifu_shifus.shifu_bid',
          'study_records.user_bid→user_users.user_bid',
          'user_auth_credentials.user_bid→user_users.user_bid',
        ].sort(),
      );
      expect(schema.references.every((r) => r.kind === 'inferred')).toBe(true);
    } finally {
      await client.close();
    }
  });
});

describe('introspection of what the demo lacks', () => {
  it('reports declared foreign keys, views and prefix indexes', async () => {
    const db = await scratchDatabase('introspect');
    const client = mysqlClient(db.name);
    try {
      await client.execute(
        'CREATE TABLE parent_things (id INT PRIMARY KEY, thing_bid VARCHAR(32) NOT NULL, title TEXT, UNIQUE KEY uk_thing (thing_bid), KEY idx_title (title(20)))',
      );
      await client.execute(
        'CREATE TABLE child_items (id INT PRIMARY KEY, parent_id INT NOT NULL, CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent_things (id))',
      );
      await client.execute('CREATE VIEW thing_titles AS SELECT thing_bid, title FROM parent_things');
      const schema = await introspect(client, db.name);
      expect(schema.views).toEqual(['thing_titles']);
      expect(schema.tables.find((t) => t.name === 'child_items')?.foreignKeys).toEqual([
        {
          name: 'fk_parent',
          columns: ['parent_id'],
          referencedTable: 'parent_things',
          referencedColumns: ['id'],
        },
      ]);
      expect(schema.references).toContainEqual({
        fromTable: 'child_items',
        fromColumn: 'parent_id',
        toTable: 'parent_things',
        toColumn: 'id',
        kind: 'declared',
        toUnique: true,
      });
      expect(schema.tables.find((t) => t.name === 'parent_things')?.indexes).toContainEqual({
        name: 'idx_title',
        unique: false,
        columns: ['title'],
        prefix: true,
      });
    } finally {
      await client.close();
      await db.drop();
    }
  });
});
