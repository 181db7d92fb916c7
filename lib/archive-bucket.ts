import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/** Props of the archive bucket. */
export interface ArchiveBucketProps {
  /** The customer-managed key that encrypts the archive (SSE-KMS, with an S3 bucket key). */
  readonly key: kms.IKey;
  /**
   * Days before archived objects move to Glacier Flexible Retrieval.
   * @default 30
   */
  readonly archiveAfterDays?: number;
  /** Where go-live's archive of the legacy tables is in the bucket: no one may delete there. */
  readonly legacyArchivePrefix: string;
}

/**
 * Where reports and archived legacy data live: encrypted, TLS only, never public, versioned, moved to an
 * archive tier after a while, and kept when the stack is deleted (it holds the legacy data's last copy).
 */
export class ArchiveBucket extends Construct {
  readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: ArchiveBucketProps) {
    super(scope, id);
    const logs = new s3.Bucket(this, 'AccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [{ expiration: Duration.days(365) }],
    });
    Validations.of(logs).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This is the access-log bucket of the archive; logging it to itself would loop.',
    });
    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: props.key,
      // One data key per bucket and period instead of a KMS call per object.
      bucketKeyEnabled: true,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      versioned: true,
      // Go-live writes the legacy archive's objects with a compliance-mode retention (golive.archive.retentionDays).
      objectLockEnabled: true,
      removalPolicy: RemovalPolicy.RETAIN,
      // aws-cdk-lib's own Bucket does not satisfy its IBucket under exactOptionalPropertyTypes (isWebsite).
      serverAccessLogsBucket: logs as unknown as s3.IBucket,
      serverAccessLogsPrefix: 'archive/',
      lifecycleRules: [
        {
          transitions: [
            {
              storageClass: s3.StorageClass.GLACIER,
              transitionAfter: Duration.days(props.archiveAfterDays ?? 30),
            },
          ],
          noncurrentVersionExpiration: Duration.days(365),
        },
      ],
    });
    // Not even a delete marker over the legacy archive: its objects stay current, whoever asks.
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:BypassGovernanceRetention'],
        resources: [this.bucket.arnForObjects(`${props.legacyArchivePrefix}/*`)],
      }),
    );
  }
}
