import { CloudWatchClient, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import {
  CreateRuleCommand,
  DeleteRuleCommand,
  DescribeRulesCommand,
  ElasticLoadBalancingV2Client,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { cloudWatchAlarms } from '../../lambdas/application/gates.ts';
import { loadBalancerRouter, NoRulePriority } from '../../lambdas/application/router.ts';
import type { SqlParam, SqlSession } from '../../lambdas/core/sql/port.ts';

const listener =
  'arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/shifu/50dc6c495c0c9188/f2f7dc8efc522ab2';
const targetGroup =
  'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/shifu-saas/73e2d6bc24d8a067';
const legacyGroup =
  'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/shifu-legacy/11e2d6bc24d8a067';
const ruleArn = (n: number) =>
  `arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/shifu/50dc6c495c0c9188/f2f7dc8efc522ab2/${n.toString(16).padStart(16, '0')}`;

/** The ledger table the adapter keeps its rules in (migration_alb_rules), in memory. */
function ledger(): SqlSession & { rows: Map<string, { arn: string; priority: number }> } {
  const rows = new Map<string, { arn: string; priority: number }>();
  return {
    rows,
    async query(sql: string, params: readonly SqlParam[] = []) {
      expect(sql).toMatch(/^SELECT rule_arn FROM migration_alb_rules WHERE tenant_bid = \?$/);
      const row = rows.get(String(params[0]));
      return row === undefined ? [] : [{ rule_arn: row.arn }];
    },
    async execute(sql: string, params: readonly SqlParam[] = []) {
      if (sql.startsWith('DELETE')) rows.delete(String(params[0]));
      else rows.set(String(params[0]), { arn: String(params[1]), priority: Number(params[2]) });
      return { affectedRows: 1 };
    },
  } as unknown as SqlSession & { rows: Map<string, { arn: string; priority: number }> };
}

const config = {
  tenants: [
    { bid: 'acme', name: 'Acme', domain: 'Acme.com', tier: 'standard' },
    { bid: 'default', name: 'Default', tier: 'standard' },
  ],
} as never;
const lb = { listenerArn: listener, targetGroupArn: targetGroup, priorities: { from: 40_000, to: 40_002 } };

/** Someone else's rule on the same listener, in our range of priorities: never touched, its priority skipped. */
const theirs = {
  RuleArn: ruleArn(1),
  Priority: '40000',
  Conditions: [{ Field: 'host-header', Values: ['acme.com'], HostHeaderConfig: { Values: ['acme.com'] } }],
  Actions: [{ Type: 'forward', TargetGroupArn: legacyGroup }],
  IsDefault: false,
};
const defaultRule = { RuleArn: ruleArn(0), Priority: 'default', IsDefault: true, Actions: [] };

describe('the load balancer adapter', () => {
  const elb = mockClient(ElasticLoadBalancingV2Client);
  beforeEach(() => elb.reset());

  it('switches a tenant with one rule for its host at the first free priority in range, tagged, and records it', async () => {
    elb.on(DescribeRulesCommand).resolves({ Rules: [defaultRule, theirs] as never });
    elb.on(CreateRuleCommand).resolves({ Rules: [{ RuleArn: ruleArn(7), Priority: '40001' }] });
    const book = ledger();
    const router = loadBalancerRouter(new ElasticLoadBalancingV2Client({}), lb, config, book);
    await router.apply({ tenant: 'acme', route: 'saas', runId: 'application-1', reason: 'wave 1' });
    expect(elb.commandCalls(DescribeRulesCommand).map((c) => c.args[0].input)).toEqual([
      { ListenerArn: listener, PageSize: 400 },
    ]);
    expect(elb.commandCalls(CreateRuleCommand).map((c) => c.args[0].input)).toEqual([
      {
        ListenerArn: listener,
        Priority: 40001,
        Conditions: [{ Field: 'host-header', HostHeaderConfig: { Values: ['acme.com'] } }],
        Actions: [{ Type: 'forward', TargetGroupArn: targetGroup }],
        Tags: [{ Key: 'shifu-migrate:tenant', Value: 'acme' }],
      },
    ]);
    expect(elb.commandCalls(DeleteRuleCommand)).toHaveLength(0);
    expect(book.rows.get('acme')).toEqual({ arn: ruleArn(7), priority: 40001 });
  });

  it('switching again creates nothing: the recorded rule, or one of ours found unrecorded (a crash), is kept', async () => {
    const ours = {
      RuleArn: ruleArn(7),
      Priority: '40001',
      Conditions: [
        { Field: 'host-header', Values: ['acme.com'], HostHeaderConfig: { Values: ['acme.com'] } },
      ],
      Actions: [{ Type: 'forward', TargetGroupArn: targetGroup }],
    };
    elb.on(DescribeRulesCommand).resolves({ Rules: [defaultRule, theirs, ours] as never });
    const book = ledger();
    const router = loadBalancerRouter(new ElasticLoadBalancingV2Client({}), lb, config, book);
    await router.apply({ tenant: 'acme', route: 'saas', runId: 'application-1', reason: 'again' });
    expect(elb.commandCalls(CreateRuleCommand)).toHaveLength(0);
    expect(book.rows.get('acme')).toEqual({ arn: ruleArn(7), priority: 40001 });
  });

  it('rolls a tenant back by deleting exactly its rule, found through the ledger, and leaves every other rule', async () => {
    elb
      .on(DescribeRulesCommand)
      .resolvesOnce({ Rules: [defaultRule, theirs] as never, NextMarker: 'page-2' })
      .resolves({
        Rules: [
          {
            RuleArn: ruleArn(7),
            Priority: '40001',
            Actions: [{ Type: 'forward', TargetGroupArn: targetGroup }],
          },
        ],
      });
    elb.on(DeleteRuleCommand).resolves({});
    const book = ledger();
    book.rows.set('acme', { arn: ruleArn(7), priority: 40001 });
    const router = loadBalancerRouter(new ElasticLoadBalancingV2Client({}), lb, config, book);
    await router.apply({ tenant: 'acme', route: 'legacy', runId: 'rollback-1', reason: 'rolled back' });
    expect(elb.commandCalls(DescribeRulesCommand).map((c) => c.args[0].input)).toEqual([
      { ListenerArn: listener, PageSize: 400 },
      { ListenerArn: listener, PageSize: 400, Marker: 'page-2' },
    ]);
    expect(elb.commandCalls(DeleteRuleCommand).map((c) => c.args[0].input)).toEqual([
      { RuleArn: ruleArn(7) },
    ]);
    expect(book.rows.has('acme')).toBe(false);
  });

  it('a rollback with no rule of ours deletes nothing (never a rule it did not make, even for the same host)', async () => {
    elb.on(DescribeRulesCommand).resolves({ Rules: [defaultRule, theirs] as never });
    const router = loadBalancerRouter(new ElasticLoadBalancingV2Client({}), lb, config, ledger());
    await router.apply({ tenant: 'acme', route: 'legacy', runId: 'rollback-1', reason: 'rolled back' });
    expect(elb.commandCalls(DeleteRuleCommand)).toHaveLength(0);
  });

  it('pausing, and tenants without a domain, change nothing on the listener', async () => {
    const router = loadBalancerRouter(new ElasticLoadBalancingV2Client({}), lb, config, ledger());
    await router.apply({ tenant: 'acme', route: 'paused', runId: 'application-1', reason: 'drain' });
    await router.apply({ tenant: 'default', route: 'saas', runId: 'application-1', reason: 'wave 2' });
    expect(elb.calls()).toHaveLength(0);
  });

  it('refuses when every priority of its range is taken, naming the range to widen', async () => {
    elb.on(DescribeRulesCommand).resolves({
      Rules: [40_000, 40_001, 40_002].map((p) => ({ RuleArn: ruleArn(p), Priority: String(p) })),
    });
    const router = loadBalancerRouter(new ElasticLoadBalancingV2Client({}), lb, config, ledger());
    await expect(
      router.apply({ tenant: 'acme', route: 'saas', runId: 'application-1', reason: 'wave 1' }),
    ).rejects.toThrow(NoRulePriority);
    expect(elb.commandCalls(CreateRuleCommand)).toHaveLength(0);
  });
});

describe('the alarm gate on AWS', () => {
  const cw = mockClient(CloudWatchClient);
  beforeEach(() => cw.reset());

  it('asks CloudWatch for the stack’s alarms (by its name) and the operator’s in ALARM, and names them', async () => {
    cw.on(DescribeAlarmsCommand, { AlarmNamePrefix: 'ShifuMigrate-', StateValue: 'ALARM' }).resolves({
      MetricAlarms: [{ AlarmName: 'ShifuMigrate-PhasesapplicationFailed', StateReason: 'threshold crossed' }],
    });
    cw.on(DescribeAlarmsCommand, { AlarmNames: ['shifu-api-5xx'], StateValue: 'ALARM' }).resolves({
      MetricAlarms: [],
    });
    const watch = cloudWatchAlarms(new CloudWatchClient({}), {
      prefix: 'ShifuMigrate-',
      names: ['shifu-api-5xx'],
    });
    expect(await watch.firing()).toEqual([
      { name: 'ShifuMigrate-PhasesapplicationFailed', reason: 'threshold crossed' },
    ]);
    expect(cw.commandCalls(DescribeAlarmsCommand).map((c) => c.args[0].input)).toEqual([
      { AlarmNamePrefix: 'ShifuMigrate-', StateValue: 'ALARM' },
      { AlarmNames: ['shifu-api-5xx'], StateValue: 'ALARM' },
    ]);
  });
});
