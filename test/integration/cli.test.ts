import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contractErrors } from '../support/json-contract.ts';
import { adminConnection, mysqlUrl, scratchDatabase } from '../support/mariadb.ts';

const root = join(import.meta.dirname, '..', '..');
/** A whole demo: the README promises it under two minutes on a 2-core machine; a loaded one gets that long. */
const DEMO_TIMEOUT_MS = 120_000;
const node = join(root, 'node_modules', '.bin', 'node');

/** Runs the real CLI as a user would (`npx shifu-migrate …` runs this same launcher), without a terminal. */
function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(node, [join(root, 'bin', 'shifu-migrate.mjs'), ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('shifu-migrate CLI', () => {
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  let env: Record<string, string>;

  beforeAll(async () => {
    db = await scratchDatabase('cli');
    env = {
      SOURCE_DATABASE_URL: mysqlUrl(db.name).raw,
      TARGET_DATABASE_URL: mysqlUrl(`${db.name}_saas`).raw,
      ARCHIVE_URL: join(root, '.shifu-migrate', 'test-archive'),
    };
  });
  afterAll(async () => {
    const admin = await adminConnection();
    await admin.query(`DROP DATABASE IF EXISTS \`${db.name}_saas\``);
    await admin.end();
    await db?.drop();
  });

  it('seed-demo --json prints one JSON object and exits 0', async () => {
    const run = await cli(['seed-demo', '--users', '120', '--reset', '--json'], env);
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({
      status: 'SUCCEEDED',
      outcome: 'SUCCEEDED',
      database: db.name,
      users: 120,
    });
    // The real binary's output holds to the published contract too (schema/cli/).
    expect(contractErrors(result)).toEqual([]);
    expect(result).toMatchObject({ version: 1, command: 'seed-demo', exitCode: 0 });
    expect(result.tables).toHaveLength(10);
    expect(result.totalRows).toBe(result.tables.reduce((s: number, t: { rows: number }) => s + t.rows, 0));
    expect(run.stderr).toMatch(/Seeded .* rows in 10 tables/);
    // Without a terminal, progress is plain lines: no carriage returns or escape codes.
    expect(run.stderr.includes('\r')).toBe(false);
    expect(run.stderr.includes('\u001b[')).toBe(false);
  });

  it(
    'demo reuses the demo database and runs every phase in order',
    async () => {
      const run = await cli(['demo'], env);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toMatch(/Using the demo database .* already there/);
      expect(run.stderr).toMatch(/Assessment assess-\S+: READY; 10 tables/);
      expect(run.stderr).toMatch(
        /Foundation ready \(foundation-\S+\): 10 tables and 4 tenants on the target/,
      );
      expect(run.stderr.indexOf('Assessment')).toBeLessThan(run.stderr.indexOf('Foundation ready'));
      // The hybrid period: waves switch under routed traffic, an alarm during the last wave's bake takes it back,
      // the waves run again to the end, and no write is lost.
      expect(run.stderr).toMatch(
        /Before the switch: legacy serves default, acme, globex, initech; the multi-tenant side serves no tenant\./,
      );
      expect(run.stderr).toMatch(
        /The last wave \(default\) is switched and baking: the multi-tenant API's error rate alarm goes off\./,
      );
      expect(run.stderr).toMatch(
        /Routed back to legacy: default\. .* Still on the multi-tenant side: acme, globex, initech\./,
      );
      expect(run.stderr).toMatch(
        /Every wave switched: legacy serves no tenant; the multi-tenant side serves default, acme, globex, initech\./,
      );
      expect(run.stderr).toMatch(
        /Simulated traffic stopped: [\d,]+ writes, legacy took [1-9][\d,]* and the multi-tenant side [1-9][\d,]*/,
      );
      expect(run.stderr).toMatch(
        /Lost writes: none\. Each of the [\d,]+ rows the simulator wrote is on the side that owns its tenant/,
      );
      expect(run.stderr).toMatch(/with no difference between the two and no write lost/);
      // It ends with what to do next: look again, see the report, write your own config, clean up.
      expect(run.stderr).toMatch(/Next:\n {2}npx shifu-migrate verify /);
      expect(run.stderr).toMatch(/reports\/assess\/assess-\S+\/report\.md {3}the assessment/);
      expect(run.stderr).toMatch(/cleaning up: DROP DATABASE /);
      expect(run.stdout).toBe('demo: done\n');
    },
    DEMO_TIMEOUT_MS,
  );

  it(
    'demo --reset on a server with neither database: nothing to roll back, then the whole demo',
    async () => {
      const fresh = `${db.name}_new`;
      const freshEnv = {
        ...env,
        SOURCE_DATABASE_URL: mysqlUrl(fresh).raw,
        TARGET_DATABASE_URL: mysqlUrl(`${fresh}_saas`).raw,
      };
      try {
        const run = await cli(['demo', '--reset', '--users', '40'], freshEnv);
        expect(run.code, run.stderr).toBe(0);
        expect(run.stderr).toMatch(/Nothing to roll back/);
        expect(run.stderr).not.toMatch(/Unknown database/);
        expect(run.stdout).toBe('demo: done\n');
      } finally {
        const admin = await adminConnection();
        await admin.query(`DROP DATABASE IF EXISTS \`${fresh}\``);
        await admin.query(`DROP DATABASE IF EXISTS \`${fresh}_saas\``);
        await admin.end();
      }
    },
    DEMO_TIMEOUT_MS,
  );

  it('status and verify print their report on stdout, so it can be piped', async () => {
    const status = await cli(['status'], env);
    expect(status.code, status.stderr).toBe(0);
    // Every command says which config and which databases it works on.
    expect(status.stderr).toMatch(
      /^Config: the built-in demo config \(no shifu-migrate\.config\.json in .*\); source mysql:\/\/.*, target mysql:\/\//,
    );
    expect(status.stdout).toMatch(/Runs \(newest first\) in /);
    expect(status.stdout).toMatch(/order_orders/);
    expect(status.stdout).toMatch(/status: ok\n$/);
    const verify = await cli(['verify'], env);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/No differences\./);
  });

  it(
    'demo --reset with another size starts over: the previous target rows do not get in the way',
    async () => {
      const run = await cli(['demo', '--reset', '--users', '90'], env);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toMatch(
        /Resetting the demo target .*: rolling back integration, routing every tenant back to legacy, then rolling back data, then foundation/,
      );
      // The demo before it had switched every tenant: they went back to legacy, their writes drained back first.
      expect(run.stderr).toMatch(/Routed back to legacy: acme, default, globex, initech\./);
      expect(run.stderr).toMatch(/Data copied \(data-\S+\): [\d,]+ rows of 10 tables/);
    },
    DEMO_TIMEOUT_MS,
  );

  it('seed-demo without --reset refuses to replace the demo, exit 2', async () => {
    const run = await cli(['seed-demo', '--users', '10'], env);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/already holds the demo: pass --reset/);
  });

  it('exits 1 and says how to get a server when nothing answers', async () => {
    const run = await cli(['seed-demo'], {
      ...env,
      SOURCE_DATABASE_URL: 'mysql://root@127.0.0.1:1/shifu_legacy',
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /no database answers at the source database's address mysql:\/\/root@127\.0\.0\.1:1\/shifu_legacy: is the server up, and is source\.url \(or SOURCE_DATABASE_URL\) right\?/,
    );
    expect(run.stderr).toMatch(/apt-get install mariadb-server/);
  });

  it('prints usage for --help and exits 0', async () => {
    const run = await cli(['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Usage: shifu-migrate \[options\] \[command\]/);
  });
});
