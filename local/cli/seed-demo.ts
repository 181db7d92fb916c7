import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { openSql } from '../../lambdas/core/sql/open.ts';
import { redactUrl, withDatabase } from '../../lambdas/core/sql/url.ts';
import { type SeedResult, seedDemo } from '../demo/seed.ts';
import { count, type Output } from './output.ts';

/** Creates and fills the demo legacy database named by the config's source URL. */
export async function runSeedDemo(
  loaded: LoadedConfig,
  options: { users: number; reset: boolean },
  out: Output,
): Promise<SeedResult> {
  const url = loaded.sourceUrl;
  // The database may not exist yet: connect to the server through information_schema, which always does.
  const client = openSql(withDatabase(url, 'information_schema'), { label: 'source', display: url.raw });
  try {
    out.info(`Seeding ${url.database} at ${redactUrl(url.raw)} with ${count(options.users)} users…`);
    let loadedRows = 0;
    const totals = new Map<string, number>();
    const started = performance.now();
    const result = await seedDemo({
      client,
      database: url.database,
      users: options.users,
      reset: options.reset,
      onProgress: (event) => {
        if (event.kind === 'table-started') totals.set(event.table, 0);
        if (event.kind === 'rows') {
          loadedRows += event.done - (totals.get(event.table) ?? 0);
          totals.set(event.table, event.done);
          const rate = loadedRows / ((performance.now() - started) / 1000);
          out.progress(
            `  ${count(loadedRows)} rows loaded (${count(Math.round(rate))} rows/s), now ${event.table}`,
          );
        }
        if (event.kind === 'table-loaded') {
          out.info(
            `  ${event.table.padEnd(24)} ${count(event.rows).padStart(10)} rows  ${event.seconds.toFixed(1)} s`,
          );
        }
        if (event.kind === 'indexing') out.progress(`  adding indexes to ${event.table}`);
      },
    });
    out.info(
      `Seeded ${result.database}: ${count(result.totalRows)} rows in ${result.tables.length} tables in ${result.seconds.toFixed(1)} s ` +
        `(${count(Math.round(result.totalRows / result.seconds))} rows/s).`,
    );
    return result;
  } finally {
    await client.close();
  }
}
