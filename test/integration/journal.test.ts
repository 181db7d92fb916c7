import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../lambdas/core/config/schema.ts';
import { demoConfig } from '../../local/demo/config.ts';
import { checkJournal } from '../../local/demo/journal.ts';
import type { Journal } from '../../local/demo/traffic.ts';
import { adminConnection, mysqlClient, scratchDatabase } from '../support/mariadb.ts';

describe("the hybrid demo's lost-writes check", () => {
  let legacy: Awaited<ReturnType<typeof scratchDatabase>>;
  let target: Awaited<ReturnType<typeof scratchDatabase>>;

  beforeAll(async () => {
    legacy = await scratchDatabase('jrn');
    target = await scratchDatabase('jrn_t');
    const admin = await adminConnection();
    try {
      await admin.query(
        `CREATE TABLE \`${legacy.name}\`.user_users (id INT PRIMARY KEY, deleted TINYINT NOT NULL)`,
      );
      await admin.query(
        `CREATE TABLE \`${target.name}\`.user_users (id INT PRIMARY KEY, deleted TINYINT NOT NULL, tenant_bid VARCHAR(32) NOT NULL)`,
      );
      await admin.query(
        `CREATE TABLE \`${target.name}\`.traffic_routing (scope VARCHAR(16), tenant_bid VARCHAR(32), target VARCHAR(16))`,
      );
      await admin.query(
        `CREATE TABLE \`${target.name}\`.migration_sync_conflicts (table_name VARCHAR(64), row_key VARCHAR(255), resolved_at DATETIME NULL)`,
      );
      await admin.query(
        `INSERT INTO \`${target.name}\`.traffic_routing VALUES ('tenant', 'default', 'saas')`,
      );
      // Legacy took the simulator's soft deletes of rows 1, 2 and 4; row 3's never reached it.
      await admin.query(`INSERT INTO \`${legacy.name}\`.user_users VALUES (1, 1), (2, 1), (3, 0), (4, 1)`);
      // The multi-tenant side owns tenant default and has none of the deletes.
      await admin.query(
        `INSERT INTO \`${target.name}\`.user_users VALUES (1, 0, 'default'), (2, 0, 'default'), (3, 0, 'default'), (4, 1, 'default')`,
      );
      // Rows 1 and 3 are in an open tenant conflict (sync left the target's copy); row 2's was settled.
      await admin.query(
        `INSERT INTO \`${target.name}\`.migration_sync_conflicts VALUES ('user_users', '[1]', NULL), ('user_users', '[3]', NULL), ('user_users', '[2]', NOW())`,
      );
    } finally {
      await admin.end();
    }
  });

  afterAll(async () => {
    await legacy.drop();
    await target.drop();
  });

  it('holds a write in an open tenant conflict that legacy has as written; anything else missing is lost', async () => {
    const journal: Journal = new Map(
      [1, 2, 3, 4].map((id) => [`user_users:${id}`, { deleted: false, values: { deleted: '1' } }]),
    );
    const legacyClient = mysqlClient(legacy.name);
    const targetClient = mysqlClient(target.name);
    try {
      const checked = await checkJournal(
        journal,
        { legacy: legacyClient, legacyDb: legacy.name, target: targetClient, targetDb: target.name },
        ConfigSchema.parse(demoConfig()),
      );
      // 1: in an open conflict and on legacy as written: held, not lost. 4: on the owning side as written.
      expect(checked.held).toEqual(['user_users:1']);
      expect(checked.kept).toBe(1);
      // 2: its conflict was settled, yet the owning side lacks the write. 3: in a conflict, but legacy lacks it too.
      expect(checked.lost.map((l) => l.row)).toEqual(['user_users:2', 'user_users:3']);
    } finally {
      await legacyClient.close();
      await targetClient.close();
    }
  });
});
