import type { ConfigInput } from '../../lambdas/core/config/schema.ts';
import { bid, userIdentity } from './generate.ts';

/** Where the demo lives when there is no config file. */
export const DEMO_SOURCE_URL = 'mysql://root@127.0.0.1:3306/shifu_legacy';
export const DEMO_TARGET_URL = 'mysql://root@127.0.0.1:3306/shifu_saas';
export const DEMO_ARCHIVE_URL = './.shifu-migrate/archive';

/** A few phone-only users that Initech named explicitly: the "explicit key list" rule of the demo. */
export function initechPhoneUsers(): string[] {
  const bids: string[] = [];
  for (let i = 3; i < 400 && bids.length < 10; i += 10) {
    if (userIdentity(i).email === null) bids.push(bid('user', i));
  }
  return bids;
}

/**
 * The config used when there is none: the demo's databases, four tenants, and a tenant rule for every
 * demo table (by e-mail domain, by explicit keys, by reference, global). `examples/demo.config.json`
 * holds the same, as a starting point for a real config.
 */
export function demoConfig(): ConfigInput {
  const byUser = {
    by: 'reference',
    column: 'user_bid',
    references: { table: 'user_users', column: 'user_bid' },
  } as const;
  return {
    source: { url: DEMO_SOURCE_URL },
    target: { url: DEMO_TARGET_URL },
    archive: { url: DEMO_ARCHIVE_URL },
    tenants: [
      { bid: 'default', name: 'Default Tenant', tier: 'enterprise' },
      { bid: 'acme', name: 'Acme Corporation', domain: 'acme.com', tier: 'enterprise' },
      { bid: 'globex', name: 'Globex', domain: 'globex.com', tier: 'standard' },
      { bid: 'initech', name: 'Initech 中国', domain: 'initech.cn', tier: 'standard' },
    ],
    defaultTenant: 'default',
    onUnmapped: 'default',
    tables: {
      user_users: {
        tenant: [
          {
            by: 'emailDomain',
            column: 'email',
            domains: { 'acme.com': 'acme', 'globex.com': 'globex', 'initech.cn': 'initech' },
            subdomains: true,
          },
          { by: 'keys', column: 'user_bid', tenants: { initech: initechPhoneUsers() } },
        ],
      },
      user_auth_credentials: { tenant: byUser },
      shifu_shifus: {
        tenant: {
          by: 'reference',
          column: 'created_user_bid',
          references: { table: 'user_users', column: 'user_bid' },
        },
      },
      shifu_outlines: {
        tenant: {
          by: 'reference',
          column: 'shifu_bid',
          references: { table: 'shifu_shifus', column: 'shifu_bid' },
        },
      },
      order_orders: { tenant: byUser, onUnmapped: 'quarantine' },
      pay_payments: {
        tenant: {
          by: 'reference',
          column: 'order_bid',
          references: { table: 'order_orders', column: 'order_bid' },
        },
        onUnmapped: 'quarantine',
      },
      study_records: { tenant: byUser },
      learn_progress_records: {
        tenant: {
          by: 'reference',
          column: 'shifu_bid',
          references: { table: 'shifu_shifus', column: 'shifu_bid' },
        },
      },
      learn_generated_blocks: {
        tenant: {
          by: 'reference',
          column: 'progress_bid',
          references: { table: 'learn_progress_records', column: 'progress_bid' },
        },
      },
      sys_configs: { global: true },
    },
    chunking: { rowsPerChunk: 5_000, maxConcurrency: 4, copyPath: 'auto' },
    // Both demo databases share one server: the demo's application (simulate-traffic) sets each side's id series
    // on its own sessions.
    // Its application's writes take milliseconds: a second settles them before each drain.
    application: { idSeries: 'sessions', settleSeconds: 1 },
    // The demo's legacy data holds orphans (quarantined) and users whose tenant changes (conflicts) on purpose, and
    // raises an alarm during the hybrid period: its go-live accepts them and waits for no quiet time. Your own
    // migration reviews them first (golive.accept stays false) and keeps alarmsQuietMinutes.
    golive: {
      accept: { quarantined: true, conflicts: true },
      alarmsQuietMinutes: 0,
      smokeQueries: [
        {
          name: 'own courses',
          sql: 'SELECT tenant_bid FROM shifu_shifus WHERE tenant_bid = :tenant',
          minRows: 0,
          tenantColumn: 'tenant_bid',
        },
      ],
    },
    // Identity providers of two tenants; their client secrets are environment variables (the demo sets them).
    integration: {
      oauth: {
        acme: [
          {
            provider: 'google',
            clientId: 'acme-demo.apps.googleusercontent.com',
            clientSecret: { env: 'DEMO_ACME_GOOGLE_SECRET' },
            redirectUris: ['https://acme.com/auth/google/callback'],
            allowedEmailDomains: ['acme.com'],
          },
        ],
        globex: [
          {
            provider: 'github',
            clientId: 'globex-demo',
            clientSecret: { env: 'DEMO_GLOBEX_GITHUB_SECRET' },
            redirectUris: ['https://globex.com/auth/github/callback'],
          },
        ],
      },
    },
  };
}
