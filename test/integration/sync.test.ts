import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lambdas/core/config/load.ts';
import { qualified } from '../../lambdas/core/identifiers.ts';
import { acquireLock, releaseLock } from '../../lambdas/core/ledger/lock.ts';
import { fenceRun } from '../../lambdas/core/ledger/phase-run.ts';
import { startRun } from '../../lambdas/core/ledger/runs.ts';
import type { SyncSchedule } from '../../lambdas/core/schedule.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { num, scalarNumber, str, strOrNull } from '../../lambdas/core/sql/rows.ts';
import { demoConfig } from '../../local/demo/config.ts';
import { DEMO_TABLES } from '../../local/demo/schema.ts';
import { seedDemo } from '../../local/demo/seed.ts';
import { runPhase } from '../../local/run-phase.ts';
import { runCli } from '../support/cli.ts';
import { mysqlClient, mysqlUrl, scratchDatabase } from '../support/mariadb.ts';

const root = join(import.meta.dirname, '..', '..');
const TABLES = DEMO_TABLES.map((t) => t.name);
let source: Awaited<ReturnType<typeof scratchDatabase>>;
let server: SqlClient;
const targets: string[] = [];

/** A working folder with a config file: the demo rules, small chunks (several per table), this test's databases. */
function workspace(
  target: string,
  sync: Record<string, unknown> = {},
  tables: Record<string, unknown> = {},
): string {
  targets.push(target);
  const dir = mkdtempSync(join(tmpdir(), 'smt-sync-'));
  const demo = demoConfig();
  const config = { ...demo, tables: { ...demo.tables, ...tables } };
  writeFileSync(
    join(dir, 'shifu-migrate.config.json'),
    JSON.stringify({
      ...config,
      source: { url: source.url.raw },
      target: { url: mysqlUrl(target).raw },
      archive: { url: join(dir, 'archive') },
      chunking: { rowsPerChunk: 300, maxConcurrency: 2, copyPath: 'client', recheckDelaySeconds: 0.2 },
      sync: { overlapSeconds: 5, ...sync },
    }),
  );
  return dir;
}

const cli = (args: string[], cwd: string) => runCli(args, { cwd });

/**
 * Each table's rows, source against target, compared in SQL by every source column (tenant_bid left out): the
 * keys that differ, rows on one side only included. `except` leaves keys out (rows in an open conflict).
 */
async function differences(target: string, except: Record<string, string[]> = {}): Promise<string[]> {
  const found: string[] = [];
  for (const table of TABLES) {
    const columns = (
      await server.query(
        'SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION',
        [source.name, table],
      )
    ).map((r) => str(r, 'c'));
    const hash = (alias: string) =>
      `MD5(CONCAT_WS('|', ${columns.map((c) => `COALESCE(HEX(${alias}.\`${c}\`), 'NULL')`).join(', ')}))`;
    const rows = await server.query(
      `SELECT s.id FROM ${qualified(source.name, table)} s LEFT JOIN ${qualified(target, table)} t ON t.id = s.id
        WHERE t.id IS NULL OR ${hash('s')} <> ${hash('t')}
       UNION ALL
       SELECT t.id FROM ${qualified(target, table)} t LEFT JOIN ${qualified(source.name, table)} s ON s.id = t.id WHERE s.id IS NULL`,
    );
    for (const r of rows) {
      const key = `[${str(r, 'id')}]`;
      if (!(except[table] ?? []).includes(key)) found.push(`${table} ${key}`);
    }
  }
  return found;
}

async function quarantined(target: string): Promise<Record<string, string[]>> {
  const rows = await server.query(
    `SELECT table_name, row_key FROM ${qualified(target, 'migration_quarantine')}`,
  );
  const by: Record<string, string[]> = {};
  for (const r of rows) {
    const table = str(r, 'table_name');
    by[table] = [...(by[table] ?? []), str(r, 'row_key')];
  }
  return by;
}

async function openConflicts(target: string) {
  return server.query(
    `SELECT table_name, row_key, target_tenant, source_tenant FROM ${qualified(target, 'migration_sync_conflicts')} WHERE resolved_at IS NULL ORDER BY table_name, row_key`,
  );
}

const src = (table: string) => qualified(source.name, table);

/** Keys sync leaves out on purpose, per table: quarantined rows and rows in an open tenant conflict. */
async function leftOut(target: string): Promise<Record<string, string[]>> {
  const left = await quarantined(target);
  for (const c of await openConflicts(target)) {
    const t = str(c, 'table_name');
    left[t] = [...(left[t] ?? []), str(c, 'row_key')];
  }
  return left;
}

beforeAll(async () => {
  source = await scratchDatabase('sync');
  server = mysqlClient('information_schema');
  await seedDemo({ client: server, database: source.name, users: 200, reset: false });
});

afterAll(async () => {
  for (const t of targets) await server.execute(`DROP DATABASE IF EXISTS \`${t}\``);
  await server?.close();
  await source?.drop();
});

describe('sync phase', () => {
  const target = `${'smt_sync_t'}_${process.pid}`;
  let dir: string;

  beforeAll(async () => {
    dir = workspace(target);
  });

  it('refuses before data has copied: nothing to follow, nothing written', async () => {
    const foundation = await cli(['run', 'foundation'], dir);
    expect(foundation.code).toBe(0);
    const early = await cli(['run', 'sync'], dir);
    expect(early.code).toBe(1);
    expect(early.json.error).toBe('SyncNotReady');
    expect(early.stderr).toContain('run data first');
    expect((await cli(['run', 'data'], dir)).code).toBe(0);
  }, 120_000);

  it('brings inserts, updates, hard deletes and changes made behind the change column into the target', async () => {
    // An insert, an update (updated_at moves), a hard delete, and an update that sets updated_at back to what it
    // was (the change column does not see it: reconciliation must).
    const [user] = await server.query(
      `SELECT id, user_bid FROM ${src('user_users')} WHERE email LIKE '%@acme.com' LIMIT 1`,
    );
    const userBid = str(user ?? {}, 'user_bid');
    await server.execute(
      `INSERT INTO ${src('order_orders')} (order_bid, user_bid, shifu_bid, payable_price, paid_price, status) SELECT 'sync-order-1', ?, shifu_bid, 12.30, 0, 0 FROM ${src('shifu_shifus')} LIMIT 1`,
      [userBid],
    );
    await server.execute(`UPDATE ${src('user_users')} SET nickname = 'synced' WHERE id = ?`, [
      num(user ?? {}, 'id'),
    ]);
    const [gone] = await server.query(`SELECT id FROM ${src('study_records')} ORDER BY id DESC LIMIT 1`);
    await server.execute(`DELETE FROM ${src('study_records')} WHERE id = ?`, [num(gone ?? {}, 'id')]);
    const [quiet] = await server.query(
      `SELECT id, updated_at FROM ${src('learn_progress_records')} ORDER BY id LIMIT 1`,
    );
    await server.execute(
      `UPDATE ${src('learn_progress_records')} SET progress_pct = 77, updated_at = ? WHERE id = ?`,
      [str(quiet ?? {}, 'updated_at'), num(quiet ?? {}, 'id')],
    );
    expect((await differences(target)).length).toBeGreaterThanOrEqual(4);

    const pass = await cli(['run', 'sync'], dir);
    expect(pass.code, pass.stderr).toBe(0);
    expect(pass.json.rowsApplied).toBeGreaterThanOrEqual(3);
    expect(pass.json.rowsDeleted).toBe(1);
    expect(pass.json.chunksRepaired).toBeGreaterThanOrEqual(2);
    const held = await quarantined(target);
    expect(await differences(target, held)).toEqual([]);
    const [order] = await server.query(
      `SELECT tenant_bid FROM ${qualified(target, 'order_orders')} WHERE order_bid = 'sync-order-1'`,
    );
    expect(str(order ?? {}, 'tenant_bid')).toBe('acme');

    const verify = await cli(['verify'], dir);
    expect(verify.code, verify.stderr).toBe(0);

    // A second pass has nothing to do, and says how far behind each table is.
    const again = await cli(['run', 'sync'], dir);
    expect(again.code).toBe(0);
    expect(again.json.rowsApplied).toBe(0);
    expect(again.json.rowsDeleted).toBe(0);
    const tables = again.json.tables as {
      table: string;
      lagSeconds: number | null;
      changeColumn: string | null;
    }[];
    expect(tables.map((t) => t.table).sort()).toEqual([...TABLES].sort());
    for (const t of tables) {
      expect(t.changeColumn).toBe('updated_at');
      expect(t.lagSeconds).not.toBeNull();
    }
    const status = await cli(['status'], dir);
    const sync = status.json.sync as {
      tables: { table: string; lagSeconds: number }[];
      openConflicts: number;
    };
    expect(sync.tables).toHaveLength(TABLES.length);
  }, 180_000);

  it('records a row whose tenant would change as a conflict, leaves it as the target has it, and settles it once the source agrees', async () => {
    const [user] = await server.query(
      `SELECT id, user_bid, email FROM ${src('user_users')} WHERE email LIKE '%@globex.com' AND deleted = 0 LIMIT 1`,
    );
    const id = num(user ?? {}, 'id');
    const email = str(user ?? {}, 'email');
    await server.execute(`UPDATE ${src('user_users')} SET email = ? WHERE id = ?`, [
      `moved${id}@acme.com`,
      id,
    ]);
    // A re-registration under the same user_bid with another tenant's domain: it would move the user's rows.
    await server.execute(
      `INSERT INTO ${src('user_users')} (user_bid, username, email, user_state) SELECT user_bid, 'again', 'again@initech.cn', 1 FROM ${src('user_users')} WHERE id = ?`,
      [id],
    );
    const [again] = await server.query(`SELECT MAX(id) AS id FROM ${src('user_users')}`);
    const pass = await cli(['run', 'sync'], dir);
    expect(pass.code, pass.stderr).toBe(0);
    expect(pass.json.openConflicts).toBe(2);
    expect(await openConflicts(target)).toEqual(
      [
        { table_name: 'user_users', row_key: `[${id}]`, target_tenant: 'globex', source_tenant: 'acme' },
        {
          table_name: 'user_users',
          row_key: `[${num(again ?? {}, 'id')}]`,
          target_tenant: 'globex',
          source_tenant: 'initech',
        },
      ].sort((a, b) => a.row_key.localeCompare(b.row_key)),
    );
    const [kept] = await server.query(
      `SELECT email, tenant_bid FROM ${qualified(target, 'user_users')} WHERE id = ?`,
      [id],
    );
    expect(kept).toEqual({ email, tenant_bid: 'globex' });
    // Reported, compared on neither side.
    const verify = await cli(['verify'], dir);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stderr).toContain('2 rows are in an open tenant conflict');
    const status = await cli(['status'], dir);
    expect((status.json.sync as { openConflicts: number }).openConflicts).toBe(2);

    // The application puts the e-mail back and removes the duplicate: the next pass settles both.
    await server.execute(`UPDATE ${src('user_users')} SET email = ? WHERE id = ?`, [email, id]);
    await server.execute(`DELETE FROM ${src('user_users')} WHERE id = ?`, [num(again ?? {}, 'id')]);
    const settle = await cli(['run', 'sync'], dir);
    expect(settle.code).toBe(0);
    expect(settle.json.openConflicts).toBe(0);
    expect(await openConflicts(target)).toEqual([]);
    expect(await differences(target, await quarantined(target))).toEqual([]);
  }, 180_000);

  it('records rows that took the default tenant before their parent existed, once it arrives (not moved silently)', async () => {
    await server.execute(
      `INSERT INTO ${src('user_auth_credentials')} (credential_bid, user_bid, provider, identifier, raw_profile) VALUES ('orphan-cred', 'orphan-user', 'email', 'x', '{}')`,
    );
    const first = await cli(['run', 'sync'], dir);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).not.toContain('Resuming');
    const [orphan] = await server.query(
      `SELECT id, tenant_bid FROM ${qualified(target, 'user_auth_credentials')} WHERE credential_bid = 'orphan-cred'`,
    );
    expect(str(orphan ?? {}, 'tenant_bid')).toBe('default');
    await server.execute(
      `INSERT INTO ${src('user_users')} (user_bid, username, email) VALUES ('orphan-user', 'late', 'late@acme.com')`,
    );
    const second = await cli(['run', 'sync'], dir);
    expect(second.code, second.stderr).toBe(0);
    expect(await openConflicts(target)).toContainEqual({
      table_name: 'user_auth_credentials',
      row_key: `[${num(orphan ?? {}, 'id')}]`,
      target_tenant: 'default',
      source_tenant: 'acme',
    });
    // Both gone from the source: nothing left to decide.
    await server.execute(`DELETE FROM ${src('user_auth_credentials')} WHERE credential_bid = 'orphan-cred'`);
    await server.execute(`DELETE FROM ${src('user_users')} WHERE user_bid = 'orphan-user'`);
    expect((await cli(['run', 'sync'], dir)).code).toBe(0);
    expect(await openConflicts(target)).toEqual([]);
  }, 180_000);

  it('fails the pass on a tenant change with onTenantChange fail: the run failed, the lock free, the next pass runs', async () => {
    const strict = workspace(target, { onTenantChange: 'fail' });
    const [user] = await server.query(
      `SELECT id, email FROM ${src('user_users')} WHERE email LIKE '%@acme.com' AND deleted = 0 ORDER BY id DESC LIMIT 1`,
    );
    const id = num(user ?? {}, 'id');
    await server.execute(`UPDATE ${src('user_users')} SET email = ? WHERE id = ?`, [`x${id}@globex.com`, id]);
    const failed = await cli(['run', 'sync'], strict);
    expect(failed.code).toBe(1);
    expect(failed.json.error).toBe('TenantChangeConflict');
    expect(failed.stderr).toContain(`user_users row [${id}] belongs to tenant acme`);
    expect(failed.stderr).toContain('Nothing to undo');
    const [run] = await server.query(
      `SELECT status FROM ${qualified(target, 'migration_runs')} WHERE phase = 'sync' ORDER BY started_at DESC, run_id DESC LIMIT 1`,
    );
    expect(str(run ?? {}, 'status')).toBe('failed');
    expect(await server.query(`SELECT * FROM ${qualified(target, 'migration_lock')}`)).toEqual([]);
    const [still] = await server.query(
      `SELECT tenant_bid FROM ${qualified(target, 'user_users')} WHERE id = ?`,
      [id],
    );
    expect(str(still ?? {}, 'tenant_bid')).toBe('acme');
    await server.execute(`UPDATE ${src('user_users')} SET email = ? WHERE id = ?`, [
      str(user ?? {}, 'email'),
      id,
    ]);
    expect((await cli(['run', 'sync'], dir)).code).toBe(0);
  }, 180_000);

  it('never overlaps a pass that holds the run lock, and rollback --phase sync says it is not needed', async () => {
    const target_ = mysqlClient(target);
    try {
      const owner = 'arn:aws:states:us-east-1:000000000000:execution:sync:scheduled-1';
      await acquireLock(target_, {
        runId: 'sync-20261201T000000Z-abcdef',
        phase: 'sync',
        kind: 'run',
        owner,
      });
      const refused = await cli(['run', 'sync'], dir);
      expect(refused.code).toBe(1);
      expect(refused.json.error).toBe('RunLocked');
      await releaseLock(target_, owner);
    } finally {
      await target_.close();
    }
    // An alarm (a rollback with nothing of a phase to undo) stops a pass in flight: it ends, the lock is free.
    const again = mysqlClient(target);
    try {
      const owner = 'arn:aws:states:us-east-1:000000000000:execution:sync:scheduled-3';
      const runId = 'sync-20261201T000002Z-abcdef';
      await startRun(again, 'sync', runId, owner);
      await acquireLock(again, { runId, phase: 'sync', kind: 'run', owner });
      const alarm = await cli(['alarm', 'raise', 'sync-test', '--reason', 'test'], dir);
      expect(alarm.code, alarm.stderr).toBe(0);
      expect(alarm.stderr).toContain(`Stopped the sync pass in flight (${runId})`);
      expect(
        await again.query('SELECT status, error_name FROM migration_runs WHERE run_id = ?', [runId]),
      ).toEqual([{ status: 'failed', error_name: 'RunStopped' }]);
      expect(await again.query('SELECT * FROM migration_lock')).toEqual([]);
      expect((await cli(['alarm', 'clear', 'sync-test'], dir)).code).toBe(0);
    } finally {
      await again.close();
    }
    const rollback = await cli(['rollback', '--phase', 'sync'], dir);
    expect(rollback.code).toBe(0);
    expect(rollback.json.outcome).toBe('NOT_NEEDED');
    expect(rollback.stderr).toContain('rollback --phase sync is not needed');
  }, 120_000);

  it('a rollback stops a pass in flight: its repairs already begun commit first, none starts after', async () => {
    const ledger = mysqlClient(target);
    try {
      const owner = 'arn:aws:states:us-east-1:000000000000:execution:sync:scheduled-2';
      const runId = 'sync-20261201T000001Z-abcdef';
      await startRun(ledger, 'sync', runId, owner);
      await acquireLock(ledger, { runId, phase: 'sync', kind: 'run', owner });
      // A repair in flight holds the run's row: the rollback's stop waits for it to commit.
      let stopped = false;
      const rollback = (async () => {
        const result = await cli(['rollback', '--phase', 'data', '--yes'], dir);
        stopped = true;
        return result;
      })();
      await ledger.transaction(async (tx) => {
        await fenceRun(tx, runId, owner);
        await sleep(1_500);
        expect(stopped).toBe(false);
        // Its stop is waiting on this transaction: the run is still running as others see it.
        const [during] = await server.query(
          `SELECT status FROM ${qualified(target, 'migration_runs')} WHERE run_id = ?`,
          [runId],
        );
        expect(during).toEqual({ status: 'running' });
      });
      const undone = await rollback;
      expect(undone.code, undone.stderr).toBe(0);
      // The pass is over (nothing of it to undo), and a repair that starts now writes nothing.
      const [run] = await ledger.query('SELECT status, error_name FROM migration_runs WHERE run_id = ?', [
        runId,
      ]);
      expect(run).toEqual({ status: 'failed', error_name: 'RunStopped' });
      await expect(ledger.transaction((tx) => fenceRun(tx, runId, owner))).rejects.toThrow(/no new work|not/);
      for (const table of TABLES)
        expect(
          scalarNumber(await server.query(`SELECT COUNT(*) AS n FROM ${qualified(target, table)}`)),
        ).toBe(0);
    } finally {
      await ledger.close();
    }
    // Copied again for the tests after this one.
    expect((await cli(['run', 'data'], dir)).code).toBe(0);
  }, 180_000);

  it('sync --every runs pass after pass (--passes bounds it), and bad --every is exit 2', async () => {
    await server.execute(
      `UPDATE ${src('shifu_shifus')} SET title = CONCAT(title, ' (2)') ORDER BY id LIMIT 1`,
    );
    const loop = await cli(['sync', '--every', '1s', '--passes', '2'], dir);
    expect(loop.code, loop.stderr).toBe(0);
    expect(loop.json.passes).toBe(2);
    expect(loop.stderr).toContain('Next sync pass in 1s');
    expect(await differences(target, await quarantined(target))).toEqual([]);
    const bad = await cli(['sync', '--every', '5 minutes'], dir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--every must be a time from 1s to 24h');
    // Beyond a timer's reach it would run passes back to back.
    expect((await cli(['sync', '--every', '999h', '--passes', '2'], dir)).code).toBe(2);
    const misplaced = await cli(['status', '--every', '1m'], dir);
    expect(misplaced.code).toBe(2);
  }, 120_000);

  it('carries what the application writes to every demo table between passes, with tenants, and verify agrees', async () => {
    const traffic = await cli(
      ['simulate-traffic', '--writes', '1500', '--rate', '2000/s', '--seed', '3'],
      dir,
    );
    expect(traffic.code, traffic.stderr).toBe(0);
    // Sign-ups, re-registrations, orders, payments, progress, blocks, course edits, soft and hard deletes.
    const kinds = traffic.json.kinds as Record<string, number>;
    for (const kind of ['signup', 'order', 'payment', 'progress', 'courseEdit', 'softDelete', 'hardDelete'])
      expect(kinds[kind], kind).toBeGreaterThan(0);
    const changedTables = new Set(
      readFileSync(String(traffic.json.log), 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as { table: string; rows: number })
        .filter((w) => w.rows > 0)
        .map((w) => w.table),
    );
    expect([...changedTables].sort()).toEqual([...TABLES].sort());
    const pass = await cli(['run', 'sync'], dir);
    expect(pass.code, pass.stderr).toBe(0);
    expect(Number(pass.json.rowsApplied)).toBeGreaterThan(500);
    expect(Number(pass.json.rowsDeleted)).toBeGreaterThan(50);
    expect(await differences(target, await leftOut(target))).toEqual([]);
    const verify = await cli(['verify'], dir);
    expect(verify.json).toMatchObject({ outcome: 'OK', differences: 0 });
  }, 180_000);

  it('resumes a pass killed mid-way (kill -9) and ends level with the source', async () => {
    // Work for a while: half of the largest table changed behind the change column (only reconciliation sees it).
    await server.execute(
      `UPDATE ${src('learn_generated_blocks')} SET generated_content = CONCAT(COALESCE(generated_content, ''), '!'), updated_at = updated_at WHERE id % 2 = 0`,
    );
    const child = spawn(
      join(root, 'node_modules', '.bin', 'node'),
      [join(root, 'bin', 'shifu-migrate.mjs'), 'run', 'sync'],
      {
        cwd: dir,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
        stdio: 'ignore',
      },
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const done = async () =>
      scalarNumber(
        await server.query(
          `SELECT COUNT(*) AS n FROM ${qualified(target, 'migration_sync_chunks')} c JOIN ${qualified(target, 'migration_runs')} r ON r.run_id = c.run_id
            WHERE r.status = 'running' AND c.status <> 'planned' AND c.table_name = 'learn_generated_blocks'`,
        ),
      );
    const deadline = Date.now() + 60_000;
    while ((await done()) < 2 && Date.now() < deadline) await sleep(20);
    child.kill('SIGKILL');
    await exited;
    const [killed] = await server.query(
      `SELECT run_id, status FROM ${qualified(target, 'migration_runs')} WHERE phase = 'sync' ORDER BY started_at DESC, run_id DESC LIMIT 1`,
    );
    expect(killed?.status, 'the pass was killed before it finished').toBe('running');
    const resumed = await cli(['run', 'sync'], dir);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.json.runId).toBe(killed?.run_id);
    expect(resumed.stderr).toContain(`Resuming ${String(killed?.run_id)}`);
    expect(resumed.stderr).toContain('the lock was taken over');
    expect(await differences(target, await leftOut(target))).toEqual([]);
  }, 180_000);

  it('refuses a source whose tables changed since the copy, naming the column, and writes nothing', async () => {
    await server.execute(`ALTER TABLE ${src('shifu_outlines')} ADD COLUMN extra_note VARCHAR(20) NULL`);
    try {
      const before = scalarNumber(
        await server.query(`SELECT COUNT(*) AS n FROM ${qualified(target, 'migration_sync_passes')}`),
      );
      const refused = await cli(['run', 'sync'], dir);
      expect(refused.code).toBe(1);
      expect(refused.json.error).toBe('SourceSchemaChanged');
      expect(refused.stderr).toContain('shifu_outlines.extra_note is not on the target');
      const after = scalarNumber(
        await server.query(`SELECT COUNT(*) AS n FROM ${qualified(target, 'migration_sync_passes')}`),
      );
      expect(after).toBe(before);
    } finally {
      await server.execute(`ALTER TABLE ${src('shifu_outlines')} DROP COLUMN extra_note`);
    }
  }, 120_000);

  it('a data rollback takes what sync wrote with it, and sync then waits for a new copy', async () => {
    const rollback = await cli(['rollback', '--phase', 'data', '--yes'], dir);
    expect(rollback.code, rollback.stderr).toBe(0);
    for (const table of TABLES)
      expect(scalarNumber(await server.query(`SELECT COUNT(*) AS n FROM ${qualified(target, table)}`))).toBe(
        0,
      );
    expect(await server.query(`SELECT * FROM ${qualified(target, 'migration_sync_watermarks')}`)).toEqual([]);
    const after = await cli(['run', 'sync'], dir);
    expect(after.code).toBe(1);
    expect(after.json.error).toBe('SyncNotReady');
    const [run] = await server.query(
      `SELECT status, error_name FROM ${qualified(target, 'migration_runs')} WHERE phase = 'sync' ORDER BY started_at DESC, run_id DESC LIMIT 1`,
    );
    expect(strOrNull(run ?? {}, 'status')).not.toBe('running');
  }, 180_000);
});

describe('the sync schedule', () => {
  it('is enabled when data succeeds and disabled as a rollback of data begins, by those two functions only', async () => {
    const target = `smt_sync_s_${process.pid}`;
    const dir = workspace(target);
    const loaded = loadConfig({
      file: join(dir, 'shifu-migrate.config.json'),
      defaults: demoConfig,
      env: {},
    });
    const calls: string[] = [];
    let state: 'ENABLED' | 'DISABLED' = 'DISABLED';
    const syncSchedule: SyncSchedule = {
      async set(wanted) {
        calls.push(wanted);
        const changed = state !== wanted;
        state = wanted;
        return changed ? 'changed' : 'unchanged';
      },
    };
    // Each tenant's series: rows once data copied, open conflicts after every pass.
    const tenantMetrics: { phase: string; tenant: string; values: Record<string, number> }[] = [];
    const metrics = {
      put(phase: string, values: Record<string, number>, tenant?: string) {
        if (tenant !== undefined) tenantMetrics.push({ phase, tenant, values });
      },
    };
    const run = (stateMachine: string, input: unknown = {}) =>
      runPhase({ loaded, stateMachine, input, cwd: dir, syncSchedule, metrics });
    expect((await run('foundation')).status).toBe('SUCCEEDED');
    expect(calls).toEqual([]);
    const data = await run('data');
    expect(data.status).toBe('SUCCEEDED');
    expect((data.output as { syncSchedule: string }).syncSchedule).toBe('enabled');
    expect(state).toBe('ENABLED');
    expect((await run('sync')).status).toBe('SUCCEEDED');
    expect(calls).toEqual(['ENABLED']);
    const tenants = ['acme', 'default', 'globex', 'initech'];
    const rows = tenantMetrics.filter((m) => m.phase === 'data' && 'TenantRows' in m.values);
    expect(rows.map((m) => m.tenant).sort()).toEqual(tenants);
    const [counted] = await server.query(
      `SELECT COUNT(*) AS n FROM ${qualified(target, 'user_users')} WHERE tenant_bid = 'acme'`,
    );
    expect(rows.find((m) => m.tenant === 'acme')?.values.TenantRows).toBeGreaterThanOrEqual(
      num(counted ?? {}, 'n'),
    );
    expect(
      tenantMetrics
        .filter((m) => m.phase === 'sync' && 'TenantConflicts' in m.values && 'SyncLagSeconds' in m.values)
        .map((m) => m.tenant)
        .sort(),
    ).toEqual(tenants);
    const rollback = await run('rollback', { phase: 'data' });
    expect(rollback.status).toBe('SUCCEEDED');
    expect(calls).toEqual(['ENABLED', 'DISABLED']);
    expect(state).toBe('DISABLED');
  }, 180_000);
});

describe('keys the collation holds equal', () => {
  it('a key whose case changes (b → B) ends as the source has it, the row not lost', async () => {
    const target = `smt_sync_k_${process.pid}`;
    await server.execute(
      `CREATE TABLE ${src('kv_keys')} (k VARCHAR(10) NOT NULL PRIMARY KEY, v VARCHAR(10) NOT NULL, updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`,
    );
    try {
      await server.execute(`INSERT INTO ${src('kv_keys')} (k, v) VALUES ('b', '2'), ('abc', '1')`);
      const dir = workspace(target, {}, { kv_keys: { global: true } });
      for (const phase of ['foundation', 'data', 'sync'])
        expect((await cli(['run', phase], dir)).code).toBe(0);
      await server.execute(`UPDATE ${src('kv_keys')} SET k = 'B', v = '22' WHERE k = 'b'`);
      await server.execute(`UPDATE ${src('kv_keys')} SET k = 'ABC' WHERE k = 'abc'`);
      const pass = await cli(['run', 'sync'], dir);
      expect(pass.code, pass.stderr).toBe(0);
      const rows = await server.query(`SELECT k, v FROM ${qualified(target, 'kv_keys')} ORDER BY k`);
      expect(rows).toEqual([
        { k: 'ABC', v: '1' },
        { k: 'B', v: '22' },
      ]);
      expect((await cli(['verify'], dir)).code).toBe(0);
    } finally {
      await server.execute(`DROP TABLE IF EXISTS ${src('kv_keys')}`);
    }
  }, 180_000);
});
