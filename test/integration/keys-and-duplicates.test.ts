import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AssessReport } from '../../lambdas/assess/schema.ts';
import { qualified } from '../../lambdas/core/identifiers.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { runCli } from '../support/cli.ts';
import { mysqlClient, mysqlUrl, scratchDatabase } from '../support/mariadb.ts';

/**
 * A small source of its own: members that re-register under an existing member_bid (the key their notes point
 * at), and ids beyond 2^53 where a double would round one onto the next. Its tables are in MariaDB's default
 * collation (utf8mb4_general_ci), not the ledger's: every comparison across the two must still work.
 */
let source: Awaited<ReturnType<typeof scratchDatabase>>;
let server: SqlClient;
const targets: string[] = [];

const BEYOND = '9007199254740993'; // 2^53 + 1: as a double it is 2^53

beforeAll(async () => {
  source = await scratchDatabase('keys');
  server = mysqlClient(source.name);
  await server.execute(
    `CREATE TABLE member_members (id BIGINT UNSIGNED NOT NULL, member_bid VARCHAR(32) NOT NULL, email VARCHAR(100) NULL,
       created_at DATETIME NOT NULL, updated_at DATETIME NULL, PRIMARY KEY (id), KEY idx_member_bid (member_bid))
       DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_general_ci`,
  );
  await server.execute(
    `CREATE TABLE member_notes (id BIGINT UNSIGNED NOT NULL, note_bid VARCHAR(32) NOT NULL, member_bid VARCHAR(32) NOT NULL,
       body VARCHAR(100) NOT NULL, PRIMARY KEY (id), UNIQUE KEY uk_note_bid (note_bid), KEY idx_member_bid (member_bid))
       DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_general_ci`,
  );
  // m-dup registered at acme first (id 1), again at globex (id 2): updated_at says acme is newer, created_at globex.
  await server.execute(
    `INSERT INTO member_members VALUES
       (1, 'm-dup', 'ann@acme.com', '2026-01-01 00:00:00', '2026-03-01 00:00:00'),
       (2, 'm-dup', 'ann@globex.com', '2026-02-01 00:00:00', '2026-01-15 00:00:00'),
       (3, 'm-one', 'bob@globex.com', '2026-01-01 00:00:00', NULL),
       (9007199254740992, 'm-big', 'cy@acme.com', '2026-01-01 00:00:00', NULL)`,
  );
  await server.execute(
    `INSERT INTO member_notes VALUES
       (1, 'n1', 'm-dup', 'a note of the member registered twice'),
       (2, 'n2', 'm-one', 'a plain note'),
       (9007199254740992, 'n3', 'm-big', 'at 2^53'),
       (${BEYOND}, 'n4', 'm-gone', 'at 2^53 + 1: its member does not exist'),
       (9007199254740994, 'n5', 'm-big', 'at 2^53 + 2')`,
  );
});

afterAll(async () => {
  for (const t of targets) await server.execute(`DROP DATABASE IF EXISTS \`${t}\``);
  await server?.close();
  await source?.drop();
});

function workspace(name: string, whenNotUnique: unknown, copyPath: 'server' | 'client'): string {
  const target = `${source.name}_${name}`;
  targets.push(target);
  const dir = mkdtempSync(join(tmpdir(), 'smt-keys-'));
  writeFileSync(
    join(dir, 'shifu-migrate.config.json'),
    JSON.stringify({
      source: { url: source.url.raw },
      target: { url: mysqlUrl(target).raw },
      archive: { url: join(dir, 'archive') },
      tenants: [
        { bid: 'default', name: 'Default' },
        { bid: 'acme', name: 'Acme' },
        { bid: 'globex', name: 'Globex' },
      ],
      defaultTenant: 'default',
      tables: {
        member_members: {
          tenant: {
            by: 'emailDomain',
            column: 'email',
            domains: { 'acme.com': 'acme', 'globex.com': 'globex' },
          },
        },
        member_notes: {
          tenant: {
            by: 'reference',
            column: 'member_bid',
            references: { table: 'member_members', column: 'member_bid' },
            ...(whenNotUnique === undefined ? {} : { whenNotUnique }),
          },
          onUnmapped: 'quarantine',
        },
      },
      chunking: { rowsPerChunk: 100, maxConcurrency: 2, copyPath },
    }),
  );
  return dir;
}

const cli = (args: string[], cwd: string) => runCli(args, { cwd });

describe('which row decides, when a referenced key is not unique', () => {
  // What the documentation promises for m-dup (acme row: id 1, created first, updated last; globex row: id 2).
  const choices: [string, unknown, string][] = [
    ['default', undefined, 'acme'],
    ['newest_created', { newest: 'created_at' }, 'globex'],
    ['oldest_created', { oldest: 'created_at' }, 'acme'],
    ['newest_updated', { newest: 'updated_at' }, 'acme'],
    ['highest_key', 'highestKey', 'globex'],
    ['lowest_key', 'lowestKey', 'acme'],
  ];
  it.each(
    choices.flatMap(([name, choice, tenant]) =>
      (['server', 'client'] as const).map((path) => ({ name, choice, tenant, path })),
    ),
  )('$name on the $path path gives the note of m-dup to $tenant', async ({ name, choice, tenant, path }) => {
    const dir = workspace(`${name}_${path}`, choice, path);
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    const data = await cli(['run', 'data'], dir);
    expect(data.code, data.stderr).toBe(0);
    const target = `${source.name}_${name}_${path}`;
    const notes = await server.query(
      `SELECT CAST(id AS CHAR) AS id, tenant_bid FROM ${qualified(target, 'member_notes')} ORDER BY id`,
    );
    expect(notes).toEqual([
      { id: '1', tenant_bid: tenant },
      { id: '2', tenant_bid: 'globex' },
      { id: '9007199254740992', tenant_bid: 'acme' },
      { id: '9007199254740994', tenant_bid: 'acme' },
    ]);
    // verify judges isolation with the same choice: no difference.
    expect((await cli(['verify'], dir)).json).toMatchObject({ outcome: 'OK', differences: 0 });
  });

  it('assess warns, with the count and an example, that the choice decides a tenant', async () => {
    const dir = workspace('assess', { newest: 'created_at' }, 'client');
    const run = await cli(['run', 'assess'], dir);
    expect(run.code, run.stderr).toBe(0);
    const report = run.json.report as AssessReport;
    const warning = report.problems.find((p) => p.code === 'duplicate-key-tenants');
    expect(warning?.severity).toBe('warning');
    expect(warning?.message).toBe(
      'member_members.member_bid: 1 keys are shared by rows that map to different tenants, and member_notes take their tenant from it: the newest created_at decides, e.g. "m-dup" (2 rows: acme, globex → globex). Check the reference rule\'s whenNotUnique',
    );
  });

  it('refuses, with exit 2 and the field named, a whenNotUnique column the referenced table lacks', async () => {
    const dir = workspace('missing', { newest: 'registered_at' }, 'client');
    const run = await cli(['run', 'foundation'], dir);
    expect(run.code).toBe(2);
    expect(String(run.json.cause)).toMatch(
      /tables\.member_notes\.tenant\.whenNotUnique: member_members has no column "registered_at"/,
    );
  });
});

describe('exact keys beyond 2^53', () => {
  it('quarantines the row with id 2^53 + 1 and copies its neighbours; the data phase succeeds', async () => {
    const dir = workspace('big', undefined, 'client');
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    const data = await cli(['run', 'data'], dir);
    expect(data.code, data.stderr).toBe(0);
    expect(data.json).toMatchObject({ quarantined: 1 });
    const target = `${source.name}_big`;
    expect(
      await server.query(`SELECT row_key, table_name FROM ${qualified(target, 'migration_quarantine')}`),
    ).toEqual([{ row_key: `[${BEYOND}]`, table_name: 'member_notes' }]);
    // The chunk bounds the ledger keeps are exact too: text where a number would round.
    const bounds = await server.query(
      `SELECT key_from, key_to FROM ${qualified(target, 'migration_chunks')} WHERE table_name = 'member_notes' AND (key_from LIKE '%9007199254%' OR key_to LIKE '%9007199254%')`,
    );
    for (const b of bounds) {
      for (const text of [b.key_from, b.key_to]) {
        if (typeof text === 'string' && /900719925474/.test(text)) expect(text).toMatch(/^\["\d+"\]$/);
      }
    }
    expect((await cli(['verify'], dir)).json).toMatchObject({ outcome: 'OK', differences: 0 });
    // Again, as a second pass over a target that holds the rows: the quarantined row stays out, nothing differs.
    expect((await cli(['run', 'data'], dir)).code).toBe(0);
    expect(await server.query(`SELECT COUNT(*) AS n FROM ${qualified(target, 'member_notes')}`)).toEqual([
      { n: 4 },
    ]);
  });

  it.each([
    'server',
    'client',
  ] as const)('on the %s path, a row held in the quarantine leaves it when its parent appears, and a re-copy makes the range exact', async (path) => {
    const dir = workspace(`heal_${path}`, undefined, path);
    const target = `${source.name}_heal_${path}`;
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    expect((await cli(['run', 'data'], dir)).json).toMatchObject({ outcome: 'SUCCEEDED', quarantined: 1 });
    // The missing member registers; a note is deleted from the source. The next pass must follow both.
    await server.execute(
      "INSERT INTO member_members VALUES (4, 'm-gone', 'dee@globex.com', '2026-04-01 00:00:00', NULL)",
    );
    await server.execute('DELETE FROM member_notes WHERE id = 2');
    try {
      const again = await cli(['run', 'data'], dir);
      expect(again.code, again.stderr).toBe(0);
      expect(again.json).toMatchObject({ quarantined: 0 });
      expect(await server.query(`SELECT * FROM ${qualified(target, 'migration_quarantine')}`)).toEqual([]);
      const notes = await server.query(
        `SELECT CAST(id AS CHAR) AS id, tenant_bid FROM ${qualified(target, 'member_notes')} ORDER BY id`,
      );
      expect(notes).toEqual([
        { id: '1', tenant_bid: 'acme' },
        { id: '9007199254740992', tenant_bid: 'acme' },
        { id: BEYOND, tenant_bid: 'globex' },
        { id: '9007199254740994', tenant_bid: 'acme' },
      ]);
      expect((await cli(['verify'], dir)).json).toMatchObject({ outcome: 'OK', differences: 0 });
    } finally {
      await server.execute("DELETE FROM member_members WHERE member_bid = 'm-gone'");
      await server.execute("INSERT INTO member_notes VALUES (2, 'n2', 'm-one', 'a plain note')");
    }
  });
});

describe('a source table whose name cannot be migrated', () => {
  it('blocks assess with the way out, can be excluded by its name, and then nothing stands in the way', async () => {
    await server.execute('CREATE TABLE `audit-log` (id INT PRIMARY KEY, `what happened` VARCHAR(20))');
    try {
      const dir = workspace('oddname', undefined, 'client');
      const blocked = await cli(['run', 'assess'], dir);
      expect(blocked.code).toBe(1);
      const report = blocked.json.report as AssessReport;
      expect(report.problems.find((p) => p.code === 'uncovered-table')?.message).toMatch(
        /"audit-log" .* its name cannot be migrated .*add "tables": \{ "audit-log": \{ "exclude": "<reason>" \} \}, or rename it on the source/,
      );
      // Migrating it is refused with the field named; excluding it is accepted.
      const file = join(dir, 'shifu-migrate.config.json');
      const config = JSON.parse(readFileSync(file, 'utf8')) as { tables: Record<string, unknown> };
      config.tables['audit-log'] = { global: true };
      writeFileSync(file, JSON.stringify(config));
      const refused = await cli(['run', 'assess'], dir);
      expect(refused.code).toBe(2);
      expect(String(refused.json.message)).toMatch(
        /tables\.audit-log: "audit-log" is not a table name .*exclude it/,
      );
      config.tables['audit-log'] = { exclude: 'an audit trail the SaaS side does not need' };
      writeFileSync(file, JSON.stringify(config));
      const ready = await cli(['run', 'assess'], dir);
      expect(ready.code, ready.stderr).toBe(0);
      expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    } finally {
      await server.execute('DROP TABLE `audit-log`');
    }
  });
});

describe('a source table keyed by binary values', () => {
  it('blocks assess, saying why and what to do, instead of failing the data phase', async () => {
    await server.execute(
      'CREATE TABLE device_tokens (token VARBINARY(16) NOT NULL PRIMARY KEY, note VARCHAR(20))',
    );
    try {
      const dir = workspace('binkey', undefined, 'client');
      const file = join(dir, 'shifu-migrate.config.json');
      const config = JSON.parse(readFileSync(file, 'utf8')) as { tables: Record<string, unknown> };
      config.tables.device_tokens = { global: true };
      writeFileSync(file, JSON.stringify(config));
      const blocked = await cli(['run', 'assess'], dir);
      expect(blocked.code).toBe(1);
      const report = blocked.json.report as AssessReport;
      expect(report.problems.find((p) => p.code === 'binary-chunk-key')).toMatchObject({
        severity: 'blocking',
        table: 'device_tokens',
        message: expect.stringMatching(/key \(token\) has binary columns: .*or exclude it/),
      });
    } finally {
      await server.execute('DROP TABLE device_tokens');
    }
  });
});
