import { Duration, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { SyncConfig } from '../lambdas/core/config/schema.ts';
import { METRICS_NAMESPACE, metricDimensions } from '../lambdas/core/metrics.ts';
import { deadLetterQueue } from './dead-letter-queue.ts';

export interface SyncScheduleProps {
  /** The sync state machine: one pass per execution. */
  readonly stateMachine: sfn.IStateMachine;
  readonly sync: SyncConfig;
  /** The functions that enable and disable the schedule (registry reach `schedule`: data's finish and rollback). */
  readonly toggledBy: readonly NodejsFunction[];
  /** Encrypts the dead-letter queue of passes the schedule could not start. */
  readonly key: kms.IKey;
  /** Where the alarms go, on ALARM and back to OK. */
  readonly notify: sns.ITopic;
}

/** `5m` → 5 minutes, `1h` → 1 hour: the schedule's rate (whole minutes; the config allows nothing finer). */
export function everyDuration(every: string): Duration {
  const n = Number(every.slice(0, -1));
  return every.endsWith('h') ? Duration.hours(n) : Duration.minutes(n);
}

/**
 * The sync schedule: an EventBridge Scheduler schedule that starts the sync state machine every `sync.every`, created
 * DISABLED (data's finish enables it, data's rollback disables it), flexible window off, with its own role (start
 * executions of that one state machine), two retries within one period and a dead-letter queue that alarms. A pass
 * that would overlap the one in flight is refused by the run lock at its start. Also the lag alarm: a table's lag
 * (SyncLagSeconds, the largest of a pass) over `sync.maxLagSeconds`.
 */
export class SyncSchedule extends Construct {
  readonly schedule: scheduler.Schedule;
  readonly role: iam.Role;
  readonly deadLetters: sqs.Queue;
  readonly lagAlarm: cloudwatch.Alarm;
  readonly alarms: readonly cloudwatch.Alarm[];

  constructor(scope: Construct, id: string, props: SyncScheduleProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const every = everyDuration(props.sync.every);
    const undelivered = deadLetterQueue(this, 'PassesNotStarted', {
      key: props.key,
      of: 'the sync schedule',
      alarmId: 'passesNotStarted',
      description:
        'The sync schedule could not start a pass (retries spent): the target falls behind until one runs (npx shifu-migrate run sync). The events are in the queue Sync/PassesNotStarted.',
    });
    this.deadLetters = undelivered.queue;
    // Its own role: Scheduler may start executions of the sync state machine, nothing else, for this account's
    // schedules only.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
      description: 'shifu-migrate: the sync schedule starts sync passes',
    });
    props.stateMachine.grantStartExecution(this.role);
    // Undelivered events go to the encrypted queue: the queue's grant adds the key's encrypt actions.
    this.deadLetters.grantSendMessages(this.role);
    for (const action of ['kms:ReEncrypt*', 'kms:GenerateDataKey*'])
      Validations.of(this.role).acknowledge({
        id: `AwsSolutions::AwsSolutions-IAM5[Action::${action}]`,
        reason:
          'What SQS needs of the stack key to take an event into the encrypted dead-letter queue (the grant of sqs.Queue.grantSendMessages), on that one key.',
      });
    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      description: `shifu-migrate: a sync pass every ${props.sync.every} (enabled when data succeeds)`,
      schedule: scheduler.ScheduleExpression.rate(every),
      enabled: false,
      timeWindow: scheduler.TimeWindow.off(),
      target: new schedulerTargets.StepFunctionsStartExecution(props.stateMachine, {
        role: this.role,
        input: scheduler.ScheduleTargetInput.fromObject({ startedBy: 'schedule' }),
        // StartExecution throttled or failing: retried within one period, then kept for the operator.
        retryAttempts: 2,
        maxEventAge: every.toSeconds() < 60 ? Duration.minutes(1) : every,
        deadLetterQueue: this.deadLetters,
      }),
    });
    // Data's finish and rollback: GetSchedule then UpdateSchedule (which sends the target's role again).
    for (const fn of props.toggledBy) {
      fn.addEnvironment(
        'SHIFU_MIGRATE_SYNC_SCHEDULE',
        stack.toJsonString({ name: this.schedule.scheduleName, group: 'default' }),
      );
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ['scheduler:GetSchedule', 'scheduler:UpdateSchedule'],
          resources: [this.schedule.scheduleArn],
        }),
      );
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ['iam:PassRole'],
          resources: [this.role.roleArn],
          conditions: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } },
        }),
      );
    }
    this.lagAlarm = new cloudwatch.Alarm(this, 'syncLag', {
      metric: new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: 'SyncLagSeconds',
        dimensionsMap: metricDimensions('sync'),
        statistic: 'Maximum',
        period: Duration.minutes(5),
      }),
      threshold: props.sync.maxLagSeconds,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      // No pass, no figure: before data (schedule disabled) that is expected; a stalled schedule alarms above.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: `A table of the target is more than ${props.sync.maxLagSeconds} s behind the legacy database (sync.maxLagSeconds).`,
    });
    this.alarms = [undelivered.alarm, this.lagAlarm];
    for (const alarm of this.alarms) {
      alarm.addAlarmAction(new cloudwatchActions.SnsAction(props.notify));
      alarm.addOkAction(new cloudwatchActions.SnsAction(props.notify));
    }
  }
}
