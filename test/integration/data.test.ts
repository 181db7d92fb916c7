import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qualified } from '../../lambdas/core/identifiers.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { num, scalarNumber, str } from '../../lambdas/core/sql/rows.ts';
import { demoConfig } from '../../local/demo/config.ts';
import { DEMO_TABLES } from '../../local/demo/schema.ts';
import { seedDemo } from '../../local/demo/seed.ts';
import { runCli } from '../support/cli.ts';
import { adminConnection, mysqlClient, mysqlUrl, scratchDatabase } from '../support/mariadb.ts';

const root = join(import.meta.dirname, '..', '..');
const TABLES = DEMO_TABLES.map((t) => t.name);
let source: Awaited<ReturnType<typeof scratchDatabase>>;
let server: SqlClient;
const targets: string[] = [];

/** A working folder with a config file: the demo rules, small chunks, this test's databases. */
function workspace(target: string, chunking: Record<string, unknown> = {}): string {
  targets.push(target);
  const dir = mkdtempSync(join(tmpdir(), 'smt-data-'));
  const config = demoConfig();
  writeFileSync(
    join(dir, 'shifu-migrate.config.json'),
    JSON.stringify({
      ...config,
      source: { url: source.url.raw },
      target: { url: mysqlUrl(target).raw },
      archive: { url: join(dir, 'archive') },
      chunking: {
        rowsPerChunk: 500,
        maxConcurrency: 3,
        copyPath: 'server',
        recheckDelaySeconds: 0.5,
        ...chunking,
      },
    }),
  );
  return dir;
}

const cli = (args: string[], cwd: string) => runCli(args, { cwd });

const count = async (database: string, table: string) =>
  scalarNumber(await server.query(`SELECT COUNT(*) AS n FROM ${qualified(database, table)}`));

/** Every index of the migrated tables, column by column: what the copy defers must come back exactly. */
async function indexes(database: string): Promise<string[]> {
  const rows = await server.query(
    `SELECT CONCAT(TABLE_NAME, '.', INDEX_NAME, '.', SEQ_IN_INDEX, ' ', COLUMN_NAME, ' ', NON_UNIQUE, ' ', COALESCE(SUB_PART, '')) AS line
       FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME NOT LIKE 'migration\\_%'`,
    [database],
  );
  return rows.map((r) => str(r, 'line')).sort();
}

async function checksums(database: string): Promise<Record<string, string>> {
  const rows = await server.query(
    `CHECKSUM TABLE ${TABLES.map((t) => qualified(database, t)).join(', ')} EXTENDED`,
  );
  return Object.fromEntries(rows.map((r) => [str(r, 'Table').split('.')[1] ?? '', str(r, 'Checksum')]));
}

beforeAll(async () => {
  source = await scratchDatabase('data');
  server = mysqlClient('information_schema');
  await seedDemo({ client: server, database: source.name, users: 300, reset: false });
});

afterAll(async () => {
  for (const t of targets) await server.execute(`DROP DATABASE IF EXISTS \`${t}\``);
  await server?.close();
  await source?.drop();
});

describe('data phase', () => {
  let serverSide: string;

  it('copies every table, validates every chunk and tenant isolation, and verify finds no difference', async () => {
    serverSide = `${source.name}_srv`;
    const dir = workspace(serverSide);
    const sourceBefore = await checksums(source.name);
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    const foundationIndexes = await indexes(serverSide);
    const run = await cli(['run', 'data'], dir);
    expect(run.code, run.stderr).toBe(0);
    expect(run.json).toMatchObject({ outcome: 'SUCCEEDED', tables: 10 });
    // Secondary indexes were dropped for the bulk copy and built again afterwards, the same as foundation made them.
    expect(await indexes(serverSide)).toEqual(foundationIndexes);
    const deferred = await server.query(
      `SELECT COUNT(*) AS n, COUNT(rebuilt_at) AS rebuilt FROM ${qualified(serverSide, 'migration_deferred_indexes')}`,
    );
    expect(num(deferred[0] ?? {}, 'n')).toBeGreaterThan(10);
    expect(num(deferred[0] ?? {}, 'rebuilt')).toBe(num(deferred[0] ?? {}, 'n'));
    // Tenant isolation was checked range by range along the chunks (no statement over a whole table), every range.
    const unchecked = await server.query(
      `SELECT table_name, COUNT(*) AS n FROM ${qualified(serverSide, 'migration_chunks')} WHERE isolated_at IS NULL GROUP BY table_name`,
    );
    expect(unchecked.map((r) => r.table_name)).toEqual(['sys_configs']);
    let sourceRows = 0;
    for (const t of TABLES) sourceRows += await count(source.name, t);
    expect(Number(run.json.rows) + Number(run.json.quarantined)).toBe(sourceRows);
    expect(Number(run.json.quarantined)).toBeGreaterThan(0);
    expect(Number(run.json.chunks)).toBeGreaterThan(TABLES.length);

    const chunks = await server.query(
      `SELECT status, COUNT(*) AS n FROM ${qualified(serverSide, 'migration_chunks')} GROUP BY status`,
    );
    expect(chunks.map((r) => str(r, 'status'))).toEqual(['validated']);
    const verify = await cli(['verify'], dir);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.json).toMatchObject({ outcome: 'OK', differences: 0 });
    const tables = verify.json.tables as { table: string; checksum: { equal: boolean } }[];
    expect(tables.map((t) => t.table).sort()).toEqual([...TABLES].sort());
    expect(tables.every((t) => t.checksum.equal)).toBe(true);
    // The source is only read.
    expect(await checksums(source.name)).toEqual(sourceBefore);
  });

  it('copies through the client exactly what the server-side copy wrote, quarantine included', async () => {
    const clientSide = `${source.name}_cli`;
    const dir = workspace(clientSide, { copyPath: 'client', maxConcurrency: 2 });
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    const run = await cli(['run', 'data'], dir);
    expect(run.code, run.stderr).toBe(0);
    expect(await checksums(clientSide)).toEqual(await checksums(serverSide));
    const quarantine = async (db: string) =>
      (
        await server.query(
          `SELECT table_name, row_key, reason FROM ${qualified(db, 'migration_quarantine')} ORDER BY table_name, row_key`,
        )
      ).map((r) => `${str(r, 'table_name')} ${str(r, 'row_key')} ${str(r, 'reason')}`);
    const held = await quarantine(clientSide);
    expect(held.length).toBeGreaterThan(0);
    expect(held).toEqual(await quarantine(serverSide));
    expect(
      held.some((line) =>
        /order_orders \[\d+\] no tenant rule maps the row: user_bid (is empty|"[0-9a-f]{32}" has no row in user_users on the target)/.test(
          line,
        ),
      ),
    ).toBe(true);
  });

  it('runs again without duplicating a row, and verify catches a changed row and a wrong tenant', async () => {
    const dir = workspace(`${source.name}_srv`);
    const again = await cli(['run', 'data'], dir);
    expect(again.code, again.stderr).toBe(0);
    expect((await cli(['verify'], dir)).json).toMatchObject({ differences: 0 });

    await server.execute(
      `UPDATE ${qualified(serverSide, 'order_orders')} SET paid_price = paid_price + 1 ORDER BY id LIMIT 1`,
    );
    await server.execute(
      `UPDATE ${qualified(serverSide, 'study_records')} SET tenant_bid = IF(tenant_bid = 'acme', 'globex', 'acme') ORDER BY id LIMIT 1`,
    );
    const verify = await cli(['verify'], dir);
    expect(verify.code).toBe(1);
    const byTable = Object.fromEntries(
      (
        verify.json.tables as {
          table: string;
          checksum: { equal: boolean };
          isolation: { ruleMismatch: number } | null;
        }[]
      ).map((t) => [t.table, t]),
    );
    expect(byTable.order_orders?.checksum.equal).toBe(false);
    expect(byTable.study_records?.isolation?.ruleMismatch).toBe(1);
  });

  it('rolls the phase back when a chunk fails: target tables empty again, source untouched, exit 1', async () => {
    const target = `${source.name}_fail`;
    const dir = workspace(target);
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    const middle = scalarNumber(
      await server.query(
        `SELECT id FROM ${qualified(source.name, 'study_records')} ORDER BY id LIMIT 1 OFFSET 1500`,
      ),
    );
    const admin = await adminConnection(target);
    try {
      await admin.query(
        `CREATE TRIGGER refuse_one BEFORE INSERT ON study_records FOR EACH ROW
           IF NEW.id = ${Number(middle)} THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'disk full (injected)'; END IF`,
      );
    } finally {
      await admin.end();
    }
    const sourceBefore = await checksums(source.name);
    const foundationIndexes = await indexes(target);
    const run = await cli(['run', 'data'], dir);
    expect(run.code).toBe(1);
    expect(run.json).toMatchObject({ outcome: 'FAILED', error: 'DatabaseError', rolledBack: true });
    expect(String(run.json.cause)).toMatch(/disk full \(injected\)/);
    for (const t of TABLES) expect(await count(target, t), t).toBe(0);
    expect(await count(target, 'migration_quarantine')).toBe(0);
    expect(await indexes(target)).toEqual(foundationIndexes);
    expect(await checksums(source.name)).toEqual(sourceBefore);
    const [runRow] = await server.query(
      `SELECT status, error_name FROM ${qualified(target, 'migration_runs')} WHERE phase = 'data'`,
    );
    expect(runRow).toEqual({ status: 'rolled_back', error_name: 'DatabaseError' });
  });

  it('fails and rolls back when a copied row ends up with another tenant than its rules give', async () => {
    const target = `${source.name}_isolation`;
    const dir = workspace(target);
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    const [first] = await server.query(
      `SELECT id FROM ${qualified(source.name, 'learn_generated_blocks')} ORDER BY id LIMIT 1`,
    );
    const admin = await adminConnection(target);
    try {
      // The checksum leaves tenant_bid out, so only the isolation check can see this row in the wrong tenant.
      await admin.query(
        `CREATE TRIGGER wrong_tenant BEFORE INSERT ON learn_generated_blocks FOR EACH ROW
           IF NEW.id = ${Number(first?.id)} THEN SET NEW.tenant_bid = IF(NEW.tenant_bid = 'acme', 'globex', 'acme'); END IF`,
      );
    } finally {
      await admin.end();
    }
    const run = await cli(['run', 'data'], dir);
    expect(run.code).toBe(1);
    expect(run.json).toMatchObject({
      outcome: 'FAILED',
      error: 'TenantIsolationViolation',
      rolledBack: true,
    });
    expect(String(run.json.cause)).toMatch(
      /learn_generated_blocks chunks 0–\d+ \(0 unknown tenant, 1 not as the rules give, 1 not their parent's\)/,
    );
    for (const t of TABLES) expect(await count(target, t), t).toBe(0);
  });

  it('copies a chunk that differs once again, and fails naming the table and range when it still differs', async () => {
    const target = `${source.name}_tamper`;
    const dir = workspace(target);
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    const victim = scalarNumber(
      await server.query(
        `SELECT id FROM ${qualified(source.name, 'study_records')} WHERE score IS NOT NULL ORDER BY id LIMIT 1 OFFSET 700`,
      ),
    );
    const admin = await adminConnection(target);
    try {
      // The first write of one row is corrupted (as a flaky disk or a bad proxy might); later writes are not.
      await admin.query('CREATE TABLE tamper_count (n INT NOT NULL)');
      await admin.query('INSERT INTO tamper_count VALUES (0)');
      await admin.query(
        `CREATE TRIGGER tamper_once BEFORE INSERT ON study_records FOR EACH ROW
           IF NEW.id = ${victim} THEN
             UPDATE tamper_count SET n = n + 1;
             IF (SELECT n FROM tamper_count) = 1 THEN SET NEW.score = 0.01; END IF;
           END IF`,
      );
    } finally {
      await admin.end();
    }
    const healed = await cli(['run', 'data'], dir);
    expect(healed.code, healed.stderr).toBe(0);
    const recopied = await server.query(
      `SELECT attempts FROM ${qualified(target, 'migration_chunks')} WHERE table_name = 'study_records' AND attempts > 1`,
    );
    expect(recopied.map((r) => num(r, 'attempts'))).toEqual([2]);
    expect((await cli(['verify'], dir)).json).toMatchObject({ differences: 0 });

    // Now every write of that row is corrupted: one re-copy cannot fix it, the phase fails and rolls back.
    const admin2 = await adminConnection(target);
    try {
      await admin2.query('DROP TRIGGER tamper_once');
      await admin2.query(
        `CREATE TRIGGER tamper_always BEFORE INSERT ON study_records FOR EACH ROW IF NEW.id = ${victim} THEN SET NEW.score = 0.01; END IF`,
      );
      await admin2.query(
        `CREATE TRIGGER tamper_always_update BEFORE UPDATE ON study_records FOR EACH ROW IF NEW.id = ${victim} THEN SET NEW.score = 0.01; END IF`,
      );
    } finally {
      await admin2.end();
    }
    expect((await cli(['rollback', '--yes', '--phase', 'data'], dir)).code).toBe(0);
    const failed = await cli(['run', 'data'], dir);
    expect(failed.code).toBe(1);
    expect(failed.json).toMatchObject({
      outcome: 'FAILED',
      error: 'ChunkChecksumMismatch',
      rolledBack: true,
    });
    expect(String(failed.json.cause)).toMatch(
      new RegExp(
        `^study_records chunk \\d+ \\(key after (null|\\[\\d+\\]) up to (null|\\[\\d+\\])\\): 1 rows of the target do not hold what was just written to them \\(keys \\[${victim}\\]\\), after two exact re-copies 0.5 s apart`,
      ),
    );
    for (const t of TABLES) expect(await count(target, t), t).toBe(0);
  });

  it('rollback --phase data empties the tables; foundation refuses to drop tables that hold data until then', async () => {
    const target = `${source.name}_rb`;
    const dir = workspace(target);
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    expect((await cli(['run', 'data'], dir)).code).toBe(0);
    const refused = await cli(['rollback', '--yes', '--phase', 'foundation'], dir);
    expect(refused.code).toBe(1);
    expect(refused.json).toMatchObject({ outcome: 'FAILED', error: 'TableHoldsData' });
    expect(String(refused.json.cause)).toMatch(/roll back the data phase first/);
    const data = await cli(['rollback', '--yes', '--phase', 'data'], dir);
    expect(data.code, data.stderr).toBe(0);
    for (const t of TABLES) expect(await count(target, t), t).toBe(0);
    expect((await cli(['rollback', '--yes', '--phase', 'foundation'], dir)).code).toBe(0);
  });

  it('resumes from the chunk ledger after the process is killed mid-copy, ending with the source rows exactly', async () => {
    const target = `${source.name}_kill`;
    const dir = workspace(target, { copyPath: 'client', rowsPerChunk: 100, maxConcurrency: 1 });
    expect((await cli(['run', 'foundation'], dir)).code).toBe(0);
    const child = spawn(
      join(root, 'node_modules', '.bin', 'node'),
      [join(root, 'bin', 'shifu-migrate.mjs'), 'run', 'data'],
      {
        cwd: dir,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
        stdio: 'ignore',
      },
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const copied = async () =>
      scalarNumber(
        await server
          .query(
            `SELECT COUNT(*) AS n FROM ${qualified(target, 'migration_chunks')} WHERE status IN ('copied', 'validated')`,
          )
          .catch(() => [{ n: 0 }]),
      );
    const deadline = Date.now() + 60_000;
    while ((await copied()) < 10 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    child.kill('SIGKILL');
    await exited;
    const [killed] = await server.query(
      `SELECT run_id, status FROM ${qualified(target, 'migration_runs')} WHERE phase = 'data'`,
    );
    expect(killed?.status, 'the run was killed before it finished').toBe('running');
    // Chunks are planned table by table as the run goes: what was left is what the resumed run still had to copy.
    const copiedAtKill = await copied();
    const resumed = await cli(['run', 'data'], dir);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.json.runId).toBe(killed?.run_id);
    expect(Number(resumed.json.chunks)).toBeGreaterThan(copiedAtKill);
    const verify = await cli(['verify'], dir);
    expect(verify.json).toMatchObject({ outcome: 'OK', differences: 0 });
    for (const t of TABLES) {
      const held = scalarNumber(
        await server.query(
          `SELECT COUNT(*) AS n FROM ${qualified(target, 'migration_quarantine')} WHERE table_name = ?`,
          [t],
        ),
      );
      expect((await count(target, t)) + held, t).toBe(await count(source.name, t));
    }
  });
});
