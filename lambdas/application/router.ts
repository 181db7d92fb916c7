import {
  CreateRuleCommand,
  DeleteRuleCommand,
  DescribeRulesCommand,
  type ElasticLoadBalancingV2Client,
  type Rule,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import type { ApplicationConfig, Config } from '../core/config/schema.ts';
import type { SqlClient, SqlSession } from '../core/sql/port.ts';
import { str, strOrNull } from '../core/sql/rows.ts';

/**
 * The traffic router port: where each tenant's requests go. `legacy` (the single-tenant system owns its writes),
 * `saas` (the multi-tenant one does), `paused` (a switch or a rollback is draining the tenant's rows: its writes
 * wait, reads may go to the side that owned it). The routing table is always written (it is what the AI-Shifu
 * application's router reads: docs/routing.md); a load balancer adapter, when configured, follows it.
 */
export type Route = 'legacy' | 'saas' | 'paused';

export interface RouteChange {
  readonly tenant: string;
  readonly route: Route;
  readonly runId: string;
  readonly reason: string;
}

export interface TrafficRouter {
  readonly name: string;
  apply(change: RouteChange): Promise<void>;
}

/** The routing table in the target database: the current route per tenant, and a history row per change. */
export function routingTable(target: SqlClient): TrafficRouter {
  return {
    name: 'routing table',
    async apply(change) {
      await target.transaction(async (tx) => {
        const [now] = await tx.query(
          "SELECT target FROM traffic_routing WHERE scope = 'tenant' AND tenant_bid = ? FOR UPDATE",
          [change.tenant],
        );
        if (now !== undefined && str(now, 'target') === change.route) return;
        await tx.execute(
          `INSERT INTO traffic_routing (scope, tenant_bid, target, weight) VALUES ('tenant', ?, ?, 100)
           ON DUPLICATE KEY UPDATE target = VALUES(target), weight = VALUES(weight)`,
          [change.tenant, change.route],
        );
        await tx.execute(
          "INSERT INTO traffic_routing_history (run_id, scope, tenant_bid, target, weight, reason) VALUES (?, 'tenant', ?, ?, 100, ?)",
          [change.runId, change.tenant, change.route, change.reason.slice(0, 255)],
        );
      });
    },
  };
}

/** The route the routing table gives a tenant: its own row, else the global one, else legacy. */
export async function currentRoute(target: SqlSession, tenant: string): Promise<Route> {
  const rows = await target.query(
    "SELECT scope, target FROM traffic_routing WHERE (scope = 'tenant' AND tenant_bid = ?) OR scope = 'global'",
    [tenant],
  );
  const own =
    rows.find((r) => str(r, 'scope') === 'tenant') ?? rows.find((r) => str(r, 'scope') === 'global');
  const route = own === undefined ? 'legacy' : str(own, 'target');
  return route === 'saas' || route === 'paused' ? route : 'legacy';
}

/** The tag our listener rules carry: the tenant they route. Rules without it, or outside our priorities, are never ours. */
export const RULE_TAG = 'shifu-migrate:tenant';

/** Raised when the listener has no free priority in the configured range. */
export class NoRulePriority extends Error {
  override name = 'NoRulePriority';
}

type LoadBalancerConfig = NonNullable<ApplicationConfig['loadBalancer']>;

/**
 * An Application Load Balancer listener: per switched tenant, a rule matching the tenant's domain (host-header)
 * that forwards to the multi-tenant target group, at a priority inside the configured range; removed when the
 * tenant goes back to legacy. The ledger (`migration_alb_rules`) remembers each rule the tool made; a rule found
 * on the listener inside our range, for the tenant's host and our target group, is one we made before a crash
 * kept us from recording it, and is adopted. Any other rule is never touched. `paused` changes nothing here: the
 * application holds a paused tenant's writes (docs/routing.md). A tenant without a domain is left to the routing
 * table.
 */
export function loadBalancerRouter(
  client: ElasticLoadBalancingV2Client,
  lb: LoadBalancerConfig,
  config: Pick<Config, 'tenants'>,
  ledger: SqlSession,
): TrafficRouter {
  const domainOf = (tenant: string): string | null =>
    config.tenants.find((t) => t.bid === tenant)?.domain?.toLowerCase() ?? null;
  const listenerRules = async (): Promise<Rule[]> => {
    const rules: Rule[] = [];
    let marker: string | undefined;
    do {
      const page = await client.send(
        new DescribeRulesCommand({
          ListenerArn: lb.listenerArn,
          PageSize: 400,
          ...(marker === undefined ? {} : { Marker: marker }),
        }),
      );
      rules.push(...(page.Rules ?? []));
      marker = page.NextMarker;
    } while (marker !== undefined);
    return rules;
  };
  const ours = (rule: Rule, host: string): boolean => {
    const priority = Number(rule.Priority);
    const hosts = rule.Conditions?.find((c) => c.Field === 'host-header');
    const values = (hosts?.HostHeaderConfig?.Values ?? hosts?.Values ?? []).map((v) => v.toLowerCase());
    const forward = rule.Actions?.find((a) => a.Type === 'forward');
    const groups = [
      forward?.TargetGroupArn,
      ...(forward?.ForwardConfig?.TargetGroups ?? []).map((g) => g.TargetGroupArn),
    ];
    return (
      Number.isInteger(priority) &&
      priority >= lb.priorities.from &&
      priority <= lb.priorities.to &&
      values.length === 1 &&
      values[0] === host &&
      groups.includes(lb.targetGroupArn)
    );
  };
  const recorded = async (tenant: string): Promise<string | null> => {
    const [row] = await ledger.query('SELECT rule_arn FROM migration_alb_rules WHERE tenant_bid = ?', [
      tenant,
    ]);
    return row === undefined ? null : str(row, 'rule_arn');
  };
  return {
    name: 'load balancer',
    async apply(change) {
      const host = domainOf(change.tenant);
      // A tenant without a domain of its own (the default tenant, most often) has no host to match: the routing
      // table alone routes it (the application's router reads it).
      if (change.route === 'paused' || host === null) return;
      const known = await recorded(change.tenant);
      const rules = await listenerRules();
      const found =
        rules.find((r) => known !== null && r.RuleArn === known) ?? rules.find((r) => ours(r, host));
      if (change.route === 'legacy') {
        if (found?.RuleArn !== undefined)
          await client.send(new DeleteRuleCommand({ RuleArn: found.RuleArn }));
        await ledger.execute('DELETE FROM migration_alb_rules WHERE tenant_bid = ?', [change.tenant]);
        return;
      }
      if (found?.RuleArn !== undefined) {
        await ledger.execute(
          'INSERT INTO migration_alb_rules (tenant_bid, rule_arn, priority) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE rule_arn = VALUES(rule_arn), priority = VALUES(priority)',
          [change.tenant, found.RuleArn, Number(found.Priority)],
        );
        return;
      }
      const used = new Set(rules.map((r) => Number(r.Priority)));
      let priority = lb.priorities.from;
      while (used.has(priority) && priority <= lb.priorities.to) priority += 1;
      if (priority > lb.priorities.to)
        throw new NoRulePriority(
          `listener ${lb.listenerArn} has no free rule priority in ${lb.priorities.from}–${lb.priorities.to} for tenant ${change.tenant}: widen application.loadBalancer.priorities`,
        );
      const created = await client.send(
        new CreateRuleCommand({
          ListenerArn: lb.listenerArn,
          Priority: priority,
          Conditions: [{ Field: 'host-header', HostHeaderConfig: { Values: [host] } }],
          Actions: [{ Type: 'forward', TargetGroupArn: lb.targetGroupArn }],
          Tags: [{ Key: RULE_TAG, Value: change.tenant }],
        }),
      );
      const arn = created.Rules?.[0]?.RuleArn;
      if (arn === undefined) throw new Error(`CreateRule for tenant ${change.tenant} returned no rule`);
      await ledger.execute(
        'INSERT INTO migration_alb_rules (tenant_bid, rule_arn, priority) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE rule_arn = VALUES(rule_arn), priority = VALUES(priority)',
        [change.tenant, arn, priority],
      );
    },
  };
}

/**
 * The listener rule ARNs of a listener: what the switch function's IAM policy lets it delete (and tag as it
 * creates them), and nothing else.
 */
export function listenerRuleArns(listenerArn: string): string {
  return `${listenerArn.replace(':listener/', ':listener-rule/')}/*`;
}

/** A tenant in the hybrid period: who owns its writes (`tenant_migration_status`) and where its requests go. */
export interface TenantState {
  readonly tenant: string;
  readonly status: string;
  readonly route: Route;
  readonly owner: 'legacy' | 'multi-tenant';
  readonly switchedAt: string | null;
  readonly runId: string | null;
  readonly baked: boolean;
}

/** Every tenant's state, by tenant: a tenant without its own route follows legacy. */
export async function tenantStates(target: SqlSession): Promise<TenantState[]> {
  const rows = await target.query(
    `SELECT s.tenant_bid, s.status, s.switched_at, s.run_id, s.baked, COALESCE(r.target, 'legacy') AS route
       FROM tenant_migration_status s LEFT JOIN traffic_routing r ON r.scope = 'tenant' AND r.tenant_bid = s.tenant_bid
      ORDER BY s.tenant_bid`,
  );
  return rows.map((r) => ({
    tenant: str(r, 'tenant_bid'),
    status: str(r, 'status'),
    route: str(r, 'route') as Route,
    owner: str(r, 'status') === 'switched' ? 'multi-tenant' : 'legacy',
    switchedAt: strOrNull(r, 'switched_at'),
    runId: strOrNull(r, 'run_id'),
    baked: Number(r.baked ?? 0) === 1,
  }));
}

/**
 * The global route (what requests without a tenant of their own, and global tables, follow): `saas` once go-live
 * finished, `legacy` again when a rollback undoes it. Recorded in the history like every route change.
 */
export async function routeGlobal(target: SqlClient, runId: string, to: 'legacy' | 'saas', reason: string) {
  await target.transaction(async (tx) => {
    await tx.execute(
      "INSERT INTO traffic_routing (scope, tenant_bid, target, weight) VALUES ('global', '', ?, 100) ON DUPLICATE KEY UPDATE target = VALUES(target)",
      [to],
    );
    await tx.execute(
      "INSERT INTO traffic_routing_history (run_id, scope, tenant_bid, target, weight, reason) VALUES (?, 'global', '', ?, 100, ?)",
      [runId, to, reason.slice(0, 255)],
    );
  });
}
