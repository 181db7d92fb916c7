import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArnFormat, type CfnElement, Duration, Stack, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { SyncConfig } from '../lambdas/core/config/schema.ts';
import { METRICS_NAMESPACE, metricDimensions } from '../lambdas/core/metrics.ts';
import {
  FUNCTIONS,
  type FunctionKey,
  type FunctionSpec,
  ROLLBACK_PHASES,
  STATE_MACHINES,
  STOPPED_BY_ROLLBACK,
} from '../lambdas/registry.ts';
import { deadLetterQueue } from './dead-letter-queue.ts';
import { SyncSchedule } from './sync-schedule.ts';

/** The ASL files, found from this module (not the working directory). */
export const STATEMACHINES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'statemachines');

export interface PhaseStateMachinesProps {
  readonly functions: Readonly<Record<FunctionKey, NodejsFunction>>;
  /**
   * The archive bucket and the key prefix the functions use in it: a Distributed Map reads its items there
   * (ItemReader) and writes its results there (ResultWriter), under `<prefix>/runs/`.
   */
  readonly archive: { readonly bucket: s3.IBucket; readonly prefix: string };
  /** The deployed config version's key in the archive, which the definitions' task payloads name. */
  readonly configKey: string;
  /** Where every alarm of the stack goes, on ALARM and back to OK. */
  readonly notify: sns.ITopic;
  /** The key that encrypts the queue of alarm events that could not start the rollback. */
  readonly key: kms.IKey;
  /** The sync phase's settings: the schedule's rate and the lag alarm's bound. */
  readonly sync: SyncConfig;
  /** The operator's own CloudWatch alarms (ARNs) that start the rollback when they enter ALARM. */
  readonly rollbackOnAlarms?: readonly string[];
  /**
   * Log retention of every state machine's log group.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * One state machine per ASL file, with `definitionSubstitutions` for exactly the functions the file names and
 * invoke grants for those only; each logs ALL to its own log group and traces with X-Ray. Failed, timed-out and
 * aborted executions raise alarms; for a phase with a rollback branch, those alarms entering ALARM start the
 * rollback state machine for that phase (an EventBridge rule on "CloudWatch Alarm State Change").
 */
export class PhaseStateMachines extends Construct {
  readonly stateMachines: Readonly<Record<(typeof STATE_MACHINES)[number], sfn.StateMachine>>;
  readonly alarms: readonly cloudwatch.Alarm[];
  /** The schedule that starts sync passes, and the lag alarm. */
  readonly sync: SyncSchedule;
  /** Alarm events that could not start the rollback state machine (retries spent), kept 14 days. */
  readonly rollbackNotStarted: sqs.Queue;

  constructor(scope: Construct, id: string, props: PhaseStateMachinesProps) {
    super(scope, id);
    const undelivered = deadLetterQueue(this, 'RollbackNotStarted', {
      key: props.key,
      of: 'the rollback rule',
      alarmId: 'rollbackNotStarted',
      description:
        'An alarm entered ALARM but the rollback state machine could not be started (retried for two hours): start it by hand (npx shifu-migrate rollback); the event is in the queue Phases/RollbackNotStarted.',
    });
    this.rollbackNotStarted = undelivered.queue;
    const machines: Partial<Record<(typeof STATE_MACHINES)[number], sfn.StateMachine>> = {};
    const alarms: cloudwatch.Alarm[] = [];
    for (const name of STATE_MACHINES) {
      const file = join(STATEMACHINES_DIR, `${name}.asl.json`);
      const used = [
        ...new Set(
          [...readFileSync(file, 'utf8').matchAll(/\$\{([A-Za-z0-9]+)\}/g)]
            .map((m) => m[1] as string)
            .filter((key) => key !== 'ConfigKey' && !key.endsWith('StateMachineArn')) as FunctionKey[],
        ),
      ];
      // The machines this one runs as nested executions (application's sync passes): made before it.
      const nested = [
        ...new Set(
          [...readFileSync(file, 'utf8').matchAll(/\$\{([A-Z][a-z]+)StateMachineArn\}/g)].map((m) =>
            (m[1] as string).toLowerCase(),
          ),
        ),
      ] as (typeof STATE_MACHINES)[number][];
      // Under /aws/vendedlogs/: Step Functions' log delivery then needs no resource policy of its own per group
      // (CloudWatch Logs resource policies are limited to 5 KB per account and Region).
      const logGroup = new logs.LogGroup(this, `${name}Logs`, {
        logGroupName: `/aws/vendedlogs/states/${Stack.of(this).stackName}-${name}`,
        retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      });
      const machine = new sfn.StateMachine(this, name, {
        definitionBody: sfn.DefinitionBody.fromFile(file),
        // Each function's published version, not $LATEST: an execution keeps calling the code it started with,
        // whatever a deployment publishes meanwhile (as it keeps its config).
        definitionSubstitutions: {
          ...Object.fromEntries(used.map((key) => [key, props.functions[key].currentVersion.functionArn])),
          // The config version every task payload names: an execution keeps it, whatever is deployed after.
          ConfigKey: props.configKey,
          ...Object.fromEntries(
            nested.map((m) => {
              const child = machines[m];
              if (child === undefined) throw new Error(`${name} runs ${m}, which is not made before it`);
              return [`${m[0]?.toUpperCase()}${m.slice(1)}StateMachineArn`, child.stateMachineArn];
            }),
          ),
        },
        logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
        tracingEnabled: true,
      });
      for (const key of used) props.functions[key].currentVersion.grantInvoke(machine);
      for (const m of nested) this.allowNested(name, machine, machines[m] as sfn.StateMachine);
      Validations.of(machine).acknowledge({
        id: 'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
        reason: 'X-Ray tracing and log delivery actions take no resource.',
      });
      for (const key of used) {
        const fn = props.functions[key];
        Validations.of(machine).acknowledge({
          id: `AwsSolutions::AwsSolutions-IAM5[Resource::<${Stack.of(this).getLogicalId(fn.node.defaultChild as CfnElement)}.Arn>:*]`,
          reason:
            'lambda:InvokeFunction on <function>:* covers the versions of this one function, which the definition names.',
        });
      }
      if (/"Mode":\s*"DISTRIBUTED"/.test(readFileSync(file, 'utf8')))
        this.allowMapRuns(name, machine, props.archive);
      machines[name] = machine;
      const phaseAlarms = [
        ['Failed', machine.metricFailed({ period: Duration.minutes(1) })],
        ['TimedOut', machine.metricTimedOut({ period: Duration.minutes(1) })],
        ['Aborted', machine.metricAborted({ period: Duration.minutes(1) })],
      ].map(
        ([what, metric]) =>
          new cloudwatch.Alarm(this, `${name}${what as string}`, {
            metric: metric as cloudwatch.Metric,
            threshold: 1,
            evaluationPeriods: 1,
            comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
            alarmDescription: `An execution of the ${name} state machine ${(what as string).toLowerCase()}.`,
          }),
      );
      alarms.push(...phaseAlarms);
    }
    const rollback = machines.rollback as sfn.StateMachine;
    // The functions that reach `executions` (the rollback's stop) list and stop executions of the phases it can
    // undo, and of nothing else. (Set here: the machines exist only now, and they do not reference these
    // functions' environment, so there is no cycle.)
    const stack = Stack.of(this);
    const region = Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region;
    const account = Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account;
    for (const [key, spec] of Object.entries(FUNCTIONS) as [FunctionKey, FunctionSpec][]) {
      if (!spec.reaches.includes('executions')) continue;
      const control = props.functions[key];
      control.addEnvironment(
        'SHIFU_MIGRATE_STATE_MACHINES',
        stack.toJsonString(
          Object.fromEntries(STOPPED_BY_ROLLBACK.map((p) => [p, machines[p]?.stateMachineArn])),
        ),
      );
      for (const phase of STOPPED_BY_ROLLBACK) {
        const machine = machines[phase] as sfn.StateMachine;
        machine.grant(control, 'states:ListExecutions');
        machine.grantExecution(control, 'states:StopExecution');
        Validations.of(control).acknowledge({
          id: `AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:${region}:${account}:execution:{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"${stack.getLogicalId(machine.node.defaultChild as CfnElement)}"}]}]}:*]`,
          reason: `StopExecution on the executions of the ${phase} state machine only: their names are not known in advance.`,
        });
      }
    }
    // Metrics the functions emit (EMF): a chunk that still differs after its re-copy.
    const mismatches = new cloudwatch.Alarm(this, 'checksumMismatches', {
      metric: new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: 'ChecksumMismatches',
        dimensionsMap: metricDimensions('data'),
        statistic: 'Sum',
        period: Duration.minutes(1),
      }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: 'A data chunk still differs from the source after a re-copy (the phase fails on it).',
    });
    alarms.push(mismatches);
    this.sync = new SyncSchedule(this, 'Sync', {
      stateMachine: machines.sync as sfn.StateMachine,
      sync: props.sync,
      toggledBy: (Object.entries(FUNCTIONS) as [FunctionKey, FunctionSpec][])
        .filter(([, spec]) => spec.reaches.includes('schedule'))
        .map(([key]) => props.functions[key]),
      key: props.key,
      notify: props.notify,
    });
    // Every alarm that means "undo": failures of a phase that writes, checksum mismatches, the operator's own.
    const rollbackAlarms = [
      ...alarms.filter((a) => ROLLBACK_PHASES.some((p) => a.node.id.startsWith(p))).map((a) => a.alarmArn),
      mismatches.alarmArn,
      ...(props.sync.lagStartsRollback ? [this.sync.lagAlarm.alarmArn] : []),
      ...(props.rollbackOnAlarms ?? []),
    ];
    new events.Rule(this, 'RollbackOnAlarm', {
      description:
        'An alarm entering ALARM starts the rollback state machine: it stops the phase in flight (or failed half-way) and undoes it.',
      eventPattern: {
        source: ['aws.cloudwatch'],
        detailType: ['CloudWatch Alarm State Change'],
        resources: rollbackAlarms,
        detail: { state: { value: ['ALARM'] } },
      },
      targets: [
        new targets.SfnStateMachine(rollback, {
          input: events.RuleTargetInput.fromObject({
            alarm: events.EventField.fromPath('$.detail.alarmName'),
          }),
          // StartExecution throttled or refused: retried for two hours, then kept in the queue, which alarms.
          retryAttempts: 20,
          maxEventAge: Duration.hours(2),
          deadLetterQueue: this.rollbackNotStarted,
        }),
      ],
    });
    alarms.push(undelivered.alarm);
    // Every alarm tells the operators, on ALARM and when it is OK again.
    for (const alarm of alarms) {
      alarm.addAlarmAction(new cloudwatchActions.SnsAction(props.notify));
      alarm.addOkAction(new cloudwatchActions.SnsAction(props.notify));
    }
    this.stateMachines = machines as Record<(typeof STATE_MACHINES)[number], sfn.StateMachine>;
    this.alarms = [...alarms, ...this.sync.alarms];
  }

  /**
   * What a Distributed Map needs, which CDK does not add for an ASL file: starting its child executions (of this
   * state machine), describing and stopping them, redriving its map runs, reading the item lists and writing the
   * results in the archive under `<prefix>/runs/`. A policy of its own (not the role's default policy, on which
   * the state machine depends): it names the state machine, so in the default policy it would make a cycle.
   */
  private allowMapRuns(
    name: string,
    machine: sfn.StateMachine,
    archive: PhaseStateMachinesProps['archive'],
  ): void {
    const stack = Stack.of(this);
    const executions = (pattern: string) =>
      stack.formatArn({
        service: 'states',
        resource: 'execution',
        resourceName: `${machine.stateMachineName}${pattern}`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      });
    const runs = archive.bucket.arnForObjects(`${archive.prefix}/runs/*`);
    // The archive is encrypted with the stack's key: reading the chunk lists and writing the results use it.
    archive.bucket.encryptionKey?.grant(machine, 'kms:Decrypt', 'kms:GenerateDataKey');
    const policy = new iam.Policy(this, `${name}MapRuns`, {
      roles: [machine.role],
      statements: [
        new iam.PolicyStatement({ actions: ['states:StartExecution'], resources: [machine.stateMachineArn] }),
        new iam.PolicyStatement({
          actions: ['states:DescribeExecution', 'states:StopExecution'],
          resources: [executions(':*'), executions('/*')],
        }),
        new iam.PolicyStatement({ actions: ['states:RedriveExecution'], resources: [executions('/*')] }),
        new iam.PolicyStatement({
          actions: ['s3:GetObject', 's3:PutObject', 's3:ListMultipartUploadParts', 's3:AbortMultipartUpload'],
          resources: [runs],
        }),
      ],
    });
    const region = Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region;
    const account = Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account;
    const machineName = `<${stack.getLogicalId(machine.node.defaultChild as CfnElement)}.Name>`;
    const bucketArn = `<${stack.getLogicalId(archive.bucket.node.defaultChild as CfnElement)}.Arn>`;
    for (const [resource, reason] of [
      [
        `arn:<AWS::Partition>:states:${region}:${account}:execution:${machineName}:*`,
        `The ${name} state machine's own executions: their names are made when they start.`,
      ],
      [
        `arn:<AWS::Partition>:states:${region}:${account}:execution:${machineName}/*`,
        `The child executions of the ${name} state machine's Distributed Map: their names are made by its map runs.`,
      ],
      [
        `${bucketArn}/${archive.prefix}/runs/*`,
        `The chunk lists and map-run results of runs, under ${archive.prefix}/runs/ of the archive only.`,
      ],
    ] as const)
      Validations.of(policy).acknowledge({
        id: `AwsSolutions::AwsSolutions-IAM5[Resource::${resource}]`,
        reason,
      });
  }

  /**
   * A `states:startExecution.sync:2` Task: the machine starts the child, follows it (DescribeExecution, and the
   * managed EventBridge rule Step Functions uses to learn it ended), and stops it when stopped itself.
   */
  private allowNested(name: string, machine: sfn.StateMachine, child: sfn.StateMachine): void {
    child.grantStartExecution(machine);
    child.grantExecution(machine, 'states:DescribeExecution', 'states:StopExecution');
    const stack = Stack.of(this);
    machine.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'],
        resources: [
          stack.formatArn({
            service: 'events',
            resource: 'rule',
            resourceName: 'StepFunctionsGetEventsForStepFunctionsExecutionRule',
          }),
        ],
      }),
    );
    const region = Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region;
    const account = Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account;
    Validations.of(machine).acknowledge({
      id: `AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:${region}:${account}:execution:{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"${stack.getLogicalId(child.node.defaultChild as CfnElement)}"}]}]}:*]`,
      reason: `${name} follows and stops the executions of the sync state machine it starts (nested); their names are not known in advance.`,
    });
  }
}
