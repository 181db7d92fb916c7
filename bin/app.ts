// The CDK app: one stack, configured by the same config file the CLI reads (default shifu-migrate.config.json,
// or the cdk context value `config`), with SOURCE_DATABASE_URL / TARGET_DATABASE_URL overrides. lib/ reads no env.
import { App } from 'aws-cdk-lib';
import { loadConfig } from '../lambdas/core/config/load.ts';
import { ShifuMigrateStack } from '../lib/shifu-migrate-stack.ts';
import { demoConfig } from '../local/demo/config.ts';

const app = new App();
const file = app.node.tryGetContext('config');
const loaded = loadConfig({ file: typeof file === 'string' ? file : undefined, defaults: demoConfig });
new ShifuMigrateStack(app, 'ShifuMigrate', {
  config: loaded.config,
  description: 'shifu-migrate: phase-by-phase migration of AI-Shifu to a multi-tenant database',
});
app.synth();
