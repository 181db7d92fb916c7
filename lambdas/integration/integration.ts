import { createHash } from 'node:crypto';
import { ident, qualified } from '../core/identifiers.ts';
import { releaseLock } from '../core/ledger/lock.ts';
import {
  assertRunOwner,
  beginOwnRollback,
  beginRun,
  enterRollback,
  failStart,
} from '../core/ledger/phase-run.ts';
import { setRunStatus, succeedRun, targetHasTable } from '../core/ledger/runs.ts';
import { assertSourceIsNotTarget } from '../core/preflight.ts';
import { num, str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import { IntegrationInvalid, IntegrationNotReady, LegacyLoginMissing, SecretMissing } from './errors.ts';
import { refText, type SecretCheck } from './secrets.ts';

/**
 * The integration phase: per tenant, its identity providers (client secrets by reference only), the subscription
 * plan of each tier and one active subscription per tenant. Every row it writes carries its run id, and a row
 * another run wrote is never changed: its rollback deletes exactly its own rows.
 */

const TABLES = [
  'tenant_oauth_providers',
  'tenant_subscription_plans',
  'tenant_subscriptions',
  'tenant_payment_settings',
] as const;

/** A plan's stable id: the tier and the plan's terms (a changed price is another plan). */
export function planBid(
  tier: string,
  plan: { name: string; price: string; currency: string; period: string },
) {
  const digest = createHash('sha256')
    .update(JSON.stringify([tier, plan.name, plan.price, plan.currency, plan.period]))
    .digest('hex');
  return `${tier}-${digest.slice(0, 16)}`.slice(0, 32);
}

export async function startIntegration(deps: TaskDeps, execution: string): Promise<{ runId: string }> {
  await assertSourceIsNotTarget(deps);
  const start = await beginRun(deps.target, 'integration', execution, { resumable: false });
  try {
    for (const table of [...TABLES, 'tenant_tenants'])
      if (!(await targetHasTable(deps.targetServer, deps.targetUrl.database, table)))
        throw new IntegrationNotReady(
          `${table} is not on the target: run foundation (it creates the tenant tables, these included)`,
        );
    return { runId: start.runId };
  } catch (error) {
    await failStart(deps.target, { runId: start.runId, resumed: false }, execution, error);
    throw error;
  }
}

export interface Applied {
  readonly plans: number;
  readonly subscriptions: number;
  readonly providers: number;
  readonly paymentSettings: number;
}

/**
 * Legacy per-owner payment settings, each assigned to its owner's tenant: the tenant data gave that user on the target
 * (a user with rows in two tenants is a problem validation reports; an owner with no tenant follows `onUnmapped`'s
 * default tenant, else is reported). One row per setting (the key is unique): never two tenants.
 */
async function assignPaymentSettings(deps: TaskDeps, runId: string): Promise<{ written: number }> {
  let written = 0;
  for (const b of deps.config.integration.billing) {
    const rows = await deps.source.query(
      `SELECT ${ident(b.keyColumn)} AS k, ${ident(b.ownerColumn)} AS o FROM ${qualified(deps.sourceUrl.database, b.table)} ORDER BY ${ident(b.keyColumn)} LIMIT 100000`,
    );
    const owners = [...new Set(rows.map((r) => (r.o === null ? '' : str(r, 'o'))).filter((o) => o !== ''))];
    const tenants = new Map<string, Set<string>>();
    for (let i = 0; i < owners.length; i += 500) {
      const part = owners.slice(i, i + 500);
      for (const r of await deps.target.query(
        `SELECT DISTINCT user_bid, tenant_bid FROM user_users WHERE user_bid IN (${part.map(() => '?').join(', ')})`,
        part,
      )) {
        const set = tenants.get(str(r, 'user_bid')) ?? new Set<string>();
        set.add(str(r, 'tenant_bid'));
        tenants.set(str(r, 'user_bid'), set);
      }
    }
    for (const r of rows) {
      const owner = r.o === null ? '' : str(r, 'o');
      const found = [...(tenants.get(owner) ?? [])];
      const tenant =
        found.length === 1
          ? found[0]
          : found.length === 0 && deps.config.onUnmapped === 'default'
            ? deps.config.defaultTenant
            : undefined;
      if (tenant === undefined)
        throw new IntegrationInvalid(
          `${b.table} ${String(r.k)}: its owner ${owner || '(none)'} ${found.length > 1 ? `is in ${found.length} tenants (${found.join(', ')})` : 'has no tenant'}, so the setting cannot go to exactly one: fix the owner's rows, or the rules`,
        );
      written += (
        await deps.target.execute(
          'INSERT IGNORE INTO tenant_payment_settings (source_table, source_key, owner_bid, tenant_bid, run_id) VALUES (?, ?, ?, ?, ?)',
          [b.table, String(r.k), owner, tenant, runId],
        )
      ).affectedRows;
    }
  }
  return { written };
}

/**
 * Plans, subscriptions, then each tenant's providers, each secret reference checked (its value never read) just
 * before its row is written: a missing one fails the phase after what came before was written, and the rollback
 * removes exactly that.
 */
export async function applyIntegration(
  deps: TaskDeps,
  runId: string,
  execution: string,
  secrets: SecretCheck,
): Promise<Applied> {
  await assertRunOwner(deps.target, runId, execution);
  const { plans, oauth } = deps.config.integration;
  let written = { plans: 0, subscriptions: 0, providers: 0, paymentSettings: 0 };
  for (const [tier, plan] of Object.entries(plans)) {
    const r = await deps.target.execute(
      'INSERT IGNORE INTO tenant_subscription_plans (plan_bid, tier, name, price, currency, period, seats, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      [
        planBid(tier, plan),
        tier,
        plan.name,
        plan.price,
        plan.currency,
        plan.period,
        plan.seats ?? null,
        runId,
      ],
    );
    written = { ...written, plans: written.plans + r.affectedRows };
  }
  for (const tenant of deps.config.tenants) {
    const plan = plans[tenant.tier];
    const r = await deps.target.execute(
      "INSERT IGNORE INTO tenant_subscriptions (subscription_bid, tenant_bid, plan_bid, status, run_id) VALUES (?, ?, ?, 'active', ?)",
      [
        `${tenant.bid}-${planBid(tenant.tier, plan)}`.slice(0, 64),
        tenant.bid,
        planBid(tenant.tier, plan),
        runId,
      ],
    );
    written = { ...written, subscriptions: written.subscriptions + r.affectedRows };
  }
  written = { ...written, paymentSettings: (await assignPaymentSettings(deps, runId)).written };
  // The legacy global login settings: the default tenant's providers, their client ids read from legacy by key.
  const login = deps.config.integration.legacyLogin;
  const legacy: [string, (typeof oauth)[string]][] = [];
  if (login !== undefined) {
    const keys = login.providers.map((p) => p.clientIdKey);
    const rows = await deps.source.query(
      `SELECT ${ident(login.keyColumn)} AS k, ${ident(login.valueColumn)} AS v FROM ${qualified(deps.sourceUrl.database, login.table)} WHERE ${ident(login.keyColumn)} IN (${keys.map(() => '?').join(', ')})`,
      keys,
    );
    const values = new Map(rows.map((r) => [str(r, 'k'), r.v === null ? '' : str(r, 'v')]));
    legacy.push([
      deps.config.defaultTenant,
      login.providers.map((p) => {
        const clientId = values.get(p.clientIdKey) ?? '';
        if (clientId === '')
          throw new LegacyLoginMissing(
            `integration.legacyLogin: ${login.table} has no ${p.clientIdKey} (${login.keyColumn}) with a value, so the legacy ${p.provider} login has no client id for tenant ${deps.config.defaultTenant}: fix clientIdKey, or drop that provider`,
          );
        return { ...p, clientId };
      }),
    ]);
  }
  for (const [tenant, providers] of [...Object.entries(oauth), ...legacy]) {
    for (const p of providers) {
      const missing = await secrets.missing(p.clientSecret);
      if (missing !== null)
        throw new SecretMissing(
          `integration.oauth.${tenant} ${p.provider}: the client secret reference ${refText(p.clientSecret)} is missing (${missing}): create it, or fix the reference`,
        );
      const r = await deps.target.execute(
        'INSERT IGNORE INTO tenant_oauth_providers (tenant_bid, provider, client_id, client_secret_ref, redirect_uris, allowed_email_domains, run_id) VALUES (?, ?, ?, ?, ?, ?, ?)',
        [
          tenant,
          p.provider,
          p.clientId,
          refText(p.clientSecret),
          JSON.stringify(p.redirectUris),
          JSON.stringify(p.allowedEmailDomains),
          runId,
        ],
      );
      written = { ...written, providers: written.providers + r.affectedRows };
    }
  }
  return written;
}

export interface IntegrationReport {
  readonly runId: string;
  readonly tenants: {
    readonly tenant: string;
    readonly providers: string[];
    readonly activeSubscriptions: number;
    readonly plan: string | null;
  }[];
  readonly problems: string[];
}

/** Every tenant has the providers its config lists and exactly one active subscription; the report goes to the archive. */
export async function validateIntegration(
  deps: TaskDeps,
  runId: string,
  execution: string,
): Promise<{ report: string; problems: number }> {
  await assertRunOwner(deps.target, runId, execution);
  const problems: string[] = [];
  const tenants: IntegrationReport['tenants'][number][] = [];
  for (const t of deps.config.tenants) {
    const providers = (
      await deps.target.query(
        'SELECT provider FROM tenant_oauth_providers WHERE tenant_bid = ? ORDER BY provider',
        [t.bid],
      )
    ).map((r) => str(r, 'provider'));
    const subs = await deps.target.query(
      "SELECT plan_bid FROM tenant_subscriptions WHERE tenant_bid = ? AND status = 'active'",
      [t.bid],
    );
    const wanted = [
      ...(deps.config.integration.oauth[t.bid] ?? []),
      ...(t.bid === deps.config.defaultTenant ? (deps.config.integration.legacyLogin?.providers ?? []) : []),
    ];
    for (const p of wanted)
      if (!providers.includes(p.provider)) problems.push(`${t.bid} has no ${p.provider} provider`);
    if (subs.length !== 1) problems.push(`${t.bid} has ${subs.length} active subscriptions, not 1`);
    tenants.push({
      tenant: t.bid,
      providers,
      activeSubscriptions: subs.length,
      plan: subs[0] === undefined ? null : str(subs[0], 'plan_bid'),
    });
  }
  for (const r of await deps.target.query(
    'SELECT source_table, source_key, COUNT(DISTINCT tenant_bid) AS n FROM tenant_payment_settings GROUP BY source_table, source_key HAVING n > 1',
  ))
    problems.push(`${str(r, 'source_table')} ${str(r, 'source_key')} is assigned to ${num(r, 'n')} tenants`);
  const report: IntegrationReport = { runId, tenants, problems };
  const key = `reports/integration/${runId}`;
  await deps.archive.put(`${key}/report.json`, JSON.stringify(report, null, 2));
  await deps.archive.put(
    `${key}/report.md`,
    [
      `# Integration ${runId}`,
      '',
      "The migration's report: [../../final/latest/report.html](../../final/latest/report.html); `shifu-migrate report` writes it.",
      '',
      problems.length === 0
        ? '**Valid**: every tenant has its providers and one active subscription.'
        : `**Invalid**: ${problems.join('; ')}`,
      '',
      '| tenant | providers | active subscriptions | plan |',
      '|---|---|---:|---|',
      ...tenants.map(
        (t) =>
          `| ${t.tenant} | ${t.providers.join(', ') || '-'} | ${t.activeSubscriptions} | ${t.plan ?? '-'} |`,
      ),
      '',
    ].join('\n'),
  );
  if (problems.length > 0) throw new IntegrationInvalid(problems.join('; '));
  return { report: `${key}/report.md`, problems: 0 };
}

export async function finishIntegration(deps: TaskDeps, runId: string, execution: string) {
  await assertRunOwner(deps.target, runId, execution);
  const [counts] = await deps.target.query(
    `SELECT (SELECT COUNT(*) FROM tenant_oauth_providers) AS providers, (SELECT COUNT(*) FROM tenant_subscription_plans) AS plans,
            (SELECT COUNT(*) FROM tenant_subscriptions WHERE status = 'active') AS subscriptions,
            (SELECT COUNT(*) FROM tenant_payment_settings) AS payment_settings`,
  );
  await succeedRun(deps.target, runId);
  await releaseLock(deps.target, execution, runId);
  return {
    runId,
    providers: num(counts ?? {}, 'providers'),
    plans: num(counts ?? {}, 'plans'),
    subscriptions: num(counts ?? {}, 'subscriptions'),
    paymentSettings: num(counts ?? {}, 'payment_settings'),
  };
}

/**
 * `rollback --phase integration` (the rollback state machine, holding the lock as `rollbackRunId`): every
 * integration row not rolled back yet is deleted (each carries the run that wrote it), and those runs end rolled back.
 */
export async function rollbackIntegrationPhase(
  deps: TaskDeps,
  rollbackRunId: string,
  execution: string,
): Promise<{ rolledBack: boolean; undone: number }> {
  await enterRollback(deps.target, 'integration', execution, { kind: 'phase', rollbackRunId });
  let undone = 0;
  if (await targetHasTable(deps.targetServer, deps.targetUrl.database, 'tenant_subscriptions'))
    await deps.target.transaction(async (tx) => {
      for (const table of TABLES)
        undone += (
          await tx.execute(
            `DELETE FROM ${table} WHERE run_id IN (SELECT run_id FROM migration_runs WHERE phase = 'integration')`,
          )
        ).affectedRows;
      await tx.execute(
        "UPDATE migration_runs SET status = 'rolled_back' WHERE phase = 'integration' AND status NOT IN ('refused', 'rolled_back')",
      );
    });
  await setRunStatus(deps.target, rollbackRunId, 'succeeded', { from: ['running'] });
  await releaseLock(deps.target, execution, rollbackRunId);
  return { rolledBack: true, undone };
}

/** The phase's own Catch: exactly the rows this run wrote are deleted; the run ends rolled back. */
export async function rollbackIntegration(
  deps: TaskDeps,
  runId: string | null,
  execution: string,
  error: { Error: string; Cause?: string | undefined } | undefined,
): Promise<{ runId: string | null; removed: number }> {
  if (runId === null) return { runId, removed: 0 };
  await beginOwnRollback(deps.target, 'integration', runId, execution, error);
  let removed = 0;
  await deps.target.transaction(async (tx) => {
    for (const table of TABLES)
      removed += (await tx.execute(`DELETE FROM ${table} WHERE run_id = ?`, [runId])).affectedRows;
  });
  await setRunStatus(deps.target, runId, 'rolled_back', { from: ['rolling_back'] });
  await releaseLock(deps.target, execution, runId);
  return { runId, removed };
}
