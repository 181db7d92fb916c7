import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binlogRetention, sourceChecks, syncChecks, targetFreeSpace } from '../../lambdas/assess/checks.ts';
import type { AssessReport } from '../../lambdas/assess/schema.ts';
import { ConfigSchema } from '../../lambdas/core/config/schema.ts';
import { introspect } from '../../lambdas/core/schema/introspect.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { demoConfig } from '../../local/demo/config.ts';
import { runCli } from '../support/cli.ts';
import { adminConnection, mysqlClient, mysqlUrl, scratchDatabase } from '../support/mariadb.ts';

describe('the checks a DBA runs before a migration', () => {
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  let client: SqlClient;

  beforeAll(async () => {
    db = await scratchDatabase('checks');
    const admin = await adminConnection(db.name);
    try {
      for (const statement of [
        'CREATE TABLE good (id BIGINT PRIMARY KEY, name VARCHAR(40)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4',
        'CREATE TABLE old_engine (id BIGINT PRIMARY KEY, v INT) ENGINE=MyISAM DEFAULT CHARSET=utf8mb4',
        'CREATE TABLE latin (id BIGINT PRIMARY KEY, name VARCHAR(40)) ENGINE=InnoDB DEFAULT CHARSET=latin1',
        'CREATE TABLE parent (id BIGINT PRIMARY KEY) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4',
        'CREATE TABLE child (id BIGINT PRIMARY KEY, parent_id BIGINT, CONSTRAINT fk_child_parent FOREIGN KEY (parent_id) REFERENCES parent (id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4',
        'CREATE TRIGGER good_touch BEFORE UPDATE ON good FOR EACH ROW SET NEW.name = UPPER(NEW.name)',
        'CREATE PROCEDURE cleanup() DELETE FROM good WHERE id < 0',
        'CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DO DELETE FROM good WHERE id < 0',
      ])
        await admin.query(statement);
    } finally {
      await admin.end();
    }
    client = mysqlClient(db.name);
  });
  afterAll(async () => {
    await client?.close();
    await db?.drop();
  });

  it('flags a MyISAM table, a latin1 table, a trigger, a foreign key, a routine and an event, each with its fix', async () => {
    const problems = await sourceChecks(client, await introspect(client, db.name));
    const found = problems.map((p) => `${p.severity} ${p.code} ${p.table ?? ''}`.trim());
    expect(found).toEqual(
      expect.arrayContaining([
        'warning non-transactional-engine old_engine',
        'warning not-utf8mb4 latin',
        'warning declared-foreign-keys child',
        'warning trigger good',
        'info routine',
        'warning scheduled-event',
      ]),
    );
    // The well-made tables are not flagged.
    expect(problems.filter((p) => p.table === 'parent')).toEqual([]);
    expect(problems.filter((p) => p.table === 'good' && p.code !== 'trigger')).toEqual([]);
    expect(problems.find((p) => p.code === 'non-transactional-engine')?.message).toMatch(
      /ALTER TABLE `old_engine` ENGINE=InnoDB/,
    );
    expect(problems.find((p) => p.code === 'not-utf8mb4')?.message).toMatch(
      /table latin1_swedish_ci, name latin1/,
    );
    expect(problems.find((p) => p.code === 'declared-foreign-keys')?.message).toMatch(/fk_child_parent/);
    expect(problems.find((p) => p.code === 'trigger')?.message).toMatch(/good_touch \(UPDATE on good\)/);
  });

  it('warns when the source keeps its binary logs less than a day (a server setting: decided from its values)', () => {
    expect(binlogRetention(true, 3 * 3_600)).toMatchObject({ severity: 'warning', code: 'binlog-retention' });
    expect(binlogRetention(true, 3 * 3_600)?.message).toMatch(
      /keeps its binary logs for 3 h.*binlog_expire_logs_seconds/,
    );
    expect(binlogRetention(true, 7 * 86_400)).toBeNull();
    expect(binlogRetention(true, 0)).toBeNull();
    expect(binlogRetention(false, 3_600)).toBeNull();
  });

  it('weighs the target free space against the copy: blocking below it, a warning when tight or unknown', () => {
    const gib = 1024 ** 3;
    expect(
      targetFreeSpace({ sourceBytes: 10 * gib, free: 12 * gib, where: '/data', aurora: false }),
    ).toMatchObject({
      severity: 'blocking',
      code: 'target-free-space',
    });
    expect(
      targetFreeSpace({ sourceBytes: 10 * gib, free: 12 * gib, where: '/data', aurora: false }).message,
    ).toMatch(/12 GiB free at \/data, and the copy needs about 15 GiB.*grow the volume first/);
    expect(
      targetFreeSpace({ sourceBytes: 10 * gib, free: 20 * gib, where: '/data', aurora: false }).severity,
    ).toBe('warning');
    expect(
      targetFreeSpace({ sourceBytes: 10 * gib, free: 40 * gib, where: '/data', aurora: false }).severity,
    ).toBe('info');
    const unknown = targetFreeSpace({
      sourceBytes: gib,
      free: null,
      where: 'db.internal is another machine',
      aurora: false,
    });
    expect(unknown.severity).toBe('warning');
    expect(unknown.message).toMatch(/at least 1\.50 GiB free.*FreeStorageSpace/);
    expect(targetFreeSpace({ sourceBytes: gib, free: null, where: '', aurora: true }).severity).toBe('info');
    // A target writing a binary log takes the copy there too; what it holds already needs no more room.
    expect(
      targetFreeSpace({ sourceBytes: 10 * gib, binlog: true, free: 20 * gib, where: '/data', aurora: false }),
    ).toMatchObject({ severity: 'blocking' });
    expect(
      targetFreeSpace({
        sourceBytes: 10 * gib,
        targetBytes: 10 * gib,
        free: 12 * gib,
        where: '/data',
        aurora: false,
      }).message,
    ).toMatch(/needs about 5\.00 GiB/);
  });

  it('names the change column sync catches up by, whether an index leads with it, and tables without one', async () => {
    const admin = await adminConnection(db.name);
    try {
      await admin.query(
        'CREATE TABLE touched (id BIGINT PRIMARY KEY, v INT, updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, KEY idx_updated (updated_at))',
      );
      await admin.query(
        'CREATE TABLE touched_unindexed (id BIGINT PRIMARY KEY, modified TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3))',
      );
      await admin.query('CREATE TABLE named (id BIGINT PRIMARY KEY, changed_on DATETIME NULL)');
    } finally {
      await admin.end();
    }
    const schema = await introspect(client, db.name);
    const config = {
      ...demoConfig(),
      tables: {
        touched: { global: true as const },
        touched_unindexed: { global: true as const },
        named: { global: true as const, changeColumn: 'changed_on' },
        good: { global: true as const },
        parent: { exclude: 'not this one' },
      },
    };
    const found = syncChecks(ConfigSchema.parse(config), schema).map((p) => `${p.code} ${p.table}`);
    expect(found.sort()).toEqual(
      [
        'change-column touched',
        'change-column-not-indexed touched_unindexed',
        'change-column-not-indexed named',
        'no-change-column good',
      ].sort(),
    );
  });

  it('blocks a table whose only key is BIT: its values do not survive the chunk list as JSON', async () => {
    const admin = await adminConnection(db.name);
    try {
      await admin.query('CREATE TABLE t_bit (id BIT(16) PRIMARY KEY, v INT) ENGINE=InnoDB');
      await admin.query('INSERT INTO t_bit VALUES (1, 1), (2, 2)');
    } finally {
      await admin.end();
    }
    const dir = mkdtempSync(join(tmpdir(), 'smt-bit-'));
    const tables = Object.fromEntries(
      ['good', 'old_engine', 'latin', 'parent', 'child', 't_bit'].map((t) => [t, { global: true }]),
    );
    writeFileSync(
      join(dir, 'shifu-migrate.config.json'),
      JSON.stringify({
        ...demoConfig(),
        source: { url: mysqlUrl(db.name).raw },
        target: { url: mysqlUrl(`${db.name}_t`).raw },
        archive: { url: join(dir, 'archive') },
        tables,
      }),
    );
    const run = await runCli(['run', 'assess'], { cwd: dir });
    expect(run.code).toBe(1);
    expect((run.json.report as AssessReport).problems).toContainEqual(
      expect.objectContaining({ severity: 'blocking', code: 'binary-chunk-key', table: 't_bit' }),
    );
  });

  it('blocks a target user that may not create, alter or drop, naming the GRANT; estimates the duration from a sample', async () => {
    const user = `smt_tgt_${process.pid}`;
    const target = `${db.name}_lim`;
    const admin = await adminConnection();
    try {
      await admin.query(`CREATE DATABASE IF NOT EXISTS \`${target}\``);
      // Rows to time a sample of (the estimate reads the largest migrated table).
      await admin.query(`INSERT IGNORE INTO \`${db.name}\`.good VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
      await admin.query(`CREATE USER IF NOT EXISTS '${user}'@'%' IDENTIFIED BY 'pw'`);
      await admin.query(`CREATE USER IF NOT EXISTS '${user}'@'localhost' IDENTIFIED BY 'pw'`);
      await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON \`${target}\`.* TO '${user}'@'%'`);
      await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON \`${target}\`.* TO '${user}'@'localhost'`);
      const dir = mkdtempSync(join(tmpdir(), 'smt-assess-priv-'));
      writeFileSync(
        join(dir, 'shifu-migrate.config.json'),
        JSON.stringify({
          ...demoConfig(),
          source: { url: mysqlUrl(db.name).raw },
          target: { url: `mysql://${user}:pw@127.0.0.1:3306/${target}` },
          archive: { url: join(dir, 'archive') },
          tables: Object.fromEntries(
            ['good', 'old_engine', 'latin', 'parent', 'child'].map((t) => [t, { global: true }]),
          ),
        }),
      );
      const run = await runCli(['run', 'assess'], { cwd: dir });
      const problems = (run.json.report as AssessReport).problems;
      const privileges = problems.find((p) => p.code === 'target-privileges');
      expect(privileges?.severity).toBe('blocking');
      expect(privileges?.message).toMatch(/may not CREATE, ALTER, INDEX, DROP on/);
      expect(privileges?.message).toMatch(/GRANT CREATE, ALTER, INDEX, DROP ON/);
      expect(problems.find((p) => p.code === 'estimated-duration')?.message).toMatch(
        /the data phase may take about \d+ (s|min) for [\d,]+ rows: [\d,]+ rows of \w+ read in \d+ ms/,
      );
      // The target runs on this machine: its free space is read from its data directory.
      const space = problems.find((p) => p.code === 'target-free-space');
      expect(space?.severity).not.toBe('blocking');
      expect(space?.message).toMatch(
        /the target has [\d.]+ GiB free at \/\S+; the copy needs about [\d.]+ GiB/,
      );

      // run data refuses while the latest assessment of these databases is BLOCKED: nothing is started.
      const refused = await runCli(['run', 'data'], { cwd: dir });
      expect(refused.code).toBe(2);
      expect(refused.json).toMatchObject({ status: 'REFUSED', error: 'AssessmentNotPassed' });
      expect(String(refused.json.message)).toMatch(
        /the latest assessment of \w+ → \w+ \(assess-\S+\) is BLOCKED by \d+ problems?: fix them \(.*report\.md\), then npx shifu-migrate run assess/,
      );
      // An assessment that passed, but judged other tenant rules than the config now has: refused too.
      const reportDir = join(dir, 'archive', 'reports', 'assess', 'assess-29991231T000000Z-000000');
      mkdirSync(reportDir, { recursive: true });
      const report = run.json.report as AssessReport;
      writeFileSync(
        join(reportDir, 'report.json'),
        JSON.stringify({
          ...report,
          runId: 'assess-29991231T000000Z-000000',
          ready: true,
          configHash: 'other',
        }),
      );
      const other = await runCli(['run', 'data'], { cwd: dir });
      expect(other.code).toBe(2);
      expect(String(other.json.message)).toMatch(/judged other tenant rules than this config has/);
      // A newer report that cannot be read may be this pair's latest: refused, naming it, not passed over.
      const broken = join(dir, 'archive', 'reports', 'assess', 'assess-29991231T235959Z-ffffff');
      mkdirSync(broken, { recursive: true });
      writeFileSync(join(broken, 'report.json'), JSON.stringify({ source: { database: 'x' } }));
      const unreadable = await runCli(['run', 'data'], { cwd: dir });
      expect(unreadable.code).toBe(2);
      expect(String(unreadable.json.message)).toMatch(
        /a newer assessment report cannot be read \(.*assess-29991231T235959Z-ffffff.report\.json\)/,
      );
    } finally {
      await admin.query(`DROP USER IF EXISTS '${user}'@'%'`);
      await admin.query(`DROP USER IF EXISTS '${user}'@'localhost'`);
      await admin.query(`DROP DATABASE IF EXISTS \`${target}\``);
      await admin.end();
    }
  }, 60_000);
});
