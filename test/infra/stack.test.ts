import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { App, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../lambdas/core/config/schema.ts';
import { InputError } from '../../lambdas/core/errors.ts';
import { FUNCTIONS, type FunctionKey, type FunctionSpec, type Reach } from '../../lambdas/registry.ts';
import { ShifuMigrateStack } from '../../lib/shifu-migrate-stack.ts';
import { demoConfig } from '../../local/demo/config.ts';

const cluster = (name: string) => `arn:aws:rds:eu-west-1:123456789012:cluster:${name}`;
const secret = (name: string) => `arn:aws:secretsmanager:eu-west-1:123456789012:secret:${name}-AbCdEf`;
const operatorAlarm = 'arn:aws:cloudwatch:eu-west-1:123456789012:alarm:shifu-api-5xx';
const listener =
  'arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/shifu/50dc6c495c0c9188/f2f7dc8efc522ab2';
const targetGroup =
  'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/shifu-saas/73e2d6bc24d8a067';
const config = ConfigSchema.parse({
  ...demoConfig(),
  source: { url: `rdsdata://${cluster('legacy')}/shifu_legacy?secret=${secret('legacy')}` },
  target: { url: `rdsdata://${cluster('saas')}/shifu_saas?secret=${secret('saas')}` },
  aws: { rollbackOnAlarms: [operatorAlarm], alarmEmails: ['oncall@example.com', 'dba@example.com'] },
  application: { loadBalancer: { listenerArn: listener, targetGroupArn: targetGroup } },
  integration: {
    oauth: {
      acme: [
        {
          provider: 'google',
          clientId: 'acme-client',
          clientSecret: { secretArn: secret('acme-google') },
          redirectUris: ['https://login.acme.com/callback'],
        },
        {
          provider: 'github',
          clientId: 'acme-gh',
          clientSecret: { env: 'ACME_GITHUB_SECRET' },
          redirectUris: ['https://acme.com/gh'],
        },
      ],
    },
  },
});

let app: App;
let stack: ShifuMigrateStack;
let template: Template;

beforeAll(() => {
  // A directory of its own each run: bundles of an earlier run must not be counted.
  app = new App({ outdir: mkdtempSync(join(tmpdir(), 'smt-cdk-')) });
  stack = new ShifuMigrateStack(app, 'ShifuMigrateTest', {
    config,
    env: { account: '123456789012', region: 'eu-west-1' },
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new ServerlessChecks(app));
  template = Template.fromStack(stack);
}, 120_000);

const logicalId = (construct: { node: { defaultChild?: unknown } }) =>
  stack.getLogicalId(construct.node.defaultChild as never);

describe('migration stack', () => {
  it('deploys one Node 24 arm64 function per registry entry, with its handler, memory, timeout and concurrency', () => {
    const fns = stack.functions.functions;
    const resources = template.findResources('AWS::Lambda::Function');
    for (const [key, spec] of Object.entries(FUNCTIONS) as [FunctionKey, FunctionSpec][]) {
      const props = resources[logicalId(fns[key])]?.Properties;
      expect(props, spec.name).toMatchObject({
        Runtime: 'nodejs24.x',
        Architectures: ['arm64'],
        Handler: `index.${spec.handler}`,
        MemorySize: spec.memoryMb,
        Timeout: spec.timeoutMinutes * 60,
        TracingConfig: { Mode: 'Active' },
        LoggingConfig: { LogGroup: expect.anything() },
        Environment: {
          Variables: expect.objectContaining({
            NODE_OPTIONS: '--enable-source-maps',
            SHIFU_MIGRATE_ARCHIVE: expect.anything(),
            SHIFU_MIGRATE_CONFIG_KEY: stack.functions.configKey,
          }),
        },
      });
      expect(props.ReservedConcurrentExecutions, spec.name).toBe(spec.reservedConcurrency?.(config));
    }
    // The copies' functions are held to the concurrency the data state machine starts: tables at once × chunks.
    expect(resources[logicalId(fns.DataCopyChunkFunctionArn)]?.Properties.ReservedConcurrentExecutions).toBe(
      2 * config.chunking.maxConcurrency,
    );
    // One function per registry entry, and CDK's custom-resource provider.
    template.resourceCountIs('AWS::Lambda::Function', Object.keys(FUNCTIONS).length + 1);
    // The config is not in the environment (4 KB): it is a version in the archive, which every state machine names.
    const environment = JSON.stringify(template.findResources('AWS::Lambda::Function'));
    expect(environment).not.toContain('shifu_legacy');
    expect(stack.functions.configKey).toMatch(/^config\/[0-9a-f]{16}\.json$/);
    const [put] = Object.values(template.findResources('Custom::AWS'));
    const call = JSON.stringify(put?.Properties.Create);
    expect(call).toContain('putObject');
    expect(call).toContain(`migration/${stack.functions.configKey}`);
    expect(call).toContain('shifu_legacy');
    // The functions get the migration config, not the CLI's view of the stack or the operator's alarms.
    expect(call).not.toContain('shifu-api-5xx');
    for (const machine of Object.values(template.findResources('AWS::StepFunctions::StateMachine')))
      expect(machine.Properties.DefinitionSubstitutions.ConfigKey).toBe(stack.functions.configKey);
    // The resource that writes it may put config objects (with the archive's key), and nothing else.
    const writer = Object.entries(template.findResources('AWS::IAM::Policy')).find(([id]) =>
      id.startsWith('FunctionsConfigCustomResourcePolicy'),
    )?.[1];
    expect(writer?.Properties.PolicyDocument.Statement).toEqual([
      {
        Action: 's3:PutObject',
        Effect: 'Allow',
        Resource: {
          'Fn::Join': [
            '',
            [{ 'Fn::GetAtt': [logicalId(stack.archive.bucket), 'Arn'] }, '/migration/config/*'],
          ],
        },
      },
      {
        Action: 'kms:GenerateDataKey',
        Effect: 'Allow',
        Resource: { 'Fn::GetAtt': [logicalId(stack.key), 'Arn'] },
      },
    ]);
  });

  it('refuses a mysql:// URL with a password: it would be written into the template and the archive', () => {
    const withPassword = ConfigSchema.parse({
      ...config,
      source: { url: 'mysql://migrator:s3cr3t-Pa55@legacy.internal:3306/shifu_legacy' },
    });
    const build = () =>
      new ShifuMigrateStack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'WithPassword', {
        config: withPassword,
        env: { account: '123456789012', region: 'eu-west-1' },
      });
    expect(build).toThrow(InputError);
    expect(build).toThrow(
      /source\.url mysql:\/\/migrator:\*\*\*@legacy\.internal:3306\/shifu_legacy holds a password/,
    );
    expect(build).not.toThrow(/s3cr3t/);
  });

  it('synthesizes a 60-table config: its size is no longer bound by the environment', () => {
    const tables = Object.fromEntries(
      Array.from({ length: 60 }, (_, i) => [
        `course_table_with_a_long_name_${String(i).padStart(2, '0')}`,
        {
          tenant: {
            by: 'reference',
            column: 'user_bid',
            references: { table: 'user_users', column: 'user_bid' },
            whenNotUnique: { newest: 'updated_at' },
          },
          onUnmapped: 'quarantine',
        },
      ]),
    );
    const big = ConfigSchema.parse({ ...config, tables: { ...config.tables, ...tables } });
    expect(JSON.stringify(big).length).toBeGreaterThan(4 * 1024 * 3);
    // No bundling: the functions are the same as above, only the config differs.
    const bigApp = new App({
      outdir: mkdtempSync(join(tmpdir(), 'smt-cdk-')),
      context: { 'aws:cdk:bundling-stacks': [] },
    });
    const bigStack = new ShifuMigrateStack(bigApp, 'ShifuMigrateBig', {
      config: big,
      env: { account: '123456789012', region: 'eu-west-1' },
    });
    const t = Template.fromStack(bigStack);
    expect(JSON.stringify(Object.values(t.findResources('Custom::AWS'))[0])).toContain(
      'course_table_with_a_long_name_59',
    );
    // Every function's environment stays small.
    for (const fn of Object.values(t.findResources('AWS::Lambda::Function')))
      expect(JSON.stringify(fn.Properties.Environment ?? {}).length).toBeLessThan(1024);
    expect(bigStack.functions.configKey).not.toBe(stack.functions.configKey);
  });

  it('grants each function exactly what its registry entry says it reaches', () => {
    const fns = stack.functions.functions;
    const policies = Object.values(template.findResources('AWS::IAM::Policy'));
    const statementsOf = (key: FunctionKey) => {
      const role = stack.getLogicalId(fns[key].role?.node.defaultChild as never);
      return policies
        .filter((p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: role }]))
        .flatMap(
          (p) => p.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[],
        );
    };
    const bucket = logicalId(stack.archive.bucket);
    for (const [key, spec] of Object.entries(FUNCTIONS) as [FunctionKey, FunctionSpec][]) {
      const statements = statementsOf(key);
      const on = (action: string) =>
        JSON.stringify(
          statements.filter((st) => [st.Action].flat().includes(action)).map((st) => st.Resource),
        );
      const actions = new Set(statements.flatMap((st) => [st.Action].flat()));
      const has = (reach: Reach) => spec.reaches.includes(reach);
      const why = `${spec.name} (${spec.reaches.join(', ')})`;
      // Databases: the source read, never in batches; the target written, with transactions.
      expect(on('rds-data:ExecuteStatement').includes(cluster('legacy')), why).toBe(has('source'));
      expect(on('rds-data:ExecuteStatement').includes(cluster('saas')), why).toBe(has('target'));
      // Transactions on the source too: a row too large for one Data API response is read in slices, in one.
      expect(on('rds-data:BeginTransaction').includes(cluster('legacy')), why).toBe(has('source'));
      expect(on('rds-data:BatchExecuteStatement').includes(cluster('legacy')), why).toBe(false);
      expect(on('rds-data:BeginTransaction').includes(cluster('saas')), why).toBe(has('target'));
      expect(on('secretsmanager:GetSecretValue').includes(secret('legacy')), why).toBe(has('source'));
      expect(on('secretsmanager:GetSecretValue').includes(secret('saas')), why).toBe(has('target'));
      // The archive: the config versions always; objects got, put and listed as stated; nothing deleted.
      expect(on('s3:GetObject'), why).toContain('/migration/config/*');
      expect(on('s3:GetObject').includes(`{"Fn::GetAtt":["${bucket}","Arn"]},"/*"`), why).toBe(
        has('archive:get'),
      );
      expect(actions.has('s3:PutObject'), why).toBe(has('archive:put'));
      // Listing, also for what gets objects: S3 then says 404 for a missing key, not 403.
      expect(actions.has('s3:ListBucket'), why).toBe(has('archive:list') || has('archive:get'));
      expect(
        [...actions].filter((a) => /^s3:Delete|^s3:\*/.test(a)),
        why,
      ).toEqual([]);
      expect(actions.has('kms:GenerateDataKey*'), why).toBe(has('archive:put'));
      // Step Functions: only the rollback's stop lists and stops the phases' executions.
      expect(actions.has('states:StopExecution'), why).toBe(has('executions'));
      expect(actions.has('states:ListExecutions'), why).toBe(has('executions'));
      // The sync schedule: read, updated, its role passed to Scheduler.
      expect(actions.has('scheduler:UpdateSchedule'), why).toBe(has('schedule'));
      expect(actions.has('iam:PassRole'), why).toBe(has('schedule'));
      // Alarm states for the gates; listener rules on the configured listener only, for the switch.
      expect(actions.has('cloudwatch:DescribeAlarms'), why).toBe(has('alarms'));
      expect(on('elasticloadbalancing:CreateRule'), why).toBe(
        has('load-balancer') ? JSON.stringify([listener]) : '[]',
      );
      expect(on('elasticloadbalancing:DeleteRule'), why).toBe(
        has('load-balancer')
          ? JSON.stringify([`${listener.replace(':listener/', ':listener-rule/')}/*`])
          : '[]',
      );
      expect(on('elasticloadbalancing:AddTags'), why).toBe(
        has('load-balancer')
          ? JSON.stringify([`${listener.replace(':listener/', ':listener-rule/')}/*`])
          : '[]',
      );
      // Secrets: described (never read) by the integration function, on the configured ARNs only.
      expect(on('secretsmanager:DescribeSecret').includes(secret('acme-google')), why).toBe(has('secrets'));
      const describeOnly = statements.filter(
        (st) =>
          [st.Action].flat().includes('secretsmanager:DescribeSecret') &&
          ![st.Action].flat().includes('secretsmanager:GetSecretValue'),
      );
      expect(JSON.stringify(describeOnly.map((st) => st.Resource)), why).toBe(
        has('secrets') ? JSON.stringify([secret('acme-google')]) : '[]',
      );
      // Legacy is written by reverse sync only (the writer: here the source's cluster), never in batches.
      expect(
        statements.some(
          (st) =>
            [st.Action].flat().includes('rds-data:ExecuteStatement') &&
            JSON.stringify(st.Resource) === JSON.stringify(cluster('legacy')),
        ),
        why,
      ).toBe(has('source') || has('source:write'));
      // Nothing else: logs (the managed policy), X-Ray, and the above.
      expect(
        [...actions].filter(
          (a) =>
            !/^(rds-data|secretsmanager|s3|kms|states|xray|scheduler|cloudwatch|elasticloadbalancing):|^iam:PassRole$/.test(
              a,
            ),
        ),
        why,
      ).toEqual([]);
    }
    // The examples, spelled out: what validates cannot put objects; only the stop reaches Step Functions.
    expect(JSON.stringify(statementsOf('DataValidateFunctionArn'))).not.toContain('s3:PutObject');
    expect(JSON.stringify(statementsOf('DataCopyChunkFunctionArn'))).not.toContain('s3:PutObject');
    expect(
      (Object.keys(FUNCTIONS) as FunctionKey[]).filter((k) =>
        JSON.stringify(statementsOf(k)).includes('states:StopExecution'),
      ),
    ).toEqual(['RollbackStopFunctionArn']);
    const machines = stack.phases.stateMachines;
    const stop = JSON.stringify(statementsOf('RollbackStopFunctionArn'));
    expect(stop).toContain(logicalId(machines.foundation));
    expect(stop).toContain(logicalId(machines.data));
    // A sync pass in flight is stopped by a rollback too.
    expect(stop).toContain(logicalId(machines.sync));
    expect(stop).not.toContain(logicalId(machines.assess));
    expect(
      template.findResources('AWS::Lambda::Function')[logicalId(fns.RollbackStopFunctionArn)]?.Properties
        .Environment.Variables.SHIFU_MIGRATE_STATE_MACHINES,
    ).toEqual({
      'Fn::Join': [
        '',
        [
          '{"foundation":"',
          { Ref: logicalId(machines.foundation) },
          '","data":"',
          { Ref: logicalId(machines.data) },
          '","application":"',
          { Ref: logicalId(machines.application) },
          '","integration":"',
          { Ref: logicalId(machines.integration) },
          '","sync":"',
          { Ref: logicalId(machines.sync) },
          '"}',
        ],
      ],
    });
  });

  it('creates one state machine per ASL file calling the published version of the right functions', () => {
    const fns = stack.functions.functions;
    // The version, not $LATEST: an execution keeps calling the code it started with.
    template.resourceCountIs('AWS::StepFunctions::StateMachine', 8);
    const machines = template.findResources('AWS::StepFunctions::StateMachine');
    for (const [name, machine] of Object.entries(stack.phases.stateMachines)) {
      const file = readFileSync(
        join(import.meta.dirname, '..', '..', 'statemachines', `${name}.asl.json`),
        'utf8',
      );
      const named = [
        ...new Set([...file.matchAll(/\$\{(\w+FunctionArn)\}/g)].map((m) => m[1] as FunctionKey)),
      ];
      const substitutions = machines[logicalId(machine)]?.Properties.DefinitionSubstitutions;
      // The machines it runs as nested executions (application's and the rollback's sync passes), by their ARN.
      const nested = [
        ...new Set([...file.matchAll(/\$\{(\w+StateMachineArn)\}/g)].map((m) => m[1] as string)),
      ];
      expect(Object.keys(substitutions).sort(), name).toEqual([...named, ...nested, 'ConfigKey'].sort());
      // ${SyncStateMachineArn} is the sync machine, ${ApplicationStateMachineArn} the application machine (go-live).
      for (const key of nested) {
        const child = key
          .replace(/StateMachineArn$/, '')
          .toLowerCase() as keyof typeof stack.phases.stateMachines;
        expect(substitutions[key], `${name} ${key}`).toEqual({
          Ref: logicalId(stack.phases.stateMachines[child]),
        });
      }
      for (const key of named)
        expect(substitutions[key].Ref, `${name} ${key}`).toMatch(
          new RegExp(`^${stack.getLogicalId(fns[key].currentVersion.node.defaultChild as never)}`),
        );
    }
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: Match.objectLike({ Level: 'ALL', IncludeExecutionData: true }),
    });
    // Their logs go under /aws/vendedlogs/states/, where log delivery needs no resource policy per group.
    for (const group of Object.values(template.findResources('AWS::Logs::LogGroup')).filter((g) =>
      JSON.stringify(g).includes('vendedlogs'),
    ))
      expect(group.Properties.LogGroupName).toMatch(
        /^\/aws\/vendedlogs\/states\/ShifuMigrateTest-(assess|foundation|data|sync|application|integration|golive|rollback)$/,
      );
    expect(
      Object.values(template.findResources('AWS::Logs::LogGroup')).filter((g) =>
        JSON.stringify(g).includes('vendedlogs'),
      ),
    ).toHaveLength(8);
  });

  it('lets the application and rollback machines start, follow and stop sync passes (nested), and nothing else', () => {
    const machines = stack.phases.stateMachines;
    const statementsOf = (name: keyof typeof machines) =>
      Object.values(template.findResources('AWS::IAM::Policy'))
        .filter((p) =>
          JSON.stringify(p.Properties.Roles).includes(
            stack.getLogicalId(machines[name].role.node.defaultChild as never),
          ),
        )
        .flatMap(
          (p) => p.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[],
        );
    for (const name of ['application', 'rollback'] as const) {
      const start = statementsOf(name).filter((st) => [st.Action].flat().includes('states:StartExecution'));
      expect(JSON.stringify(start.map((st) => st.Resource)), name).toBe(
        JSON.stringify([{ Ref: logicalId(machines.sync) }]),
      );
      const events = statementsOf(name).find((st) => [st.Action].flat().includes('events:PutRule'));
      expect(JSON.stringify(events?.Resource)).toContain(
        'StepFunctionsGetEventsForStepFunctionsExecutionRule',
      );
    }
    // The other phases start no sync pass (data's Distributed Map starts only its own children).
    for (const name of ['assess', 'foundation', 'data'] as const)
      expect(
        statementsOf(name).some(
          (st) =>
            [st.Action].flat().includes('states:StartExecution') &&
            JSON.stringify(st.Resource) === JSON.stringify({ Ref: logicalId(machines.sync) }),
        ),
        name,
      ).toBe(false);
  });

  it('lets each state machine invoke only the functions its definition names', () => {
    const machines = stack.phases.stateMachines;
    const policyOf = (name: keyof typeof machines) =>
      JSON.stringify(
        Object.values(template.findResources('AWS::IAM::Policy')).find((p) =>
          JSON.stringify(p).includes(stack.getLogicalId(machines[name].role.node.defaultChild as never)),
        ),
      );
    const fns = stack.functions.functions;
    const id = (key: keyof typeof fns) =>
      stack.getLogicalId(fns[key].currentVersion.node.defaultChild as never);
    for (const name of Object.keys(machines) as (keyof typeof machines)[]) {
      const file = readFileSync(
        join(import.meta.dirname, '..', '..', 'statemachines', `${name}.asl.json`),
        'utf8',
      );
      for (const key of Object.keys(FUNCTIONS) as FunctionKey[]) {
        expect(policyOf(name).includes(id(key)), `${name} ${key}`).toBe(file.includes(`\${${key}}`));
      }
    }
    expect(policyOf('data')).toContain(id('DataCopyChunkFunctionArn'));
    expect(policyOf('data')).not.toContain(id('FoundationCreateFunctionArn'));
    expect(policyOf('rollback')).toContain(id('RollbackStopFunctionArn'));
    expect(policyOf('rollback')).toContain(id('DataRollbackFunctionArn'));
  });

  it("lets the data state machine run its Distributed Map: its own children, and its runs' objects in the archive", () => {
    const data = stack.phases.stateMachines.data;
    const dataId = logicalId(data);
    const roleId = stack.getLogicalId(data.role.node.defaultChild as never);
    const policies = Object.entries(template.findResources('AWS::IAM::Policy'));
    const [, mapRuns] =
      policies.find(([id]) => id.startsWith('PhasesdataMapRuns')) ??
      (() => expect.fail('no map-run policy'))();
    expect(mapRuns.Properties.Roles).toEqual([{ Ref: roleId }]);
    const statements = mapRuns.Properties.PolicyDocument.Statement as {
      Action: unknown;
      Resource: unknown;
    }[];
    const on = (action: string) =>
      JSON.stringify(statements.filter((st) => [st.Action].flat().includes(action)).map((st) => st.Resource));
    expect(on('states:StartExecution')).toBe(JSON.stringify([{ Ref: dataId }]));
    for (const action of ['states:DescribeExecution', 'states:StopExecution', 'states:RedriveExecution'])
      expect(on(action)).toContain(`${dataId}","Name"`);
    expect(on('s3:GetObject')).toContain('/migration/runs/*');
    expect(on('s3:PutObject')).toContain('/migration/runs/*');
    expect(JSON.stringify(statements)).not.toMatch(/s3:Delete/);
    // Not in the role's default policy, which the state machine depends on: that would be a cycle.
    const dependsOn = template.findResources('AWS::StepFunctions::StateMachine')[dataId]
      ?.DependsOn as string[];
    expect(dependsOn.some((d) => d.startsWith('PhasesdataMapRuns'))).toBe(false);
    // Sync's reconciliation and go-live's archive have their own (the same grants, on their own executions); the
    // others have none.
    expect(
      policies.filter(([id]) => /MapRuns/.test(id)).map(([id]) => id.replace(/[0-9A-F]{8}$/, '')),
    ).toEqual(['PhasesdataMapRuns', 'PhasessyncMapRuns', 'PhasesgoliveMapRuns']);
  });

  it('keeps the archive encrypted with its own rotated key, private, versioned, TLS-only and retained', () => {
    const key = logicalId(stack.key);
    template.hasResource('AWS::KMS::Key', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({ EnableKeyRotation: true }),
    });
    template.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [
            {
              BucketKeyEnabled: true,
              ServerSideEncryptionByDefault: {
                SSEAlgorithm: 'aws:kms',
                KMSMasterKeyID: { 'Fn::GetAtt': [key, 'Arn'] },
              },
            },
          ],
        },
        VersioningConfiguration: { Status: 'Enabled' },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        LifecycleConfiguration: {
          Rules: [Match.objectLike({ Transitions: [{ StorageClass: 'GLACIER', TransitionInDays: 30 }] })],
        },
        LoggingConfiguration: Match.objectLike({ LogFilePrefix: 'archive/' }),
      }),
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  it('keeps the legacy archive under Object Lock: retention set by go-live alone, nothing deleted by anyone', () => {
    const bucket = logicalId(stack.archive.bucket);
    template.hasResourceProperties('AWS::S3::Bucket', { ObjectLockEnabled: true });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Principal: { AWS: '*' },
            Action: ['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:BypassGovernanceRetention'],
            Resource: {
              'Fn::Join': ['', [{ 'Fn::GetAtt': [bucket, 'Arn'] }, '/migration/legacy-archive/*']],
            },
          }),
        ]),
      },
    });
    // s3:PutObjectRetention: only the function the registry says locks, only on the legacy archive's keys.
    const retention = Object.entries(template.findResources('AWS::IAM::Policy')).filter(([, policy]) =>
      JSON.stringify(policy).includes('s3:PutObjectRetention'),
    );
    expect(retention.map(([id]) => id.replace(/[0-9A-F]{8}$/, ''))).toEqual([
      'Functionsgolivearchive' + 'ServiceRoleDefaultPolicy',
    ]);
    expect(JSON.stringify(retention[0]?.[1])).toContain('/migration/legacy-archive/*');
  });

  it('alarms on failed, timed-out and aborted executions and mismatches; those and the operator’s start the rollback', () => {
    for (const metric of ['ExecutionsFailed', 'ExecutionsTimedOut', 'ExecutionsAborted']) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: metric,
        Namespace: 'AWS/States',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      });
    }
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ChecksumMismatches',
      Namespace: 'ShifuMigrate',
      // The order CDK writes; CloudWatch matches a metric's dimensions as a set.
      Dimensions: [
        { Name: 'Phase', Value: 'data' },
        { Name: 'service', Value: 'shifu-migrate' },
      ],
      Statistic: 'Sum',
      Threshold: 1,
    });
    // 8 machines × 3, the mismatches, the rollback queue, the sync schedule's queue, the lag.
    template.resourceCountIs('AWS::CloudWatch::Alarm', 28);
    // Every alarm tells the operators (e-mail subscriptions from aws.alarmEmails), going off and coming back.
    const topic = logicalId(stack.alarmTopic);
    for (const alarm of Object.values(template.findResources('AWS::CloudWatch::Alarm'))) {
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: topic }]);
      expect(alarm.Properties.OKActions).toEqual([{ Ref: topic }]);
    }
    template.hasResourceProperties('AWS::SNS::Topic', {
      KmsMasterKeyId: { 'Fn::GetAtt': [logicalId(stack.key), 'Arn'] },
    });
    template.resourceCountIs('AWS::SNS::Subscription', 2);
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'oncall@example.com',
    });
    // An alarm event that cannot start the rollback is retried for two hours, then queued, and that alarms too.
    const dlq = logicalId(stack.phases.rollbackNotStarted);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [dlq, 'QueueName'] } }],
    });
    template.resourceCountIs('AWS::Events::Rule', 1);
    const undo = stack.phases.alarms.filter((a) =>
      /^(foundation|data|application|integration|checksum)/.test(a.node.id),
    );
    expect(undo).toHaveLength(13);
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.cloudwatch'],
        'detail-type': ['CloudWatch Alarm State Change'],
        detail: { state: { value: ['ALARM'] } },
        resources: [...undo.map((a) => ({ 'Fn::GetAtt': [logicalId(a), 'Arn'] })), operatorAlarm],
      },
      Targets: [
        Match.objectLike({
          Arn: { Ref: logicalId(stack.phases.stateMachines.rollback) },
          RetryPolicy: { MaximumEventAgeInSeconds: 7200, MaximumRetryAttempts: 20 },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [dlq, 'Arn'] } },
          InputTransformer: {
            InputPathsMap: { 'detail-alarmName': '$.detail.alarmName' },
            InputTemplate: '{"alarm":<detail-alarmName>}',
          },
        }),
      ],
    });
  });

  it('charts rows copied, chunk durations, mismatches and every function, and prints each state machine ARN', () => {
    const dashboard = JSON.stringify(template.findResources('AWS::CloudWatch::Dashboard'));
    for (const metric of ['RowsCopied', 'ChunkDuration', 'ChecksumMismatches', 'ExecutionsFailed'])
      expect(dashboard).toContain(metric);
    // A graph per function: invocations, errors, throttles and duration.
    for (const [key, spec] of Object.entries(FUNCTIONS) as [FunctionKey, FunctionSpec][]) {
      expect(dashboard).toContain(`${spec.name}: invocations, errors, throttles; duration p90`);
      expect(dashboard).toContain(logicalId(stack.functions.functions[key]));
    }
    for (const metric of ['Invocations', 'Errors', 'Throttles', 'Duration'])
      expect(dashboard).toContain(metric);
    for (const metric of ['SyncLagSeconds', 'SyncRowsApplied', 'TenantConflicts'])
      expect(dashboard).toContain(metric);
    // A graph per tenant: its rows and its open conflicts, under its Tenant dimension.
    for (const tenant of config.tenants) {
      expect(dashboard).toContain(`Tenant ${tenant.bid}: rows, open conflicts, lag (its owner's direction)`);
      expect(dashboard).toContain(`\\"Tenant\\",\\"${tenant.bid}\\"`);
    }
    expect(dashboard).toContain('TenantRows');
    for (const name of ['assess', 'foundation', 'data', 'sync', 'rollback']) {
      template.hasOutput(`${name}StateMachineArn`, {
        Value: { Ref: logicalId(stack.phases.stateMachines[name as 'assess']) },
      });
    }
  });

  it('schedules sync passes disabled, with their own role, retries and dead-letter queue; data finish and rollback toggle it', () => {
    const sync = stack.phases.sync;
    const machine = logicalId(stack.phases.stateMachines.sync);
    template.resourceCountIs('AWS::Scheduler::Schedule', 1);
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(5 minutes)',
      State: 'DISABLED',
      FlexibleTimeWindow: { Mode: 'OFF' },
      Target: {
        Arn: { Ref: machine },
        RoleArn: { 'Fn::GetAtt': [logicalId(sync.role), 'Arn'] },
        RetryPolicy: { MaximumEventAgeInSeconds: 300, MaximumRetryAttempts: 2 },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [logicalId(sync.deadLetters), 'Arn'] } },
        Input: JSON.stringify({ startedBy: 'schedule' }),
      },
    });
    // Its role: trusted by Scheduler for this account, may start the sync machine and nothing else of Step Functions.
    const role = template.findResources('AWS::IAM::Role')[logicalId(sync.role)];
    expect(JSON.stringify(role?.Properties.AssumeRolePolicyDocument)).toContain('scheduler.amazonaws.com');
    expect(JSON.stringify(role?.Properties.AssumeRolePolicyDocument)).toContain('aws:SourceAccount');
    const rolePolicies = Object.values(template.findResources('AWS::IAM::Policy')).filter((p) =>
      JSON.stringify(p.Properties.Roles).includes(logicalId(sync.role)),
    );
    const startOn = rolePolicies
      .flatMap((p) => p.Properties.PolicyDocument.Statement as { Action: unknown; Resource: unknown }[])
      .filter((st) => JSON.stringify(st.Action).includes('states:'));
    expect(startOn).toEqual([
      expect.objectContaining({ Action: 'states:StartExecution', Resource: { Ref: machine } }),
    ]);
    // Exactly the functions whose registry entry reaches the schedule get its name, and may read and update it
    // and pass its role to Scheduler only.
    const toggling = (Object.entries(FUNCTIONS) as [FunctionKey, FunctionSpec][]).filter(([, spec]) =>
      (spec.reaches as readonly string[]).includes('schedule'),
    );
    // Data's finish enables it and its rollback disables it; go-live ends it (and a failed go-live resumes it); a
    // rollback of the application after go-live resumes it.
    expect(toggling.map(([, spec]) => spec.name).sort()).toEqual([
      'application-switch',
      'data-finish',
      'data-rollback',
      'golive-start',
    ]);
    const functions = template.findResources('AWS::Lambda::Function');
    for (const [key, fn] of Object.entries(stack.functions.functions) as [FunctionKey, NodejsFunction][]) {
      const env = JSON.stringify(functions[logicalId(fn)]?.Properties.Environment ?? {});
      const granted = toggling.some(([k]) => k === key);
      expect(env.includes('SHIFU_MIGRATE_SYNC_SCHEDULE'), FUNCTIONS[key].name).toBe(granted);
      const policy = JSON.stringify(
        Object.values(template.findResources('AWS::IAM::Policy')).filter((p) =>
          JSON.stringify(p.Properties.Roles).includes(
            stack.getLogicalId(fn.role?.node.defaultChild as never),
          ),
        ),
      );
      expect(policy.includes('scheduler:UpdateSchedule'), FUNCTIONS[key].name).toBe(granted);
      if (granted) {
        expect(policy).toContain('"iam:PassedToService":"scheduler.amazonaws.com"');
        expect(policy).toContain(logicalId(sync.schedule));
      }
    }
    // The lag alarm: the largest table lag of a pass over sync.maxLagSeconds.
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'SyncLagSeconds',
      Namespace: 'ShifuMigrate',
      Statistic: 'Maximum',
      Threshold: 900,
      ComparisonOperator: 'GreaterThanThreshold',
    });
  });

  it('passes cdk-nag AwsSolutions with every acknowledgement giving its reason', () => {
    expect(() => app.synth()).not.toThrow();
  });

  it('bundles each function for real: an ESM file with a source map that loads on Node 24', async () => {
    const assembly = app.synth();
    const assets = readdirSync(assembly.directory).filter((d) => d.startsWith('asset.'));
    const bundles = assets
      .map((d) => join(assembly.directory, d))
      .filter((d) => existsSync(join(d, 'index.mjs')));
    // One bundle per module (lambdas/<module>/handler.ts): its functions share it, each with its own export.
    expect(bundles).toHaveLength(8);
    const exported: string[] = [];
    for (const dir of bundles) {
      expect(existsSync(join(dir, 'index.mjs.map'))).toBe(true);
      // The AWS SDK is in the bundle (the version the tests ran), not taken from the Lambda runtime.
      const code = readFileSync(join(dir, 'index.mjs'), 'utf8');
      expect(code).not.toMatch(/from\s*["']@aws-sdk\//);
      expect(code).toContain('x-amz-user-agent');
      const module = (await import(pathToFileURL(join(dir, 'index.mjs')).href)) as Record<string, unknown>;
      exported.push(
        Object.entries(module)
          .filter(([, value]) => typeof value === 'function')
          .map(([name]) => name)
          .sort()
          .join(' '),
      );
    }
    // Each bundle exports exactly the handlers of one module's functions.
    const byModule = new Map<string, string[]>();
    for (const spec of Object.values(FUNCTIONS) as FunctionSpec[])
      byModule.set(spec.module, [...(byModule.get(spec.module) ?? []), spec.handler]);
    expect(exported.sort()).toEqual([...byModule.values()].map((h) => h.sort().join(' ')).sort());
  });
});

describe('trial cluster (aws.trialCluster)', () => {
  it('creates an encrypted Aurora Serverless v2 MySQL 3 cluster with the Data API and points both databases at it', () => {
    // No bundling here: the functions are the same as above, only their config and grants differ.
    const trialApp = new App({
      outdir: mkdtempSync(join(tmpdir(), 'smt-cdk-trial-')),
      context: { 'aws:cdk:bundling-stacks': [] },
    });
    const trialConfig = ConfigSchema.parse({
      ...demoConfig(),
      source: { url: 'mysql://root@127.0.0.1:3306/shifu_legacy' },
      target: { url: 'mysql://root@127.0.0.1:3306/shifu_saas' },
      aws: { trialCluster: true },
    });
    const trial = new ShifuMigrateStack(trialApp, 'ShifuMigrateTrial', {
      config: trialConfig,
      env: { account: '123456789012', region: 'eu-west-1' },
    });
    Validations.of(trialApp).addPlugins(new AwsSolutionsChecks(trialApp));
    const t = Template.fromStack(trial);
    t.hasResourceProperties('AWS::RDS::DBCluster', {
      Engine: 'aurora-mysql',
      EngineVersion: Match.stringLikeRegexp('^8\\.0\\.mysql_aurora\\.3\\.'),
      EnableHttpEndpoint: true,
      StorageEncrypted: true,
      ServerlessV2ScalingConfiguration: { MinCapacity: 0.5, MaxCapacity: 8 },
    });
    t.hasResourceProperties('AWS::RDS::DBInstance', { DBInstanceClass: 'db.serverless' });
    const cluster = trial.getLogicalId(trial.trialCluster?.cluster.node.defaultChild as never);
    // The config the functions read names the trial cluster for both databases, and their policies allow exactly it.
    const data = JSON.stringify(Object.values(t.findResources('Custom::AWS'))[0]?.Properties.Create);
    expect(data).toContain('shifu_legacy');
    expect(data).toContain(cluster);
    expect(data).not.toContain('127.0.0.1');
    const policies = JSON.stringify(t.findResources('AWS::IAM::Policy'));
    expect(policies).toContain(cluster);
    // cdk-nag passes here too; the trial's acknowledgements say why.
    expect(() => trialApp.synth()).not.toThrow();
    expect(Annotations.fromStack(trial).findWarning('*', Match.stringLikeRegexp('mysql:// URL'))).toEqual([]);
  });
});
