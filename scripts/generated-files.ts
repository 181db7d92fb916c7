import { z } from 'zod';
import { ConfigSchema } from '../lambdas/core/config/schema.ts';
import { demoConfig } from '../local/demo/config.ts';

/** Files generated from code and kept in the repository; a test fails when one is stale. */
export function generatedFiles(): Record<string, string> {
  const schema = z.toJSONSchema(ConfigSchema, { io: 'input', target: 'draft-2020-12' });
  const document = {
    ...schema,
    title: 'shifu-migrate config',
    description:
      'shifu-migrate.config.json: databases, archive, tenants and per-table tenant rules. Generated from lambdas/core/config/schema.ts by `npm run generate`.',
  };
  const example = { $schema: '../schema/shifu-migrate.config.schema.json', ...demoConfig() };
  return {
    'schema/shifu-migrate.config.schema.json': `${JSON.stringify(document, null, 2)}\n`,
    'examples/demo.config.json': `${JSON.stringify(example, null, 2)}\n`,
  };
}
