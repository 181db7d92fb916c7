import { Annotations, CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import type { Config } from '../lambdas/core/config/schema.ts';
import { METRICS_NAMESPACE, type MetricName } from '../lambdas/core/metrics.ts';
import { parseDatabaseUrl } from '../lambdas/core/sql/url.ts';
import { ArchiveBucket } from './archive-bucket.ts';
import { ARCHIVE_PREFIX, type DataApiDatabase, MigrationFunctions } from './migration-functions.ts';
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
  readonly functions: MigrationFunctions;
  readonly phases: PhaseStateMachines;
  /** The Aurora Serverless v2 cluster made for a trial (config aws.trialCluster). */
  readonly trialCluster?: TrialCluster;

  constructor(scope: Construct, id: string, props: ShifuMigrateStackProps) {
    super(scope, id, props);
    const databases: { source?: DataApiDatabase; target?: DataApiDatabase } = {};
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
    }
    for (const which of ['source', 'target'] as const) {
      if (databases[which] !== undefined) continue;
      const url = parseDatabaseUrl(props.config[which].url);
      if (url.kind === 'rdsdata')
        databases[which] = { clusterArn: url.resourceArn, secretArn: url.secretArn };
      else {
        Annotations.of(this).addWarningV2(
          'shifu-migrate:mysql-url',
          `${url.raw.replace(/:[^:@/]*@/, ':***@')} is a mysql:// URL: the deployed functions reach databases through the RDS Data API (rdsdata://<cluster-arn>/<db>?secret=<secret-arn>)`,
        );
      }
    }
    this.archive = new ArchiveBucket(this, 'Archive');
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
    const metric = (metricName: MetricName, statistic: string) =>
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName,
        dimensionsMap: { Phase: 'data' },
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
      ...Object.entries(this.functions.functions).map(
        ([key, fn]) =>
          new cloudwatch.GraphWidget({
            title: `${key.replace('FunctionArn', '')} function`,
            left: [fn.metricInvocations(), fn.metricErrors(), fn.metricThrottles()],
            right: [fn.metricDuration({ statistic: 'p90' })],
            width: 8,
          }),
      ),
    );
  }
}
