import { describe, expect, it } from 'vitest';
import { sourceWritePrivileges } from '../../lambdas/assess/assess.ts';
import { createMysqlClient } from '../../lambdas/core/sql/mysql.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { type MysqlUrl, parseDatabaseUrl } from '../../lambdas/core/sql/url.ts';
import type { TaskDeps } from '../../lambdas/core/task.ts';
import { adminConnection, scratchDatabase } from '../support/mariadb.ts';

const deps = (grants: string[] | Error) =>
  ({
    sourceUrl: parseDatabaseUrl('mysql://reader@127.0.0.1:3306/shifu_legacy'),
    source: {
      query: async () => {
        if (grants instanceof Error) throw grants;
        return grants.map((g) => ({ 'Grants for reader@%': g }));
      },
    },
  }) as unknown as TaskDeps;

describe("the source user's grants", () => {
  it.each([
    [['GRANT USAGE ON *.* TO `reader`@`%`', 'GRANT SELECT ON `shifu_legacy`.* TO `reader`@`%`'], []],
    [['GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION'], ['ALL PRIVILEGES']],
    [['GRANT SELECT, INSERT, UPDATE ON `shifu\\_legacy`.* TO `app`@`%`'], ['INSERT', 'UPDATE']],
    [['GRANT SELECT, DELETE ON `shifu_legacy`.`user_users` TO `app`@`%`'], ['DELETE']],
    [['GRANT INSERT, DROP ON `other_db`.* TO `app`@`%`', 'GRANT SELECT ON *.* TO `app`@`%`'], []],
  ])('%j → %j', async (grants, expected) => {
    expect(await sourceWritePrivileges(deps(grants))).toEqual(expected);
  });

  it('says nothing when the server will not show the grants', async () => {
    expect(await sourceWritePrivileges(deps(new Error('Access denied')))).toEqual([]);
  });
});

describe("the source user's grants on the real server", () => {
  it('finds none for a SELECT-only user and the write privileges of an owner', async () => {
    const db = await scratchDatabase('grants');
    const user = `smt_reader_${db.name.slice(-8)}`;
    const admin = await adminConnection();
    const clients: SqlClient[] = [];
    try {
      await admin.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'reader-pw'`);
      await admin.query(`GRANT SELECT ON \`${db.name}\`.* TO '${user}'@'%'`);
      const readerUrl = parseDatabaseUrl(
        db.url.raw.replace(/\/\/[^@]*@/, `//${user}:reader-pw@`),
      ) as MysqlUrl;
      const reader = createMysqlClient(readerUrl);
      clients.push(reader);
      expect(
        await sourceWritePrivileges({ source: reader, sourceUrl: readerUrl } as unknown as TaskDeps),
      ).toEqual([]);

      await admin.query(`GRANT INSERT, DELETE ON \`${db.name}\`.* TO '${user}'@'%'`);
      const writer = createMysqlClient(readerUrl);
      clients.push(writer);
      expect(
        await sourceWritePrivileges({ source: writer, sourceUrl: readerUrl } as unknown as TaskDeps),
      ).toEqual(['DELETE', 'INSERT']);
    } finally {
      for (const client of clients) await client.close();
      await admin.query(`DROP USER IF EXISTS '${user}'@'%'`);
      await admin.end();
      await db.drop();
    }
  });
});
