import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CfnElement, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as secrets from 'aws-cdk-lib/aws-secretsmanager';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { listenerRuleArns } from '../lambdas/application/router.ts';
import type { Config } from '../lambdas/core/config/schema.ts';
import { ARCHIVE_ROOT } from '../lambdas/golive/archive.ts';
import { FUNCTIONS, type FunctionKey, type FunctionSpec, type Reach } from '../lambdas/registry.ts';

const LAMBDAS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'lambdas');

/** Lambda's limit on all environment variables of a function together. */
/** The key prefix of everything the functions keep in the archive bucket: reports, runs' chunk lists, results. */
export const ARCHIVE_PREFIX = 'migration';
/** Where go-live's archive of the legacy tables is, under the archive prefix (lambdas/golive/archive.ts). */
export const LEGACY_ARCHIVE_ROOT = ARCHIVE_ROOT;

/** An Aurora cluster reached through the RDS Data API. */
export interface DataApiDatabase {
  readonly clusterArn: string;
  readonly secretArn: string;
}

/** The config's databases on AWS; a mysql:// URL has none (the stack warns). */
export interface MigrationDatabases {
  readonly source?: DataApiDatabase | undefined;
  /** Where reverse sync writes legacy (the config's source.writeUrl; default: the source). */
  readonly sourceWriter?: DataApiDatabase | undefined;
  readonly target?: DataApiDatabase | undefined;
}

export interface MigrationFunctionsProps {
  /** The validated config the functions run with (its archive URL is replaced by the archive bucket's). */
  readonly config: Config;
  /** The databases the functions may call through the Data API: each function gets those it uses. */
  readonly databases: MigrationDatabases;
  readonly archive: s3.IBucket;
  /**
   * Log retention of every function's log group.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * The key (in the archive, under {@link ARCHIVE_PREFIX}) of a config version: made from its content, so a
 * deployment with another config writes another object and never replaces the one a running execution names.
 */
export function configVersionKey(stored: unknown): string {
  return `config/${createHash('sha256').update(JSON.stringify(stored)).digest('hex').slice(0, 16)}.json`;
}

/**
 * One NodejsFunction per task (registry.ts), bundled by esbuild as ESM for Node 24 on arm64, each with its own
 * log group. The config is written to the archive bucket as a version of its own (`configKey`), which every state
 * machine names in its task payloads; the environment only says where the archive is and which version is the
 * deployed one. The grants that make the config usable (Data API on the clusters, the secrets, the archive bucket)
 * are given in the same place.
 */
export class MigrationFunctions extends Construct {
  readonly functions: Readonly<Record<FunctionKey, NodejsFunction>>;
  /** The deployed config version's key in the archive (relative to {@link ARCHIVE_PREFIX}). */
  readonly configKey: string;

  constructor(scope: Construct, id: string, props: MigrationFunctionsProps) {
    super(scope, id);
    // The functions need neither the CLI's view of the deployed stack nor the operator's alarms; the archive is
    // the stack's bucket, which the environment names.
    const { aws: _aws, archive: _archive, ...stored } = props.config;
    this.configKey = configVersionKey(stored);
    // One PutObject at deployment, by a custom resource that may put config objects and nothing else (no delete:
    // every version stays, as a running execution may name an older one).
    const object = props.archive.arnForObjects(`${ARCHIVE_PREFIX}/config/*`);
    const deployment = new cr.AwsCustomResource(this, 'Config', {
      onUpdate: {
        service: 'S3',
        action: 'putObject',
        parameters: {
          Bucket: props.archive.bucketName,
          Key: `${ARCHIVE_PREFIX}/${this.configKey}`,
          Body: Stack.of(this).toJsonString(stored),
          ContentType: 'application/json',
        },
        physicalResourceId: cr.PhysicalResourceId.of(this.configKey),
        // The call's parameters are the config: not written to the provider's logs.
        logging: cr.Logging.withDataHidden(),
      },
      policy: cr.AwsCustomResourcePolicy.fromStatements([
        new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [object] }),
        ...(props.archive.encryptionKey === undefined
          ? []
          : [
              new iam.PolicyStatement({
                actions: ['kms:GenerateDataKey'],
                resources: [props.archive.encryptionKey.keyArn],
              }),
            ]),
      ]),
      installLatestAwsSdk: false,
      memorySize: 256,
    });
    const bucketArnOf = `<${Stack.of(this).getLogicalId(props.archive.node.defaultChild as CfnElement)}.Arn>`;
    Validations.of(deployment).acknowledge({
      id: `AwsSolutions::AwsSolutions-IAM5[Resource::${bucketArnOf}/${ARCHIVE_PREFIX}/config/*]`,
      reason: 'PutObject of config versions only, whose keys are made from their content.',
    });
    // CDK's one provider function for AwsCustomResource in the stack: it only writes its own logs with this policy.
    const provider = Stack.of(this).node.tryFindChild(
      `AWS${cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replaceAll('-', '')}`,
    );
    if (provider !== undefined) {
      Validations.of(provider).acknowledge({
        id: 'AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason:
          "AWSLambdaBasicExecutionRole only lets CDK's custom-resource function write its own logs; its calls are the Config resource's policy.",
      });
      for (const [id, reason] of [
        [
          'Serverless::Serverless-LambdaDLQ',
          "CDK's custom-resource function answers CloudFormation, which fails the deployment when no answer comes: nothing to keep in a queue.",
        ],
        [
          'Serverless::Serverless-LambdaTracing',
          "CDK's custom-resource function makes one PutObject per deployment; CDK does not let it be traced.",
        ],
      ] as const)
        Validations.of(provider).acknowledge({ id, reason });
    }
    const environment = {
      SHIFU_MIGRATE_ARCHIVE: `s3://${props.archive.bucketName}/${ARCHIVE_PREFIX}`,
      SHIFU_MIGRATE_CONFIG_KEY: this.configKey,
      NODE_OPTIONS: '--enable-source-maps',
    };
    const functions: Partial<Record<FunctionKey, NodejsFunction>> = {};
    const bucketArn = `<${Stack.of(this).getLogicalId(props.archive.node.defaultChild as CfnElement)}.Arn>`;
    const secretsRead = new Map<string, secrets.ISecret>();
    const secret = (arn: string) => {
      let found = secretsRead.get(arn);
      if (found === undefined) {
        found = secrets.Secret.fromSecretCompleteArn(this, `Secret${secretsRead.size}`, arn);
        secretsRead.set(arn, found);
      }
      return found;
    };
    for (const [key, spec] of Object.entries(FUNCTIONS) as [FunctionKey, FunctionSpec][]) {
      const logGroup = new logs.LogGroup(this, `${spec.name}Logs`, {
        retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      });
      const fn = new NodejsFunction(this, spec.name, {
        entry: join(LAMBDAS_DIR, spec.module, 'handler.ts'),
        handler: spec.handler,
        runtime: lambda.Runtime.NODEJS_24_X,
        architecture: lambda.Architecture.ARM_64,
        memorySize: spec.memoryMb,
        timeout: Duration.minutes(spec.timeoutMinutes),
        ...(spec.reservedConcurrency === undefined
          ? {}
          : { reservedConcurrentExecutions: spec.reservedConcurrency(props.config) }),
        logGroup,
        tracing: lambda.Tracing.ACTIVE,
        environment: {
          ...environment,
          // Reverse sync opens a writer on legacy only where the stack grants it.
          ...(spec.reaches.includes('source:write') ? { SHIFU_MIGRATE_SOURCE_WRITE: '1' } : {}),
          // The stack's alarms are named after it: the gates read those in ALARM.
          ...(spec.reaches.includes('alarms')
            ? { SHIFU_MIGRATE_ALARM_PREFIX: `${Stack.of(this).stackName}-` }
            : {}),
          ...(spec.reaches.includes('secrets') ? { SHIFU_MIGRATE_SECRETS: '1' } : {}),
        },
        bundling: {
          format: OutputFormat.ESM,
          target: 'node24',
          sourceMap: true,
          minify: true,
          mainFields: ['module', 'main'],
          // The SDK the tests ran against, not whichever version the Lambda runtime ships.
          bundleAwsSDK: true,
          // mysql2 and other CommonJS dependencies call require() inside the ESM bundle.
          banner:
            "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
        },
      });
      // Exactly what the registry entry says the function reaches.
      const reaches = new Set<Reach>(spec.reaches);
      for (const which of ['source', 'target'] as const) {
        const database = props.databases[which];
        if (!reaches.has(which) || database === undefined) continue;
        iam.Grant.addToPrincipal({
          grantee: fn,
          // The source is only read: statements, and transactions for a row read in slices (one snapshot), no
          // batches (its database user is what makes it read-only; the Data API cannot).
          actions:
            which === 'source'
              ? [
                  'rds-data:ExecuteStatement',
                  'rds-data:BeginTransaction',
                  'rds-data:CommitTransaction',
                  'rds-data:RollbackTransaction',
                ]
              : [
                  'rds-data:ExecuteStatement',
                  'rds-data:BatchExecuteStatement',
                  'rds-data:BeginTransaction',
                  'rds-data:CommitTransaction',
                  'rds-data:RollbackTransaction',
                ],
          resourceArns: [database.clusterArn],
        });
        secret(database.secretArn).grantRead(fn);
      }
      // The integration checks the secrets the config references exist: DescribeSecret on those ARNs only.
      const secretArns = [
        ...new Set(
          Object.values(props.config.integration.oauth)
            .flat()
            .flatMap((p) => ('secretArn' in p.clientSecret ? [p.clientSecret.secretArn] : [])),
        ),
      ];
      if (reaches.has('secrets') && secretArns.length > 0)
        fn.addToRolePolicy(
          new iam.PolicyStatement({ actions: ['secretsmanager:DescribeSecret'], resources: secretArns }),
        );
      // The gates read alarm states: DescribeAlarms takes no resource.
      if (reaches.has('alarms')) {
        fn.addToRolePolicy(
          new iam.PolicyStatement({ actions: ['cloudwatch:DescribeAlarms'], resources: ['*'] }),
        );
        Validations.of(fn).acknowledge({
          id: 'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
          reason: 'cloudwatch:DescribeAlarms supports no resource-level permission.',
        });
      }
      // The switch manages listener rules on the configured listener only: creates them there (tagged), deletes
      // and tags rules under it; describing rules takes no resource.
      const lb = props.config.application.loadBalancer;
      if (reaches.has('load-balancer') && lb !== undefined) {
        const rules = listenerRuleArns(lb.listenerArn);
        fn.addToRolePolicy(
          new iam.PolicyStatement({
            actions: ['elasticloadbalancing:CreateRule'],
            resources: [lb.listenerArn],
          }),
        );
        fn.addToRolePolicy(
          new iam.PolicyStatement({ actions: ['elasticloadbalancing:DeleteRule'], resources: [rules] }),
        );
        fn.addToRolePolicy(
          new iam.PolicyStatement({
            actions: ['elasticloadbalancing:AddTags'],
            resources: [rules],
            conditions: { StringEquals: { 'elasticloadbalancing:CreateAction': 'CreateRule' } },
          }),
        );
        fn.addToRolePolicy(
          new iam.PolicyStatement({ actions: ['elasticloadbalancing:DescribeRules'], resources: ['*'] }),
        );
        Validations.of(fn).acknowledge({
          id: 'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
          reason: 'elasticloadbalancing:DescribeRules supports no resource-level permission.',
        });
        Validations.of(fn).acknowledge({
          id: `AwsSolutions::AwsSolutions-IAM5[Resource::${rules}]`,
          reason: 'The rules of the one configured listener: their ids are made as tenants switch.',
        });
      }
      // Reverse sync writes legacy: statements and transactions on the writer's cluster (never batches), its secret.
      const writer = props.databases.sourceWriter ?? props.databases.source;
      if (reaches.has('source:write') && writer !== undefined) {
        iam.Grant.addToPrincipal({
          grantee: fn,
          actions: [
            'rds-data:ExecuteStatement',
            'rds-data:BeginTransaction',
            'rds-data:CommitTransaction',
            'rds-data:RollbackTransaction',
          ],
          resourceArns: [writer.clusterArn],
        });
        secret(writer.secretArn).grantRead(fn);
      }
      // Every function reads its config version; beyond that, get, put and list as stated, never delete (the
      // archive keeps the legacy data's last copy, and its older versions).
      const objects = props.archive.arnForObjects('*');
      // A function that gets objects may also list the bucket: without s3:ListBucket, S3 answers a missing key
      // with 403 AccessDenied instead of 404, and a missing object could not be told from a refused one.
      const objectActions = [
        ...(reaches.has('archive:get') ? ['s3:GetObject'] : []),
        ...(reaches.has('archive:put') ? ['s3:PutObject', 's3:AbortMultipartUpload'] : []),
      ];
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ['s3:GetObject'],
          resources: [props.archive.arnForObjects(`${ARCHIVE_PREFIX}/config/*`)],
        }),
      );
      if (objectActions.length > 0)
        fn.addToRolePolicy(new iam.PolicyStatement({ actions: objectActions, resources: [objects] }));
      // Go-live's archive writes the legacy data under Object Lock: a retention may be set (at the put), never
      // shortened (compliance mode), and only on the legacy archive's objects.
      if (reaches.has('archive:lock'))
        fn.addToRolePolicy(
          new iam.PolicyStatement({
            actions: ['s3:PutObjectRetention'],
            resources: [props.archive.arnForObjects(`${ARCHIVE_PREFIX}/${LEGACY_ARCHIVE_ROOT}/*`)],
          }),
        );
      if (reaches.has('archive:list') || reaches.has('archive:get'))
        fn.addToRolePolicy(
          new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [props.archive.bucketArn] }),
        );
      if (reaches.has('archive:put')) props.archive.encryptionKey?.grantEncryptDecrypt(fn);
      else props.archive.encryptionKey?.grantDecrypt(fn);
      // The config object is there before any function runs.
      fn.node.addDependency(deployment);
      Validations.of(fn).acknowledge({
        id: 'Serverless::Serverless-LambdaDLQ',
        reason:
          'Step Functions invokes the function synchronously and retries or catches its errors; a dead-letter queue holds only asynchronous invocations.',
      });
      Validations.of(fn).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason:
          'AWSLambdaBasicExecutionRole only lets the function write its own logs; CDK attaches it to every Lambda role.',
      });
      const wildcards: [string, string][] = [
        ['Resource::*', 'X-Ray PutTraceSegments and PutTelemetryRecords take no resource.'],
        [
          `Resource::${bucketArn}/${ARCHIVE_PREFIX}/config/*`,
          'GetObject on the config versions only: the function reads the version its execution names.',
        ],
      ];
      if (reaches.has('archive:lock'))
        wildcards.push([
          `Resource::${bucketArn}/${ARCHIVE_PREFIX}/${LEGACY_ARCHIVE_ROOT}/*`,
          "PutObjectRetention on the legacy archive's objects only, written by go-live under a compliance-mode retention.",
        ]);
      if (objectActions.length > 0)
        wildcards.push([
          `Resource::${bucketArn}/*`,
          `${objectActions.join(', ')} on the archive's objects, addressed by key (reports/…, runs/…, migration/…); no delete.`,
        ]);
      if (props.archive.encryptionKey !== undefined)
        for (const action of reaches.has('archive:put') ? ['kms:GenerateDataKey*', 'kms:ReEncrypt*'] : [])
          wildcards.push([
            `Action::${action}`,
            "Encrypting what the function puts in the archive with the archive's own key (grantEncryptDecrypt).",
          ]);
      for (const [finding, reason] of wildcards) {
        Validations.of(fn).acknowledge({ id: `AwsSolutions::AwsSolutions-IAM5[${finding}]`, reason });
      }
      functions[key] = fn;
    }
    this.functions = functions as Record<FunctionKey, NodejsFunction>;
  }
}
