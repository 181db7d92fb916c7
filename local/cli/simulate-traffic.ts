import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { InputError } from '../../lambdas/core/errors.ts';
import { openSql } from '../../lambdas/core/sql/open.ts';
import { redactUrl } from '../../lambdas/core/sql/url.ts';
import { DEMO_MARKER } from '../demo/schema.ts';
import { simulateTraffic, type TrafficResult } from '../demo/traffic.ts';
import { count, type Output } from './output.ts';

export interface TrafficCommand {
  readonly rate: number;
  readonly durationMs?: number;
  readonly writes?: number;
  readonly seed: number;
}

/** `--rate 200` or `--rate 200/s`: writes per second, above 0 and at most 10,000. */
export function parseRate(raw: string | undefined): number {
  if (raw === undefined) return 50;
  const match = /^(\d+(?:\.\d+)?)(?:\/s)?$/.exec(raw.trim());
  const rate = match === null ? Number.NaN : Number(match[1]);
  if (!(rate > 0 && rate <= 10_000))
    throw new InputError(
      `--rate must be writes per second above 0 and at most 10000 (200 or 200/s), got ${JSON.stringify(raw)}`,
    );
  return rate;
}

/** `--duration 90s`, `5m`, `1h`, or seconds: how long to write. */
export function parseDuration(raw: string | undefined, option = '--duration'): number | undefined {
  if (raw === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim());
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match?.[2] ?? 's'] ?? 1000;
  const ms = match === null ? Number.NaN : Number(match[1]) * unit;
  if (!(ms > 0 && ms <= 24 * 3_600_000))
    throw new InputError(
      `${option} must be a time above 0 and at most 24h (90s, 5m, 1h), got ${JSON.stringify(raw)}`,
    );
  return ms;
}

/**
 * Writes to the source database as the AI-Shifu application does, until the duration, the write count or Ctrl-C,
 * and keeps every write as a JSON line in `.shifu-migrate/traffic/`. Only a demo database made by seed-demo: it
 * writes to the source, which the migration otherwise never does.
 */
export async function runSimulateTraffic(
  loaded: LoadedConfig,
  command: TrafficCommand,
  out: Output,
  cwd: string,
  signal?: AbortSignal,
): Promise<{ code: number; json: Record<string, unknown> }> {
  const url = loaded.sourceUrl;
  // The hybrid period (the application phase has routed a tenant): each write goes where its tenant is routed, on
  // one connection a side (each side's id series is a session setting).
  const routed = await routingStarted(loaded);
  const db = openSql(url, { label: 'source', ...(routed ? { connectionLimit: 1 } : {}) });
  const target = routed ? openSql(loaded.targetUrl, { label: 'target', connectionLimit: 1 }) : null;
  try {
    const marked = await db.query(
      'SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_COMMENT = ?',
      [url.database, DEMO_MARKER],
    );
    if (marked.length === 0)
      throw new InputError(
        `simulate-traffic writes to the source database, so it only runs against a demo database made by seed-demo; ${url.database} at ${redactUrl(url.raw)} is not one (make one: npx shifu-migrate seed-demo)`,
      );
    const dir = join(cwd, '.shifu-migrate', 'traffic');
    mkdirSync(dir, { recursive: true });
    const log = join(
      dir,
      `traffic-${new Date().toISOString().replace(/[:.]/g, '')}-seed${command.seed}.jsonl`,
    );
    out.info(
      `Writing to ${routed ? `${url.database} and ${loaded.targetUrl.database}, each write where the routing table sends its tenant,` : url.database} at ${count(command.rate)} writes/s (seed ${command.seed})${command.durationMs === undefined ? '' : ` for ${command.durationMs / 1000} s`}${command.writes === undefined ? '' : `, ${count(command.writes)} writes`}; Ctrl-C stops it. Log: ${log}`,
    );
    let last = 0;
    const result: TrafficResult = await simulateTraffic(db, {
      rate: command.rate,
      seed: command.seed,
      ...(command.durationMs === undefined ? {} : { durationMs: command.durationMs }),
      ...(command.writes === undefined ? {} : { writes: command.writes }),
      ...(signal === undefined ? {} : { signal }),
      ...(target === null ? {} : { routing: { target, config: loaded.config } }),
      onWrite: (write) => {
        appendFileSync(log, `${JSON.stringify({ ...write, at: new Date().toISOString() })}\n`);
        if (performance.now() - last > 1000) {
          last = performance.now();
          out.progress(`  ${count(write.seq)} writes, the last a ${write.kind} on ${write.table}`);
        }
      },
    });
    const kinds = Object.entries(result.kinds)
      .filter(([, n]) => n > 0)
      .map(([kind, n]) => `${kind} ${count(n)}`)
      .join(', ');
    out.info(
      `Wrote ${count(result.writes)} times (${count(result.rows)} rows changed) in ${result.seconds.toFixed(1)} s, ${result.rate.toFixed(1)} writes/s: ${kinds}.${routed ? ` Legacy took ${count(result.sides.legacy)}, the multi-tenant side ${count(result.sides.saas)}${result.held > 0 ? ` (${count(result.held)} waited while their tenant was paused)` : ''}.` : ''}`,
    );
    const { journal, ...summary } = result;
    return {
      code: 0,
      json: {
        status: 'SUCCEEDED',
        database: url.database,
        log,
        routed,
        ...summary,
        rowsJournaled: journal.size,
      },
    };
  } finally {
    await db.close();
    await target?.close();
  }
}

/** Whether the application phase has routed any tenant off legacy (the target's routing table says so). */
async function routingStarted(loaded: LoadedConfig): Promise<boolean> {
  const target = openSql(loaded.targetUrl, { label: 'target' });
  try {
    const [row] = await target.query(
      "SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'traffic_routing'",
      [loaded.targetUrl.database],
    );
    if (Number(row?.n ?? 0) === 0) return false;
    const [off] = await target.query(
      "SELECT COUNT(*) AS n FROM traffic_routing WHERE scope = 'tenant' AND target <> 'legacy'",
    );
    return Number(off?.n ?? 0) > 0;
  } catch {
    // No target database yet: nothing is routed.
    return false;
  } finally {
    await target.close();
  }
}
