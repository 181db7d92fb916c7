import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CfnElement, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { type FunctionKey, ROLLBACK_PHASES, STATE_MACHINES } from '../lambdas/registry.ts';

/** The ASL files, found from this module (not the working directory). */
export const STATEMACHINES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'statemachines');

export interface PhaseStateMachinesProps {
  readonly functions: Readonly<Record<FunctionKey, NodejsFunction>>;
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

  constructor(scope: Construct, id: string, props: PhaseStateMachinesProps) {
    super(scope, id);
    const machines: Partial<Record<(typeof STATE_MACHINES)[number], sfn.StateMachine>> = {};
    const alarms: cloudwatch.Alarm[] = [];
    for (const name of STATE_MACHINES) {
      const file = join(STATEMACHINES_DIR, `${name}.asl.json`);
      const used = [
        ...new Set(
          [...readFileSync(file, 'utf8').matchAll(/\$\{([A-Za-z0-9]+)\}/g)].map((m) => m[1] as FunctionKey),
        ),
      ];
      const logGroup = new logs.LogGroup(this, `${name}Logs`, {
        retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      });
      const machine = new sfn.StateMachine(this, name, {
        definitionBody: sfn.DefinitionBody.fromFile(file),
        definitionSubstitutions: Object.fromEntries(
          used.map((key) => [key, props.functions[key].functionArn]),
        ),
        logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
        tracingEnabled: true,
      });
      for (const key of used) props.functions[key].grantInvoke(machine);
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
    for (const phase of ROLLBACK_PHASES) {
      const phaseAlarms = alarms.filter((a) => a.node.id.startsWith(phase));
      new events.Rule(this, `${phase}RollbackOnAlarm`, {
        description: `A ${phase} alarm entering ALARM starts the rollback state machine for ${phase}.`,
        eventPattern: {
          source: ['aws.cloudwatch'],
          detailType: ['CloudWatch Alarm State Change'],
          resources: phaseAlarms.map((a) => a.alarmArn),
          detail: { state: { value: ['ALARM'] } },
        },
        targets: [
          new targets.SfnStateMachine(rollback, { input: events.RuleTargetInput.fromObject({ phase }) }),
        ],
      });
    }
    this.stateMachines = machines as Record<(typeof STATE_MACHINES)[number], sfn.StateMachine>;
    this.alarms = alarms;
  }
}
