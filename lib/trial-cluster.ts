import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as rds from 'aws-cdk-lib/aws-rds';
import { Construct } from 'constructs';

/**
 * An Aurora Serverless v2 MySQL cluster with the Data API, for trying the migration without a cluster of one's
 * own: it holds both the legacy and the SaaS database (load the legacy one with mysqldump through a bastion or
 * the query editor). Isolated subnets only: the functions reach it through the Data API, not the network.
 */
export class TrialCluster extends Construct {
  readonly cluster: rds.DatabaseCluster;
  readonly secretArn: string;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'database', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 }],
      flowLogs: { rejected: { trafficType: ec2.FlowLogTrafficType.REJECT } },
    });
    this.cluster = new rds.DatabaseCluster(this, 'Cluster', {
      // Aurora MySQL 3.07 or later has the Data API for provisioned and Serverless v2 clusters.
      engine: rds.DatabaseClusterEngine.auroraMysql({ version: rds.AuroraMysqlEngineVersion.VER_3_10_3 }),
      writer: rds.ClusterInstance.serverlessV2('writer'),
      serverlessV2MinCapacity: 0.5,
      serverlessV2MaxCapacity: 8,
      vpc: vpc as unknown as ec2.IVpc, // exactOptionalPropertyTypes: Vpc does not satisfy its own IVpc
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      enableDataApi: true,
      storageEncrypted: true,
      iamAuthentication: true,
      credentials: rds.Credentials.fromGeneratedSecret('shifu_admin'),
      backup: { retention: Duration.days(7) },
      // A trial: a final snapshot keeps the data when the stack goes.
      removalPolicy: RemovalPolicy.SNAPSHOT,
    });
    if (this.cluster.secret === undefined) throw new Error('the trial cluster has no generated secret');
    this.secretArn = this.cluster.secret.secretArn;
    for (const [id, reason] of [
      ['AwsSolutions-RDS10', 'A trial cluster: it is deleted with the stack (after a final snapshot).'],
      [
        'AwsSolutions-RDS11',
        'No network path reaches it (isolated subnets); the functions use the Data API.',
      ],
      ['AwsSolutions-RDS14', 'Backtrack is not available on Aurora Serverless v2.'],
      [
        'AwsSolutions-SMG4',
        'A trial cluster lives for days; rotation would add a rotation Lambda in the VPC.',
      ],
    ] as const) {
      Validations.of(this).acknowledge({ id, reason });
    }
  }
}
