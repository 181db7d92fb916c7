import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
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
const target = `smt_int_t_${process.pid}`;
let dir: string;
/** What the secrets hold: never to be seen in any output, report, log or ledger row. */
const SECRET = 'sup3r-s3cret-value-9f8e7d6c';
/** The process environment the phase reads secret references from (as the CLI's own process would have it). */
function setSecrets(names: readonly string[]): void {
  for (const name of ['ACME_GOOGLE_SECRET', 'GLOBEX_GITHUB_SECRET'])
    if (names.includes(name)) process.env[name] = SECRET;
    else delete process.env[name];
}
const tgt = (table: string) => qualified(target, table);

const oauth = {
  acme: [
    {
      provider: 'google',
      clientId: 'acme-client',
      clientSecret: { env: 'ACME_GOOGLE_SECRET' },
      redirectUris: ['https://login.acme.com/callback'],
      allowedEmailDomains: ['acme.com'],
    },
  ],
  globex: [
    {
      provider: 'github',
      clientId: 'globex-client',
      clientSecret: { env: 'GLOBEX_GITHUB_SECRET' },
      redirectUris: ['https://globex.com/oauth/github'],
    },
  ],
};

function writeConfig(integration: unknown, tenants?: unknown): void {
  writeFileSync(
    join(dir, 'shifu-migrate.config.json'),
    JSON.stringify({
      ...demoConfig(),
      source: { url: source.url.raw },
      target: { url: mysqlUrl(target).raw },
      archive: { url: join(dir, 'archive') },
      chunking: { rowsPerChunk: 300, maxConcurrency: 2, copyPath: 'client' },
      integration,
      ...(tenants === undefined ? {} : { tenants }),
    }),
  );
}

const cli = (args: string[]) => runCli(args, { cwd: dir });

async function integrationRows(): Promise<number> {
  let n = 0;
  for (const t of [
    'tenant_oauth_providers',
    'tenant_subscription_plans',
    'tenant_subscriptions',
    'tenant_payment_settings',
  ])
    n += num((await server.query(`SELECT COUNT(*) AS n FROM ${tgt(t)}`))[0] ?? {}, 'n');
  return n;
}

beforeAll(async () => {
  source = await scratchDatabase('int');
  server = mysqlClient('information_schema');
  await seedDemo({ client: server, database: source.name, users: 60, reset: false });
  dir = mkdtempSync(join(tmpdir(), 'smt-int-'));
  setSecrets(['ACME_GOOGLE_SECRET', 'GLOBEX_GITHUB_SECRET']);
  writeConfig({ oauth });
  expect((await cli(['run', 'foundation'])).code).toBe(0);
}, 120_000);

afterAll(async () => {
  setSecrets([]);
  await server.execute(`DROP DATABASE IF EXISTS \`${target}\``);
  await server?.close();
  await source?.drop();
});

describe('integration phase', () => {
  it('refuses a redirect URI on another tenant’s domain, exit 2 naming the field', async () => {
    writeConfig({
      oauth: { acme: [{ ...oauth.acme[0], redirectUris: ['https://login.globex.com/callback'] }] },
    });
    const run = await cli(['run', 'integration', '--json']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('integration.oauth.acme[0].redirectUris[0]');
    expect(run.stderr).toContain("login.globex.com is not on tenant acme's domain acme.com");
    writeConfig({ oauth });
  });

  it('a missing secret reference fails the phase, and its rollback leaves no integration row behind', async () => {
    setSecrets(['ACME_GOOGLE_SECRET']);
    const run = await cli(['run', 'integration', '--json']);
    setSecrets(['ACME_GOOGLE_SECRET', 'GLOBEX_GITHUB_SECRET']);
    expect(run.code).toBe(1);
    expect(run.json.error).toBe('SecretMissing');
    expect(String(run.json.cause)).toContain('env:GLOBEX_GITHUB_SECRET');
    expect(String(run.json.cause)).toContain('is not set');
    expect(await integrationRows()).toBe(0);
    const [last] = await server.query(
      `SELECT status FROM ${tgt('migration_runs')} WHERE phase = 'integration' ORDER BY started_at DESC, run_id DESC LIMIT 1`,
    );
    expect(str(last ?? {}, 'status')).toBe('rolled_back');
  });

  it('writes every tenant’s plan subscription and providers, secrets by reference only, and validates them', async () => {
    const run = await cli(['run', 'integration', '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.json).toMatchObject({ providers: 2, plans: 3, subscriptions: 4 });
    const providers = await server.query(
      `SELECT tenant_bid, provider, client_id, client_secret_ref FROM ${tgt('tenant_oauth_providers')} ORDER BY tenant_bid`,
    );
    expect(providers).toEqual([
      {
        tenant_bid: 'acme',
        provider: 'google',
        client_id: 'acme-client',
        client_secret_ref: 'env:ACME_GOOGLE_SECRET',
      },
      {
        tenant_bid: 'globex',
        provider: 'github',
        client_id: 'globex-client',
        client_secret_ref: 'env:GLOBEX_GITHUB_SECRET',
      },
    ]);
    const subs = await server.query(
      `SELECT s.tenant_bid, p.tier, CAST(p.price AS CHAR) AS price FROM ${tgt('tenant_subscriptions')} s JOIN ${tgt('tenant_subscription_plans')} p ON p.plan_bid = s.plan_bid WHERE s.status = 'active' ORDER BY s.tenant_bid`,
    );
    expect(subs).toEqual([
      { tenant_bid: 'acme', tier: 'enterprise', price: '499.00' },
      { tenant_bid: 'default', tier: 'enterprise', price: '499.00' },
      { tenant_bid: 'globex', tier: 'standard', price: '49.00' },
      { tenant_bid: 'initech', tier: 'standard', price: '49.00' },
    ]);
    // One tenant, as status shows it.
    const one = await cli(['status', '--tenant', 'acme', '--json']);
    expect(one.code, one.stderr).toBe(0);
    expect(one.json.tenant).toMatchObject({
      tenant: 'acme',
      providers: [{ provider: 'google', clientId: 'acme-client', secret: 'env:ACME_GOOGLE_SECRET' }],
      subscription: { name: 'Enterprise', price: '499.00', currency: 'USD', period: 'month' },
    });
    expect(
      (one.json.tenant as { tables: { table: string; rows: number }[] }).tables.find(
        (t) => t.table === 'user_users',
      )?.rows,
    ).toBe(0); // foundation only here: no rows copied yet
    expect((await cli(['status', '--tenant', 'nosuch', '--json'])).code).toBe(2);
    // Run again: nothing of the first run's is written twice or taken over.
    const again = await cli(['run', 'integration', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(await integrationRows()).toBe(2 + 3 + 4);
  });

  it('never lets a secret value into any output, report, event log or ledger row', async () => {
    const run = await cli(['run', 'integration', '--json']);
    expect(JSON.stringify(run)).not.toContain(SECRET);
    const files = (root: string): string[] =>
      readdirSync(root, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? files(join(root, e.name)) : [join(root, e.name)],
      );
    for (const file of files(dir)) expect(readFileSync(file, 'utf8'), file).not.toContain(SECRET);
    const tables = await server.query(
      'SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
      [target],
    );
    for (const { t } of tables) {
      const rows = await server.query(`SELECT * FROM ${tgt(String(t))}`);
      expect(JSON.stringify(rows), String(t)).not.toContain(SECRET);
    }
    expect(files(dir).some((f) => f.endsWith('report.md') && f.includes('integration'))).toBe(true);
  });

  it('rollback --phase integration deletes every integration row and says how many', async () => {
    const before = await integrationRows();
    expect(before).toBe(9);
    const back = await cli(['rollback', '--phase', 'integration', '--yes', '--json']);
    expect(back.code, back.stderr).toBe(0);
    expect(back.json).toMatchObject({ phase: 'integration', rolledBack: true, undone: before });
    expect(back.stderr).toContain(`Rolled back integration: ${before} integration rows deleted`);
    expect(await integrationRows()).toBe(0);
    const open = await server.query(
      `SELECT run_id FROM ${tgt('migration_runs')} WHERE phase = 'integration' AND status NOT IN ('refused', 'rolled_back')`,
    );
    expect(open).toEqual([]);
  });

  it('makes the legacy global login settings the default tenant’s providers, and a missing key rolls back', async () => {
    await server.execute(
      `INSERT INTO ${qualified(source.name, 'sys_configs')} (config_key, config_value) VALUES ('login.wechat.app_id', 'wx-legacy-123')`,
    );
    const legacyLogin = (key: string) => ({
      table: 'sys_configs',
      keyColumn: 'config_key',
      valueColumn: 'config_value',
      providers: [
        {
          provider: 'wechat',
          clientIdKey: key,
          clientSecret: { env: 'ACME_GOOGLE_SECRET' },
          redirectUris: ['https://app.ai-shifu.com/auth/wechat/callback'],
        },
      ],
    });
    const tenants = demoConfig().tenants.map((t) =>
      t.bid === 'default' ? { ...t, domain: 'ai-shifu.com' } : t,
    );
    writeConfig({ oauth, legacyLogin: legacyLogin('login.wechat.no_such_key') }, tenants);
    const missing = await cli(['run', 'integration', '--json']);
    expect(missing.code).toBe(1);
    expect(missing.json.error).toBe('LegacyLoginMissing');
    expect(String(missing.json.cause)).toContain('sys_configs has no login.wechat.no_such_key');
    expect(await integrationRows()).toBe(0);
    writeConfig({ oauth, legacyLogin: legacyLogin('login.wechat.app_id') }, tenants);
    const run = await cli(['run', 'integration', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const [wechat] = await server.query(
      `SELECT client_id, client_secret_ref FROM ${tgt('tenant_oauth_providers')} WHERE tenant_bid = 'default' AND provider = 'wechat'`,
    );
    expect(wechat).toEqual({ client_id: 'wx-legacy-123', client_secret_ref: 'env:ACME_GOOGLE_SECRET' });
    writeConfig({ oauth });
  });

  it('assigns legacy per-owner payment settings to their owner’s tenant, each to exactly one', async () => {
    expect((await cli(['run', 'data'])).code).toBe(0);
    const owners = await server.query(
      `SELECT user_bid, tenant_bid FROM ${tgt('user_users')} WHERE tenant_bid IN ('acme', 'globex') GROUP BY user_bid, tenant_bid ORDER BY tenant_bid LIMIT 2`,
    );
    await server.execute(
      `CREATE TABLE ${qualified(source.name, 'creator_pay_settings')} (id BIGINT PRIMARY KEY, creator_bid VARCHAR(32), merchant_id VARCHAR(64))`,
    );
    await server.execute(
      `INSERT INTO ${qualified(source.name, 'creator_pay_settings')} VALUES (1, ?, 'm-1'), (2, ?, 'm-2'), (3, 'no-such-user', 'm-3')`,
      [str(owners[0] ?? {}, 'user_bid'), str(owners[1] ?? {}, 'user_bid')],
    );
    writeConfig({
      oauth,
      billing: [{ table: 'creator_pay_settings', keyColumn: 'id', ownerColumn: 'creator_bid' }],
    });
    const run = await cli(['run', 'integration', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const rows = await server.query(
      `SELECT source_key, tenant_bid FROM ${tgt('tenant_payment_settings')} ORDER BY source_key`,
    );
    // The owner's tenant; an owner with no tenant goes to the default tenant (onUnmapped default).
    expect(rows).toEqual([
      { source_key: '1', tenant_bid: str(owners[0] ?? {}, 'tenant_bid') },
      { source_key: '2', tenant_bid: str(owners[1] ?? {}, 'tenant_bid') },
      { source_key: '3', tenant_bid: 'default' },
    ]);
    expect(run.json.paymentSettings).toBe(3);
    writeConfig({ oauth });
  }, 120_000);
});
