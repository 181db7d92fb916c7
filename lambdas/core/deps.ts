import { openArchive } from './archive/open.ts';
import { ConfigSchema } from './config/schema.ts';
import { InputError } from './errors.ts';
import { emfMetrics } from './metrics.ts';
import { openSql } from './sql/open.ts';
import { parseDatabaseUrl, withDatabase } from './sql/url.ts';
import type { TaskDeps } from './task.ts';

let cached: Promise<TaskDeps> | undefined;

/**
 * Dependencies on Lambda, built once per container from the environment: `SHIFU_MIGRATE_CONFIG` holds the
 * validated config as JSON (the stack sets it). Fails fast, naming the variable.
 */
export function lambdaDeps(): Promise<TaskDeps> {
  cached ??= (async () => {
    const raw = process.env.SHIFU_MIGRATE_CONFIG;
    if (raw === undefined || raw === '')
      throw new InputError('environment variable SHIFU_MIGRATE_CONFIG is not set');
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      throw new InputError('environment variable SHIFU_MIGRATE_CONFIG is not valid JSON');
    }
    const parsed = ConfigSchema.safeParse(json);
    if (!parsed.success) {
      throw new InputError(
        'environment variable SHIFU_MIGRATE_CONFIG does not hold a valid config:',
        parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
      );
    }
    const config = parsed.data;
    const sourceUrl = parseDatabaseUrl(config.source.url);
    const targetUrl = parseDatabaseUrl(config.target.url);
    return {
      config,
      sourceUrl,
      targetUrl,
      source: openSql(sourceUrl, { label: 'source', readOnly: true }),
      target: openSql(targetUrl, { label: 'target' }),
      targetServer: openSql(withDatabase(targetUrl, 'information_schema'), {
        label: 'target',
        display: targetUrl.raw,
      }),
      archive: openArchive(config.archive.url),
      signal: new AbortController().signal,
      metrics: emfMetrics(),
      heartbeat: true,
    };
  })();
  return cached;
}
