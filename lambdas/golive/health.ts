import { probe } from '../application/gates.ts';
import { nowText } from '../core/ledger/runs.ts';
import { openSql } from '../core/sql/open.ts';
import type { SqlClient, SqlSession } from '../core/sql/port.ts';
import { bindTenant } from '../core/sql/quoted.ts';
import { num, str } from '../core/sql/rows.ts';
import type { TaskDeps } from '../core/task.ts';
import type { Verification } from '../data/verify.ts';

/** What a health check is about. */
export type HealthKind = 'http' | 'database' | 'isolation' | 'verify' | 'alarms' | 'integration' | 'smoke';

/** One named check of the go-live health verification, with what it saw. */
export interface HealthCheck {
  readonly name: string;
  readonly kind: HealthKind;
  readonly tenant: string | null;
  readonly passed: boolean;
  readonly detail: string;
  readonly ms: number;
}

/** Records checks in the ledger (`migration_health_checks`): the report lists them. */
export async function recordChecks(
  target: SqlSession,
  runId: string,
  checks: readonly HealthCheck[],
): Promise<void> {
  for (const c of checks)
    await target.execute(
      'INSERT INTO migration_health_checks (run_id, name, kind, tenant_bid, passed, detail, duration_ms, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      [
        runId,
        c.name.slice(0, 120),
        c.kind,
        c.tenant,
        c.passed ? 1 : 0,
        c.detail.slice(0, 1000),
        Math.round(c.ms),
        nowText(),
      ],
    );
}

async function timed(
  name: string,
  kind: HealthKind,
  tenant: string | null,
  work: () => Promise<{ passed: boolean; detail: string }>,
): Promise<HealthCheck> {
  const began = performance.now();
  try {
    const { passed, detail } = await work();
    return { name, kind, tenant, passed, detail, ms: performance.now() - began };
  } catch (error) {
    return {
      name,
      kind,
      tenant,
      passed: false,
      detail: (error as Error).message,
      ms: performance.now() - began,
    };
  }
}

/** The verification's findings as checks: each table's checksum (both sides) and its tenant isolation. */
export function verificationChecks(verification: Verification, ms: number): HealthCheck[] {
  const checks: HealthCheck[] = [];
  for (const t of verification.tables) {
    checks.push({
      name: `checksum ${t.table}`,
      kind: 'verify',
      tenant: null,
      passed: t.checksum.equal,
      detail: t.checksum.equal
        ? `${t.targetRows} rows, legacy and multi-tenant equal (${t.checksum.target})${t.quarantined > 0 ? `; ${t.quarantined} quarantined` : ''}${t.conflicts > 0 ? `; ${t.conflicts} in conflict` : ''}${t.changedSinceDrain > 0 ? `; ${t.changedSinceDrain} changed on the multi-tenant side since the drain (left out)` : ''}`
        : `legacy ${t.checksum.source}, multi-tenant ${t.checksum.target}`,
      ms: ms / Math.max(1, verification.tables.length),
    });
    if (t.isolation !== null) {
      const bad = t.isolation.unknownTenant + t.isolation.ruleMismatch + t.isolation.parentMismatch;
      checks.push({
        name: `isolation ${t.table}`,
        kind: 'isolation',
        tenant: null,
        passed: bad === 0,
        detail:
          bad === 0
            ? 'every row carries the tenant its rules give it'
            : `${t.isolation.unknownTenant} rows of an unknown tenant, ${t.isolation.ruleMismatch} not the tenant their rule gives, ${t.isolation.parentMismatch} not their parent's`,
        ms: 0,
      });
    }
  }
  return checks;
}

/** A database answers, with room left in its connections; a replica keeps up. */
async function databaseCheck(
  deps: TaskDeps,
  side: string,
  client: SqlClient,
  replicas: boolean,
): Promise<HealthCheck> {
  return timed(`database ${side}`, 'database', null, async () => {
    const began = performance.now();
    await client.query('SELECT 1 AS ok');
    const ms = Math.round(performance.now() - began);
    const status = await client.query("SHOW GLOBAL STATUS LIKE 'Threads_connected'");
    const vars = await client.query("SHOW GLOBAL VARIABLES LIKE 'max_connections'");
    const used = Number(status[0]?.Value ?? status[0]?.VALUE ?? 0);
    const max = Number(vars[0]?.Value ?? vars[0]?.VALUE ?? 0);
    const share = max > 0 ? used / max : 0;
    const bound = deps.config.golive.maxConnectionsUsed;
    const problems: string[] = [];
    if (share > bound)
      problems.push(
        `${used} of ${max} connections in use (${Math.round(share * 100)}%, bound ${Math.round(bound * 100)}%)`,
      );
    let replica = '';
    if (replicas) {
      const lag = await replicaLag(client);
      replica = `; ${lag.detail}`;
      if (lag.seconds === null && lag.replica) problems.push(lag.detail);
      if (lag.seconds !== null && lag.seconds > deps.config.golive.maxReplicaLagSeconds)
        problems.push(`${lag.detail} (bound ${deps.config.golive.maxReplicaLagSeconds} s)`);
    }
    return problems.length > 0
      ? { passed: false, detail: problems.join('; ') }
      : { passed: true, detail: `answers in ${ms} ms; ${used} of ${max} connections in use${replica}` };
  });
}

/** How far the server, when it is a replica, is behind its source (MySQL 8.0.22+, MariaDB 10.5+, older forms too). */
async function replicaLag(
  client: SqlClient,
): Promise<{ replica: boolean; seconds: number | null; detail: string }> {
  for (const statement of ['SHOW REPLICA STATUS', 'SHOW SLAVE STATUS']) {
    let rows: Awaited<ReturnType<SqlClient['query']>>;
    try {
      rows = await client.query(statement);
    } catch (error) {
      const message = (error as Error).message;
      if (/denied|privilege/i.test(message))
        return {
          replica: false,
          seconds: null,
          detail: `replica status not readable (${message.slice(0, 120)}): not checked`,
        };
      continue;
    }
    if (rows.length === 0) return { replica: false, seconds: null, detail: 'not a replica' };
    const row = rows[0] ?? {};
    const value = row.Seconds_Behind_Source ?? row.Seconds_Behind_Master ?? null;
    return value === null
      ? {
          replica: true,
          seconds: null,
          detail: 'a replica whose replication is stopped (Seconds_Behind_Source NULL)',
        }
      : { replica: true, seconds: Number(value), detail: `a replica ${Number(value)} s behind its source` };
  }
  return {
    replica: false,
    seconds: null,
    detail: 'replica status not available on this server: not checked',
  };
}

/**
 * Alarms quiet: none in ALARM now (the ledger's, and CloudWatch's on AWS), and none of the ledger's raised within
 * `golive.alarmsQuietMinutes` (an alarm cleared a minute ago was not quiet for fifteen).
 */
async function alarmsCheck(deps: TaskDeps): Promise<HealthCheck> {
  return timed('alarms quiet', 'alarms', null, async () => {
    const minutes = deps.config.golive.alarmsQuietMinutes;
    const since = nowText(new Date(Date.now() - minutes * 60_000));
    const rows = await deps.target.query(
      "SELECT name, state, changed_at FROM migration_alarms WHERE state = 'ALARM' OR changed_at > ? ORDER BY name",
      [since],
    );
    const firing = [
      ...rows.map((r) =>
        str(r, 'state') === 'ALARM'
          ? `${str(r, 'name')} in ALARM`
          : `${str(r, 'name')} changed at ${str(r, 'changed_at')} UTC, within ${minutes} min`,
      ),
      ...((await deps.alarms?.firing()) ?? []).map((a) => `${a.name} in ALARM (CloudWatch)`),
    ];
    return firing.length > 0
      ? { passed: false, detail: firing.join('; ') }
      : {
          passed: true,
          detail: `no alarm raised in the last ${minutes} min${deps.alarms === undefined ? '' : ', none in ALARM on CloudWatch'}`,
        };
  });
}

/** Each tenant's identity providers (as configured) and one active subscription. */
async function integrationChecks(deps: TaskDeps): Promise<HealthCheck[]> {
  const checks: HealthCheck[] = [];
  for (const t of deps.config.tenants) {
    checks.push(
      await timed(`oauth and billing ${t.bid}`, 'integration', t.bid, async () => {
        const providers = (
          await deps.target.query('SELECT provider FROM tenant_oauth_providers WHERE tenant_bid = ?', [t.bid])
        ).map((r) => str(r, 'provider'));
        const wanted = [
          ...(deps.config.integration.oauth[t.bid] ?? []),
          ...(t.bid === deps.config.defaultTenant
            ? (deps.config.integration.legacyLogin?.providers ?? [])
            : []),
        ].map((p) => p.provider);
        const [subs] = await deps.target.query(
          "SELECT COUNT(*) AS n FROM tenant_subscriptions WHERE tenant_bid = ? AND status = 'active'",
          [t.bid],
        );
        const active = subs === undefined ? 0 : num(subs, 'n');
        const missing = wanted.filter((p) => !providers.includes(p));
        const problems = [
          ...missing.map((p) => `no ${p} provider`),
          ...(active === 1 ? [] : [`${active} active subscriptions, not 1`]),
        ];
        return problems.length > 0
          ? { passed: false, detail: `${problems.join('; ')}: run integration again` }
          : {
              passed: true,
              detail: `${providers.length === 0 ? 'no identity provider configured' : `providers ${providers.sort().join(', ')}`}; one active subscription`,
            };
      }),
    );
  }
  return checks;
}

/** Thrown to end a smoke query's transaction with a rollback: a query that wrote leaves nothing. */
class ReadOnly extends Error {
  readonly rows: Awaited<ReturnType<SqlClient['query']>>;
  constructor(rows: Awaited<ReturnType<SqlClient['query']>>) {
    super('rolled back');
    this.rows = rows;
  }
}

/**
 * The config's smoke queries, once per tenant, each in a transaction that is rolled back; on mysql2 through a session
 * opened read-only at the server, so a query that would write (a function with side effects, INTO OUTFILE) fails.
 */
async function smokeChecks(deps: TaskDeps): Promise<HealthCheck[]> {
  if (deps.config.golive.smokeQueries.length === 0) return [];
  const client =
    deps.targetUrl.kind === 'mysql'
      ? openSql(deps.targetUrl, { label: 'target', readOnly: true })
      : deps.target;
  try {
    return await smokeChecksOn(deps, client);
  } finally {
    if (client !== deps.target) await client.close();
  }
}

async function smokeChecksOn(deps: TaskDeps, client: SqlClient): Promise<HealthCheck[]> {
  const checks: HealthCheck[] = [];
  for (const query of deps.config.golive.smokeQueries) {
    const { sql, uses } = bindTenant(query.sql);
    for (const t of deps.config.tenants) {
      checks.push(
        await timed(`smoke ${query.name} ${t.bid}`, 'smoke', t.bid, async () => {
          let rows: Awaited<ReturnType<SqlClient['query']>> = [];
          try {
            await client.transaction(async (tx) => {
              throw new ReadOnly(
                await tx.query(
                  sql,
                  Array.from({ length: uses }, () => t.bid),
                ),
              );
            });
          } catch (error) {
            if (!(error instanceof ReadOnly)) throw error;
            rows = error.rows;
          }
          const problems: string[] = [];
          if (rows.length < query.minRows) problems.push(`${rows.length} rows, fewer than ${query.minRows}`);
          if (query.tenantColumn !== undefined) {
            const column = query.tenantColumn;
            if (rows.length > 0 && !(column in (rows[0] ?? {})))
              problems.push(`the result has no column ${column}`);
            else {
              const others = rows.filter((r) => r[column] !== t.bid);
              if (others.length > 0)
                problems.push(
                  `${others.length} rows of other tenants (${[...new Set(others.map((r) => String(r[column])))].slice(0, 3).join(', ')})`,
                );
            }
          }
          return problems.length > 0
            ? { passed: false, detail: problems.join('; ') }
            : {
                passed: true,
                detail: `${rows.length} rows${query.tenantColumn === undefined ? '' : `, all of ${t.bid}`}`,
              };
        }),
      );
    }
  }
  return checks;
}

/**
 * The health verification before the archive: the HTTP probes, both databases, alarms quiet, each tenant's
 * identity providers and subscription, and the smoke queries per tenant. Every check runs and is reported, failed
 * or not.
 */
export async function healthChecks(deps: TaskDeps): Promise<HealthCheck[]> {
  const probes = deps.config.golive.probes ?? deps.config.application.probes;
  const http = await Promise.all(
    probes.map(async (p) => {
      const began = performance.now();
      const gate = await probe(p);
      return {
        name: gate.name,
        kind: 'http' as const,
        tenant: null,
        passed: gate.open,
        detail: gate.detail,
        ms: performance.now() - began,
      };
    }),
  );
  return [
    ...http,
    await databaseCheck(deps, 'legacy', deps.source, false),
    await databaseCheck(deps, 'multi-tenant', deps.target, true),
    await alarmsCheck(deps),
    ...(await integrationChecks(deps)),
    ...(await smokeChecks(deps)),
  ];
}
