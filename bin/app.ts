// The CDK app: one stack, typed props from cdk.json context. No process.env reads inside lib/.
import { App } from 'aws-cdk-lib';
import { ShifuMigrateStack } from '../lib/shifu-migrate-stack.ts';

const app = new App();
const retention = app.node.tryGetContext('shifu-migrate:logRetentionDays');
new ShifuMigrateStack(app, 'ShifuMigrate', {
  ...(retention === undefined ? {} : { logRetentionDays: Number(retention) }),
  description: 'shifu-migrate: phase-by-phase migration of AI-Shifu to a multi-tenant database',
});
app.synth();
