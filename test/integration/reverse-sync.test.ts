import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qualified } from '../../lambdas/core/identifiers.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { num, str } from '../../lambdas/core/sql/rows.ts';
import { demoConfig } from '../../local/demo/config.ts';
import { seedDemo } from '../../local/demo/seed.ts';
import { runCli } from '../support/cli.ts';
import { mysqlClient, mysqlUrl, scratchDatabase } from '../support/mariadb.ts';

let source: Awaited<ReturnType<typeof scratchDatabase>>;
let server: SqlClient;
const target = `smt_rev_t_${process.pid}`;
let dir: string;

const src = (table: string) => qualified(source.name, table);
const tgt = (table: string) => qualified(target, table);
const cli = (args: string[]) => runCli(args, { cwd: dir });

/** Marks a tenant as the multi-tenant side's, as the application phase's switch does. */
async function own(tenant: string, status: 'switched' | 'rolled_back'): Promise<void> {
  await server.execute(
    `UPDATE ${tgt('tenant_migration_status')} SET status = ?, switched_at = IF(? = 'switched', UTC_TIMESTAMP(6), switched_at) WHERE tenant_bid = ?`,
    [status, status, tenant],
  );
}

beforeAll(async () => {
  source = await scratchDatabase('rev');
  server = mysqlClient('information_schema');
  await seedDemo({ client: server, database: source.name, users: 120, reset: false });
  dir = mkdtempSync(join(tmpdir(), 'smt-rev-'));
  writeFileSync(
    join(dir, 'shifu-migrate.config.json'),
    JSON.stringify({
      ...demoConfig(),
      source: { url: source.url.raw },
      target: { url: mysqlUrl(target).raw },
      archive: { url: join(dir, 'archive') },
      chunking: { rowsPerChunk: 300, maxConcurrency: 2, copyPath: 'client', recheckDelaySeconds: 0.2 },
      sync: { overlapSeconds: 5 },
    }),
  );
  expect((await cli(['run', 'foundation'])).code).toBe(0);
  expect((await cli(['run', 'data'])).code).toBe(0);
}, 180_000);

afterAll(async () => {
  await server.execute(`DROP DATABASE IF EXISTS \`${target}\``);
  await server?.close();
  await source?.drop();
});

describe('reverse sync', () => {
  it('carries a switched tenant’s inserts, updates and deletes on the target back to legacy, and forward sync leaves them alone', async () => {
    await own('acme', 'switched');
    const [user] = await server.query(
      `SELECT id, user_bid FROM ${tgt('user_users')} WHERE tenant_bid = 'acme' ORDER BY id LIMIT 1`,
    );
    const userId = num(user ?? {}, 'id');
    const userBid = str(user ?? {}, 'user_bid');
    // The multi-tenant application writes acme's rows on the target: an insert (an id of its own series), an
    // update, a delete.
    const [top] = await server.query(`SELECT MAX(id) AS m FROM ${src('order_orders')}`);
    const newId = num(top ?? {}, 'm') + 1_000;
    await server.execute(
      `INSERT INTO ${tgt('order_orders')} (id, order_bid, user_bid, shifu_bid, payable_price, paid_price, status, tenant_bid)
       SELECT ?, 'rev-order-1', ?, shifu_bid, 45.60, 0, 0, 'acme' FROM ${tgt('shifu_shifus')} LIMIT 1`,
      [newId, userBid],
    );
    await server.execute(`UPDATE ${tgt('user_users')} SET nickname = 'written-on-target' WHERE id = ?`, [
      userId,
    ]);
    const [gone] = await server.query(
      `SELECT id FROM ${tgt('study_records')} WHERE tenant_bid = 'acme' ORDER BY id LIMIT 1`,
    );
    const goneId = num(gone ?? {}, 'id');
    await server.execute(`DELETE FROM ${tgt('study_records')} WHERE id = ?`, [goneId]);
    // Legacy still owns globex: its write goes forward as before.
    const [other] = await server.query(
      `SELECT id FROM ${src('user_users')} WHERE email LIKE '%@globex.com' ORDER BY id LIMIT 1`,
    );
    await server.execute(`UPDATE ${src('user_users')} SET nickname = 'written-on-legacy' WHERE id = ?`, [
      num(other ?? {}, 'id'),
    ]);

    const pass = await cli(['run', 'sync']);
    expect(pass.code, pass.stderr).toBe(0);

    const [order] = await server.query(`SELECT id, payable_price FROM ${src('order_orders')} WHERE id = ?`, [
      newId,
    ]);
    expect(str(order ?? {}, 'payable_price')).toBe('45.60');
    const [legacyUser] = await server.query(`SELECT nickname FROM ${src('user_users')} WHERE id = ?`, [
      userId,
    ]);
    expect(str(legacyUser ?? {}, 'nickname')).toBe('written-on-target');
    const [deleted] = await server.query(`SELECT COUNT(*) AS n FROM ${src('study_records')} WHERE id = ?`, [
      goneId,
    ]);
    expect(num(deleted ?? {}, 'n')).toBe(0);
    const [forward] = await server.query(`SELECT nickname FROM ${tgt('user_users')} WHERE id = ?`, [
      num(other ?? {}, 'id'),
    ]);
    expect(str(forward ?? {}, 'nickname')).toBe('written-on-legacy');
    // The pass's own counts of what went back.
    const [counts] = await server.query(
      `SELECT SUM(reverse_applied) AS applied, SUM(reverse_deleted) AS deleted FROM ${tgt('migration_sync_passes')} WHERE run_id = ?`,
      [String(pass.json.runId)],
    );
    expect(num(counts ?? {}, 'applied')).toBeGreaterThanOrEqual(2);
    expect(num(counts ?? {}, 'deleted')).toBe(1);

    // A legacy write to a switched tenant's row (the application should not make one) never overwrites the target:
    // forward sync leaves acme alone, and reverse sync makes legacy what the target holds again.
    await server.execute(`UPDATE ${src('user_users')} SET nickname = 'stray-legacy-write' WHERE id = ?`, [
      userId,
    ]);
    expect((await cli(['run', 'sync'])).code).toBe(0);
    const [kept] = await server.query(`SELECT nickname FROM ${tgt('user_users')} WHERE id = ?`, [userId]);
    expect(str(kept ?? {}, 'nickname')).toBe('written-on-target');
    const [restored] = await server.query(`SELECT nickname FROM ${src('user_users')} WHERE id = ?`, [userId]);
    expect(str(restored ?? {}, 'nickname')).toBe('written-on-target');

    // Rolled back: legacy owns acme again, and forward sync carries legacy's writes to the target.
    await own('acme', 'rolled_back');
    await server.execute(`UPDATE ${src('user_users')} SET nickname = 'legacy-again' WHERE id = ?`, [userId]);
    expect((await cli(['run', 'sync'])).code).toBe(0);
    const [back] = await server.query(`SELECT nickname FROM ${tgt('user_users')} WHERE id = ?`, [userId]);
    expect(str(back ?? {}, 'nickname')).toBe('legacy-again');
    const verify = await cli(['verify']);
    expect(verify.code, verify.stderr).toBe(0);
  }, 180_000);
});
