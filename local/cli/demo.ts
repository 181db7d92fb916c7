import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { ident } from '../../lambdas/core/identifiers.ts';
import { introspect } from '../../lambdas/core/schema/introspect.ts';
import type { SchemaInfo } from '../../lambdas/core/schema/types.ts';
import { openSql } from '../../lambdas/core/sql/open.ts';
import { scalarNumber } from '../../lambdas/core/sql/rows.ts';
import { withDatabase } from '../../lambdas/core/sql/url.ts';
import { DEMO_MARKER } from '../demo/schema.ts';
import type { SeedResult } from '../demo/seed.ts';
import { count, type Output } from './output.ts';
import { runSeedDemo } from './seed-demo.ts';

export interface DemoResult {
  readonly status: 'SUCCEEDED';
  readonly seeded: SeedResult | null;
  readonly source: SchemaInfo;
}

/**
 * The newcomer's first command: makes the demo legacy database (or reuses it), then runs every phase that
 * exists so far against it. Today that is the structural read of the source that the phases build on.
 */
export async function runDemo(
  loaded: LoadedConfig,
  options: { users: number; reset: boolean },
  out: Output,
): Promise<DemoResult> {
  const url = loaded.sourceUrl;
  const probe = openSql(withDatabase(url, 'information_schema'));
  let hasDemo: boolean;
  try {
    const marked = await probe.query(
      'SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_COMMENT = ?',
      [url.database, DEMO_MARKER],
    );
    hasDemo = marked.length > 0;
  } finally {
    await probe.close();
  }

  let seeded: SeedResult | null = null;
  if (hasDemo && !options.reset) {
    out.info(`Using the demo database ${url.database} already there (pass --reset to make it anew).`);
  } else {
    seeded = await runSeedDemo(loaded, options, out);
  }

  const source = openSql(url);
  try {
    const schema = await introspect(source, url.database);
    out.info('');
    out.info(`Source ${schema.database} on ${schema.server.flavor} ${schema.server.version}:`);
    for (const table of schema.tables) {
      const rows = scalarNumber(
        await source.query(`SELECT COUNT(*) AS n FROM ${ident(table.name, 'table')}`),
      );
      const key = table.businessKey ? `${table.businessKey.column} (${table.businessKey.reason})` : '-';
      out.info(`  ${table.name.padEnd(24)} ${count(rows).padStart(10)} rows  key ${key}`);
    }
    out.info(
      `References inferred from *_bid columns (the schema declares ${schema.references.filter((r) => r.kind === 'declared').length} foreign keys):`,
    );
    for (const ref of schema.references) {
      out.info(
        `  ${ref.fromTable}.${ref.fromColumn} → ${ref.toTable}.${ref.toColumn}${ref.toUnique ? '' : ' (not unique)'}`,
      );
    }
    return { status: 'SUCCEEDED', seeded, source: schema };
  } finally {
    await source.close();
  }
}
