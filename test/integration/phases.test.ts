import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AssessReport } from '../../lambdas/assess/schema.ts';
import { qualified } from '../../lambdas/core/identifiers.ts';
import { ensureLedger } from '../../lambdas/core/ledger/runs.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { num, str, strOrNull } from '../../lambdas/core/sql/rows.ts';
import { demoConfig, initechPhoneUsers } from '../../local/demo/config.ts';
import { seedDemo } from '../../local/demo/seed.ts';
import { runCli } from '../support/cli.ts';
import { adminConnection, mysqlClient, mysqlUrl, scratchDatabase } from '../support/mariadb.ts';

const cwd = mkdtempSync(join(tmpdir(), 'smt-phases-'));
let source: Awaited<ReturnType<typeof scratchDatabase>>;
let server: SqlClient;
const targets: string[] = [];

function env(target: string): Record<string, string> {
  targets.push(target);
  return {
    SOURCE_DATABASE_URL: source.url.raw,
    TARGET_DATABASE_URL: mysqlUrl(target).raw,
    ARCHIVE_URL: join(cwd, 'archive'),
  };
}

const cli = (args: string[], environment: Record<string, string>, dir = cwd) =>
  runCli(args, { cwd: dir, env: environment });

/** The target's structure, apart from the ledger: tables and views, columns, indexes. */
async function snapshot(database: string): Promise<string[]> {
  const rows = await server.query(
    `SELECT CONCAT('table ', TABLE_NAME, ' ', TABLE_TYPE) AS line FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME NOT LIKE 'migration\\_%'
     UNION ALL SELECT CONCAT('column ', TABLE_NAME, '.', COLUMN_NAME, ' ', COLUMN_TYPE, ' ', IS_NULLABLE) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME NOT LIKE 'migration\\_%'
     UNION ALL SELECT CONCAT('index ', TABLE_NAME, '.', INDEX_NAME, '.', SEQ_IN_INDEX, ' ', COLUMN_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME NOT LIKE 'migration\\_%'`,
    [database, database, database],
  );
  return rows.map((r) => str(r, 'line')).sort();
}

beforeAll(async () => {
  source = await scratchDatabase('phases');
  server = mysqlClient('information_schema');
  await seedDemo({ client: server, database: source.name, users: 150, reset: false });
});

afterAll(async () => {
  for (const t of targets) await server.execute(`DROP DATABASE IF EXISTS \`${t}\``);
  await server?.close();
  await source?.drop();
});

/** The demo's user tenant rules, written again in plain JS, independent of the SQL the tasks build. */
function userTenant(email: string | null, userBid: string): string | null {
  const domains: Record<string, string> = {
    'acme.com': 'acme',
    'globex.com': 'globex',
    'initech.cn': 'initech',
  };
  if (email?.includes('@')) {
    const domain = email.trim().split('@').at(-1)?.trim().toLowerCase() ?? '';
    for (const [d, tenant] of Object.entries(domains).sort((a, b) => b[0].length - a[0].length)) {
      if (domain === d || domain.endsWith(`.${d}`)) return tenant;
    }
  }
  return initechPhoneUsers().includes(userBid) ? 'initech' : null;
}

describe('assess', () => {
  it('reads every table, writes the report, and counts tenants as the rules say', async () => {
    const run = await cli(['run', 'assess'], env(`${source.name}_a`));
    expect(run.code, run.stderr).toBe(0);
    expect(run.json).toMatchObject({ outcome: 'SUCCEEDED', ready: true, blocking: 0, tables: 10 });
    const report = run.json.report as AssessReport;
    expect(report.tables.map((t) => t.table)).toHaveLength(10);

    // user_users: e-mail domains (mixed case, subdomains, spaces) and the explicit key list; the rest default.
    const users = await server.query(
      `SELECT id, user_bid, email, updated_at FROM ${qualified(source.name, 'user_users')}`,
    );
    const expectedUsers: Record<string, number> = {};
    for (const u of users) {
      const tenant = userTenant(strOrNull(u, 'email'), str(u, 'user_bid')) ?? 'default';
      expectedUsers[tenant] = (expectedUsers[tenant] ?? 0) + 1;
    }
    const userFinding = report.tables.find((t) => t.table === 'user_users');
    expect(userFinding?.tenants).toEqual(expectedUsers);

    // order_orders: the tenant of the newest user row with that user_bid; none (quarantine) when there is none.
    const newest = new Map<string, { tenant: string; at: string; id: number }>();
    for (const u of users) {
      const bid = str(u, 'user_bid');
      const at = str(u, 'updated_at');
      const current = newest.get(bid);
      if (current === undefined || at > current.at || (at === current.at && num(u, 'id') > current.id)) {
        newest.set(bid, {
          tenant: userTenant(strOrNull(u, 'email'), bid) ?? 'default',
          at,
          id: num(u, 'id'),
        });
      }
    }
    const orders = await server.query(`SELECT user_bid FROM ${qualified(source.name, 'order_orders')}`);
    const expectedOrders: Record<string, number> = {};
    let unmapped = 0;
    for (const o of orders) {
      const tenant = newest.get(str(o, 'user_bid'))?.tenant;
      if (tenant === undefined) unmapped += 1;
      else expectedOrders[tenant] = (expectedOrders[tenant] ?? 0) + 1;
    }
    const orderFinding = report.tables.find((t) => t.table === 'order_orders');
    expect(orderFinding).toMatchObject({ tenants: expectedOrders, unmapped, onUnmapped: 'quarantine' });
    expect(unmapped).toBeGreaterThan(0);
    expect(orderFinding?.orphans.emptyReference).toBeGreaterThan(0);
    expect(orderFinding?.tenantChain).toEqual(['user_users']);
    expect(report.tables.find((t) => t.table === 'learn_generated_blocks')?.tenantChain).toEqual([
      'learn_progress_records',
      'shifu_shifus',
      'user_users',
    ]);
    expect(report.tables.find((t) => t.table === 'sys_configs')).toMatchObject({
      mode: 'global',
      tenants: {},
    });
  });

  it('exits 1 and names what blocks: a source table the config does not cover', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'smt-blocked-'));
    const config = demoConfig();
    const { sys_configs: _, ...tables } = config.tables;
    writeFileSync(join(dir, 'shifu-migrate.config.json'), JSON.stringify({ ...config, tables }));
    const run = await cli(['run', 'assess'], env(`${source.name}_b`), dir);
    expect(run.code).toBe(1);
    expect(run.json).toMatchObject({ outcome: 'SUCCEEDED', ready: false, blocking: 1 });
    expect((run.json.report as AssessReport).problems).toContainEqual(
      expect.objectContaining({ severity: 'blocking', code: 'uncovered-table', table: 'sys_configs' }),
    );
    expect(run.stderr).toMatch(
      /blocking: sys_configs \(40 rows\) is not in the config: add tables\.sys_configs/,
    );
  });
});

describe('foundation', () => {
  it('creates the target, changes nothing the second time, and rolls back to what was there before', async () => {
    const target = `${source.name}_f`;
    const environment = env(target);
    const before = await snapshot(target);
    const first = await cli(['run', 'foundation'], environment);
    expect(first.code, first.stderr).toBe(0);
    expect(first.json).toMatchObject({ outcome: 'SUCCEEDED', tables: 10, tenants: 4 });
    expect(first.json.created).toBeGreaterThan(10);
    const built = await snapshot(target);
    for (const table of ['user_users', 'order_orders', 'learn_generated_blocks']) {
      expect(built).toContain(`column ${table}.tenant_bid varchar(32) NO`);
    }
    expect(built).toContain('index order_orders.idx_tenant_order_bid.1 tenant_bid');
    expect(built).toContain('index order_orders.idx_tenant_order_bid.2 order_bid');
    expect(built).toContain('index user_users.idx_tenant_user_bid.2 user_bid');
    expect(built.some((l) => l.startsWith('column sys_configs.tenant_bid'))).toBe(false);
    const tenants = await server.query(
      `SELECT tenant_bid FROM ${qualified(target, 'tenant_tenants')} ORDER BY tenant_bid`,
    );
    expect(tenants.map((r) => str(r, 'tenant_bid'))).toEqual(['acme', 'default', 'globex', 'initech']);

    const second = await cli(['run', 'foundation'], environment);
    expect(second.json).toMatchObject({ outcome: 'SUCCEEDED', created: 0 });
    expect(await snapshot(target)).toEqual(built);

    const rollback = await cli(['rollback', '--yes', '--phase', 'foundation'], environment);
    expect(rollback.code, rollback.stderr).toBe(0);
    expect(rollback.json).toMatchObject({
      outcome: 'SUCCEEDED',
      phase: 'foundation',
      undone: first.json.created,
    });
    expect(await snapshot(target)).toEqual(before);
    const ledger = await server.query(
      'SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME',
      [target],
    );
    expect(ledger.map((r) => str(r, 't')).every((t) => t.startsWith('migration_'))).toBe(true);
    const runs = await server.query(
      `SELECT phase, status FROM ${qualified(target, 'migration_runs')} ORDER BY started_at, run_id`,
    );
    expect(runs.map((r) => `${str(r, 'phase')} ${str(r, 'status')}`)).toEqual([
      'foundation rolled_back',
      'foundation rolled_back',
      'rollback succeeded',
    ]);
  });

  it('records each object before it makes it, so a kill in between leaves nothing the rollback cannot find', async () => {
    const target = `${source.name}_order`;
    const environment = env(target);
    await server.execute(`CREATE DATABASE \`${target}\``);
    const ledger = mysqlClient(target);
    try {
      await ensureLedger(ledger);
      // What the target holds at the moment each record is written.
      await ledger.execute(
        'CREATE TABLE seen (object_type VARCHAR(20), table_name VARCHAR(64), existed INT)',
      );
      await ledger.execute(
        `CREATE TRIGGER record_order BEFORE INSERT ON migration_ddl FOR EACH ROW
         INSERT INTO seen VALUES (NEW.object_type, NEW.table_name,
           (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = NEW.table_name))`,
      );
      expect((await cli(['run', 'foundation'], environment)).code).toBe(0);
      const tables = await ledger.query("SELECT table_name, existed FROM seen WHERE object_type = 'table'");
      expect(tables.length).toBeGreaterThan(10);
      for (const t of tables) expect(t, String(t.table_name)).toMatchObject({ existed: 0 });
      // A record whose object a killed run never made (a column, an index, a table): the rollback passes over it.
      const [run] = await ledger.query("SELECT run_id FROM migration_runs WHERE phase = 'foundation'");
      for (const [type, name] of [
        ['column', 'never_added'],
        ['index', 'idx_never_built'],
      ] as const) {
        await ledger.execute(
          "INSERT INTO migration_ddl (run_id, phase, object_type, table_name, object_name, statement, created_at) VALUES (?, 'foundation', ?, 'user_users', ?, '', CURRENT_TIMESTAMP(3))",
          [str(run ?? { run_id: '' }, 'run_id'), type, name],
        );
      }
      await ledger.execute(
        "INSERT INTO migration_ddl (run_id, phase, object_type, table_name, object_name, statement, created_at) VALUES (?, 'foundation', 'table', 'never_created', 'never_created', '', CURRENT_TIMESTAMP(3))",
        [str(run ?? { run_id: '' }, 'run_id')],
      );
      const rolledBack = await cli(['rollback', '--yes', '--phase', 'foundation'], environment);
      expect(rolledBack.code, rolledBack.stderr).toBe(0);
      const left = await ledger.query(
        "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME NOT LIKE 'migration\\_%' AND TABLE_NAME <> 'seen'",
      );
      expect(left).toEqual([]);
    } finally {
      await ledger.close();
    }
  });

  it('rolls back a run that fails half-way, leaving the target as it was, and exits 1', async () => {
    const target = `${source.name}_x`;
    const environment = env(target);
    const admin = await adminConnection();
    try {
      await admin.query(`CREATE DATABASE \`${target}\``);
      // What was there before: a table with a row, and a view in the way of one migrated table.
      await admin.query(`CREATE TABLE \`${target}\`.keep_me (id INT PRIMARY KEY, note VARCHAR(10))`);
      await admin.query(`INSERT INTO \`${target}\`.keep_me VALUES (1, 'mine')`);
      await admin.query(`CREATE VIEW \`${target}\`.shifu_outlines AS SELECT 1 AS x`);
    } finally {
      await admin.end();
    }
    const before = await snapshot(target);
    const run = await cli(['run', 'foundation'], environment);
    expect(run.code).toBe(1);
    expect(run.json).toMatchObject({ outcome: 'FAILED', error: 'SchemaDrift', rolledBack: true });
    expect(String(run.json.cause)).toMatch(/target table shifu_outlines exists with other columns/);
    expect(run.stderr).toMatch(/Rolled back \(foundation-\S+\): every object this run created was removed/);
    expect(run.json).toMatchObject({ run: { status: 'rolled_back', error: { name: 'SchemaDrift' } } });
    expect(await snapshot(target)).toEqual(before);
    expect(await server.query(`SELECT id, note FROM ${qualified(target, 'keep_me')}`)).toEqual([
      { id: 1, note: 'mine' },
    ]);
    // It did fail in the middle: tables were created before the failure, and all of them were removed.
    const ddl = await server.query(
      `SELECT object_type, table_name, rolled_back_at IS NOT NULL AS undone FROM ${qualified(target, 'migration_ddl')}`,
    );
    const migrated = ddl.filter(
      (r) =>
        str(r, 'object_type') === 'table' &&
        !str(r, 'table_name').startsWith('tenant_') &&
        !str(r, 'table_name').startsWith('traffic_'),
    );
    expect(migrated.length).toBeGreaterThan(0);
    expect(ddl.every((r) => num(r, 'undone') === 1)).toBe(true);
    const [runRow] = await server.query(
      `SELECT status, error_name FROM ${qualified(target, 'migration_runs')}`,
    );
    expect(runRow).toEqual({ status: 'rolled_back', error_name: 'SchemaDrift' });
  });

  it('completes an empty target table that lacks tenant_bid with online DDL, and its rollback takes it away again', async () => {
    const target = `${source.name}_alter`;
    const environment = env(target);
    const admin = await adminConnection();
    try {
      await admin.query(`CREATE DATABASE \`${target}\``);
      await admin.query(`CREATE TABLE \`${target}\`.study_records LIKE \`${source.name}\`.study_records`);
    } finally {
      await admin.end();
    }
    const before = await snapshot(target);
    const run = await cli(['run', 'foundation'], environment);
    expect(run.code, run.stderr).toBe(0);
    const after = await snapshot(target);
    expect(after).toContain('column study_records.tenant_bid varchar(32) NO');
    expect(after).toContain('index study_records.idx_tenant_record_bid.1 tenant_bid');
    const rollback = await cli(['rollback', '--yes', '--phase', 'foundation'], environment);
    expect(rollback.code, rollback.stderr).toBe(0);
    expect(await snapshot(target)).toEqual(before);
  });
});
