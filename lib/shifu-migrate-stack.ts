import {
  Annotations,
  CfnOutput,
  Duration,
  RemovalPolicy,
  Stack,
  type StackProps,
  Validations,
} from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type { Construct } from 'constructs';
import type { Config } from '../lambdas/core/config/schema.ts';
import { InputError } from '../lambdas/core/errors.ts';
import { METRICS_NAMESPACE, type MetricName, metricDimensions } from '../lambdas/core/metrics.ts';
import { parseDatabaseUrl, redactUrl } from '../lambdas/core/sql/url.ts';
import { FUNCTIONS, type FunctionKey } from '../lambdas/registry.ts';
import { ArchiveBucket } from './archive-bucket.ts';
import {
  ARCHIVE_PREFIX,
  type DataApiDatabase,
  LEGACY_ARCHIVE_ROOT,
  MigrationFunctions,
} from './migration-functions.ts';
import { PhaseStateMachines } from './phase-state-machines.ts';
import { TrialCluster } from './trial-cluster.ts';

/** Props of the migration stack. */
export interface ShifuMigrateStackProps extends StackProps {
  /** The validated migration config. Its databases must be `rdsdata://` URLs for the deployed functions to reach them. */
  readonly config: Config;
  /**
   * Log retention of the functions and state machines.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * The migration on AWS: the archive bucket, one Lambda function per task, one state machine per phase (and the
 * rollback), alarms that start the rollback, and a dashboard. The stack only composes constructs.
 */
export class ShifuMigrateStack extends Stack {
  readonly archive: ArchiveBucket;
  /** The customer-managed key of the archive, the alarm topic and the dead-letter queue. */
  readonly key: kms.Key;
  /** Every alarm of the stack goes here (e-mail subscriptions from aws.alarmEmails). */
  readonly alarmTopic: sns.Topic;
  readonly functions: MigrationFunctions;
  readonly phases: PhaseStateMachines;
  /** The Aurora Serverless v2 cluster made for a trial (config aws.trialCluster). */
  readonly trialCluster?: TrialCluster;

  constructor(scope: Construct, id: string, props: ShifuMigrateStackProps) {
    super(scope, id, props);
    const databases: { source?: DataApiDatabase; sourceWriter?: DataApiDatabase; target?: DataApiDatabase } =
      {};
    let config = props.config;
    if (props.config.aws?.trialCluster) {
      // Both databases on the trial cluster, under the names the config gives them.
      this.trialCluster = new TrialCluster(this, 'Trial');
      const trial = {
        clusterArn: this.trialCluster.cluster.clusterArn,
        secretArn: this.trialCluster.secretArn,
      };
      const onTrial = (raw: string) =>
        `rdsdata://${trial.clusterArn}/${parseDatabaseUrl(raw).database}?secret=${trial.secretArn}`;
      config = {
        ...config,
        source: { url: onTrial(config.source.url) },
        target: { url: onTrial(config.target.url) },
      };
      databases.source = trial;
      databases.target = trial;
      databases.sourceWriter = trial;
    }
    for (const which of ['source', 'target'] as const) {
      if (databases[which] !== undefined) continue;
      const url = parseDatabaseUrl(props.config[which].url);
      if (url.kind === 'rdsdata')
        databases[which] = { clusterArn: url.resourceArn, secretArn: url.secretArn };
      else {
        // The config is written to the archive and into the template: a password would be kept in both.
        if (url.kind === 'mysql' && url.password !== undefined)
          throw new InputError(
            `${which}.url ${redactUrl(url.raw)} holds a password, which the stack would write into its template and the archive: give the database as rdsdata://<cluster-arn>/<database>?secret=<secret-arn> (the password stays in Secrets Manager)`,
          );
        Annotations.of(this).addWarningV2(
          'shifu-migrate:mysql-url',
          `${redactUrl(url.raw)} is a mysql:// URL: the deployed functions reach databases through the RDS Data API (rdsdata://<cluster-arn>/<db>?secret=<secret-arn>)`,
        );
      }
    }
    const writeUrl = props.config.source.writeUrl;
    if (databases.sourceWriter === undefined && writeUrl !== undefined) {
      const url = parseDatabaseUrl(writeUrl);
      if (url.kind === 'rdsdata')
        databases.sourceWriter = { clusterArn: url.resourceArn, secretArn: url.secretArn };
      else if (url.kind === 'mysql' && url.password !== undefined)
        throw new InputError(
          `source.writeUrl ${redactUrl(url.raw)} holds a password, which the stack would write into its template and the archive: give it as rdsdata://<cluster-arn>/<database>?secret=<secret-arn>`,
        );
    }
    // One customer-managed key for what the stack keeps: the archive (the legacy data's last copy), the alarm
    // topic and the queue of alarm events that could not start the rollback. Rotated yearly.
    this.key = new kms.Key(this, 'Key', {
      enableKeyRotation: true,
      description: 'shifu-migrate: the archive, the alarm topic, the rollback dead-letter queue',
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // CloudWatch publishes alarms to the encrypted topic; EventBridge sends undelivered events to the queue.
    for (const service of ['cloudwatch.amazonaws.com', 'events.amazonaws.com'])
      this.key.grant(new iam.ServicePrincipal(service), 'kms:Decrypt', 'kms:GenerateDataKey*');
    this.alarmTopic = new sns.Topic(this, 'Alarms', {
      displayName: 'shifu-migrate alarms',
      masterKey: this.key,
      enforceSSL: true,
    });
    for (const email of props.config.aws?.alarmEmails ?? [])
      Validations.of(this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(email))).acknowledge(
        {
          id: 'Serverless::Serverless-SNSRedrivePolicy',
          reason:
            'An e-mail SNS cannot deliver is retried by SNS itself, and the alarm stays visible in CloudWatch; a queue of undelivered e-mails would be read by nobody.',
        },
      );
    this.archive = new ArchiveBucket(this, 'Archive', {
      key: this.key,
      legacyArchivePrefix: `${ARCHIVE_PREFIX}/${LEGACY_ARCHIVE_ROOT}`,
    });
    this.functions = new MigrationFunctions(this, 'Functions', {
      config,
      databases,
      // aws-cdk-lib's own Bucket does not satisfy its IBucket under exactOptionalPropertyTypes (isWebsite).
      archive: this.archive.bucket as unknown as import('aws-cdk-lib/aws-s3').IBucket,
      ...(props.logRetention === undefined ? {} : { logRetention: props.logRetention }),
    });
    this.phases = new PhaseStateMachines(this, 'Phases', {
      functions: this.functions.functions,
      archive: {
        bucket: this.archive.bucket as unknown as import('aws-cdk-lib/aws-s3').IBucket,
        prefix: ARCHIVE_PREFIX,
      },
      configKey: this.functions.configKey,
      notify: this.alarmTopic,
      key: this.key,
      sync: props.config.sync,
      rollbackOnAlarms: props.config.aws?.rollbackOnAlarms ?? [],
      ...(props.logRetention === undefined ? {} : { logRetention: props.logRetention }),
    });
    // What the CLI's AWS mode needs (config aws.stateMachines).
    for (const [name, machine] of Object.entries(this.phases.stateMachines)) {
      new CfnOutput(this, `${name}StateMachineArn`, {
        value: machine.stateMachineArn,
        description: `aws.stateMachines.${name} in the shifu-migrate config`,
      });
    }
    const metric = (metricName: MetricName, statistic: string, phase = 'data') =>
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName,
        dimensionsMap: metricDimensions(phase),
        statistic,
        period: Duration.minutes(1),
      });
    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { defaultInterval: Duration.hours(6) });
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Rows copied per minute',
        left: [metric('RowsCopied', 'Sum'), metric('RowsQuarantined', 'Sum')],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Chunk duration (ms)',
        left: [
          metric('ChunkDuration', 'p50'),
          metric('ChunkDuration', 'p90'),
          metric('ChunkDuration', 'Maximum'),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Checksum mismatches',
        left: [metric('ChecksumMismatches', 'Sum'), metric('ChunksRecopied', 'Sum')],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Sync lag (s, largest table per pass)',
        left: [metric('SyncLagSeconds', 'Maximum', 'sync')],
        leftAnnotations: [{ value: props.config.sync.maxLagSeconds, label: 'sync.maxLagSeconds' }],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Sync: rows written and deleted, chunks repaired, tenant conflicts',
        left: [
          metric('SyncRowsApplied', 'Sum', 'sync'),
          metric('SyncRowsDeleted', 'Sum', 'sync'),
          metric('SyncChunksRepaired', 'Sum', 'sync'),
        ],
        right: [metric('TenantConflicts', 'Maximum', 'sync')],
        width: 8,
      }),
      // One graph per tenant: its rows once data copied, its open tenant conflicts after each sync pass.
      ...props.config.tenants.map(
        (t) =>
          new cloudwatch.GraphWidget({
            title: `Tenant ${t.bid}: rows, open conflicts, lag (its owner's direction)`,
            left: [
              new cloudwatch.Metric({
                namespace: METRICS_NAMESPACE,
                metricName: 'TenantRows',
                dimensionsMap: metricDimensions('data', t.bid),
                statistic: 'Maximum',
                period: Duration.minutes(5),
              }),
            ],
            right: [
              new cloudwatch.Metric({
                namespace: METRICS_NAMESPACE,
                metricName: 'TenantConflicts',
                dimensionsMap: metricDimensions('sync', t.bid),
                statistic: 'Maximum',
                period: Duration.minutes(5),
              }),
              new cloudwatch.Metric({
                namespace: METRICS_NAMESPACE,
                metricName: 'SyncLagSeconds',
                dimensionsMap: metricDimensions('sync', t.bid),
                statistic: 'Maximum',
                period: Duration.minutes(5),
              }),
            ],
            width: 6,
          }),
      ),
      ...Object.entries(this.phases.stateMachines).map(
        ([name, machine]) =>
          new cloudwatch.GraphWidget({
            title: `${name} executions`,
            left: [
              machine.metricStarted(),
              machine.metricSucceeded(),
              machine.metricFailed(),
              machine.metricAborted(),
            ],
            width: 6,
          }),
      ),
      // One graph per function: a copy error, a validation error and a throttled copy are told apart.
      ...(Object.entries(this.functions.functions) as [FunctionKey, NodejsFunction][]).map(
        ([key, fn]) =>
          new cloudwatch.GraphWidget({
            title: `${FUNCTIONS[key].name}: invocations, errors, throttles; duration p90`,
            left: [fn.metricInvocations(), fn.metricErrors(), fn.metricThrottles()],
            right: [fn.metricDuration({ statistic: 'p90' })],
            width: 8,
          }),
      ),
    );
  }
}
