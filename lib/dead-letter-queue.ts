import { Duration, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

/**
 * A queue for the events a rule or a schedule could not deliver (retries spent): encrypted with the stack's key, TLS
 * only, kept 14 days, and an alarm as soon as one is in it (`description` says what to do).
 */
export function deadLetterQueue(
  scope: Construct,
  id: string,
  props: { key: kms.IKey; of: string; alarmId: string; description: string },
): { queue: sqs.Queue; alarm: cloudwatch.Alarm } {
  const queue = new sqs.Queue(scope, id, {
    encryption: sqs.QueueEncryption.KMS,
    encryptionMasterKey: props.key,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
  });
  for (const check of ['AwsSolutions::AwsSolutions-SQS3', 'Serverless::Serverless-SQSRedrivePolicy'])
    Validations.of(queue).acknowledge({
      id: check,
      reason: `This queue is the dead-letter queue of ${props.of}: it has none of its own.`,
    });
  const alarm = new cloudwatch.Alarm(scope, props.alarmId, {
    metric: queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) }),
    threshold: 1,
    evaluationPeriods: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    alarmDescription: props.description,
  });
  return { queue, alarm };
}
