import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { ident } from '../../lambdas/core/identifiers.ts';
import { openSql } from '../../lambdas/core/sql/open.ts';
import { withDatabase } from '../../lambdas/core/sql/url.ts';
import { startHealthStandIn } from '../demo/health.ts';
import { DEMO_MARKER } from '../demo/schema.ts';
import type { SeedResult } from '../demo/seed.ts';
import { simulateTraffic, type TrafficResult } from '../demo/traffic.ts';
import { runRestoreArchive } from './archive-commands.ts';
import { runHybridDemo } from './hybrid-demo.ts';
import { runVerifyCommand } from './inspect.ts';
import { count, type Output } from './output.ts';
import {
  LOCAL_PHASES,
  type LocalPhase,
  type PhaseOutcome,
  runPhaseCommand,
  runRollbackCommand,
} from './phases.ts';
import { runSeedDemo } from './seed-demo.ts';

/**
 * The newcomer's first command: makes the demo legacy database (or reuses it), then runs every phase that
 * exists so far, in order, stopping at the first that fails or blocks.
 */
export async function runDemo(
  loaded: LoadedConfig,
  options: { users: number; reset: boolean },
  out: Output,
  cwd: string,
): Promise<PhaseOutcome> {
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
  if (options.reset) {
    // A new source needs a new target: the previous demo's rows would differ from it. Our own rollbacks remove
    // exactly what the phases recorded (nothing when there is no ledger yet).
    out.info(
      `Resetting the demo target ${loaded.targetUrl.database}: rolling back integration, routing every tenant back to legacy, then rolling back data, then foundation.`,
    );
    for (const phase of ['integration', 'application', 'data', 'foundation']) {
      const undone = await runRollbackCommand(loaded, { phase }, out, cwd);
      if (undone.code !== 0)
        return { code: 1, json: { status: 'FAILED', stoppedAt: `rollback ${phase}`, seeded, phases: {} } };
    }
  }
  if (hasDemo && !options.reset) {
    out.info(`Using the demo database ${url.database} already there (pass --reset to make it anew).`);
  } else {
    seeded = await runSeedDemo(loaded, options, out);
  }
  const phases: Record<string, unknown> = {};
  const run = async (phase: LocalPhase): Promise<boolean> => {
    out.info('');
    const outcome = await runPhaseCommand(loaded, phase, out, cwd);
    phases[phase] = outcome.json;
    if (outcome.code !== 0) out.info(`The demo stopped at ${phase}.`);
    return outcome.code === 0;
  };
  const stopped = (at: string) => ({
    code: 1 as const,
    json: { status: 'FAILED', stoppedAt: at, seeded, phases },
  });
  for (const phase of ['assess', 'foundation'] as const) if (!(await run(phase))) return stopped(phase);
  // A demo that ran before left its tenants on the multi-tenant side: they come back first (their writes drained
  // to legacy), as a new copy would otherwise overwrite what that side owns.
  if (await anyTenantSwitched(loaded)) {
    out.info('');
    out.info(
      'The demo ran here before: its tenants are on the multi-tenant side. Routing them back to legacy first:',
    );
    const back = await runRollbackCommand(loaded, { phase: 'application' }, out, cwd);
    if (back.code !== 0) return stopped('rollback application');
  }
  // AI-Shifu stays live while it migrates: the application's writes go on through the copy and the sync pass.
  out.info('');
  const traffic = startTraffic(loaded, cwd, out);
  let trafficResult: TrafficResult | undefined;
  try {
    if (!(await run('data'))) return stopped('data');
    if (!(await run('sync'))) return stopped('sync');
  } finally {
    trafficResult = await traffic.stop();
  }
  out.info(
    `Simulated traffic wrote ${count(trafficResult.writes)} times (${count(trafficResult.rows)} rows) during data and sync; it has stopped. The last pass brings the target level:`,
  );
  if (!(await run('sync'))) return stopped('sync');
  out.info('');
  const verified = await runVerifyCommand(loaded, out, cwd, true);
  phases.verify = verified.json;
  if (verified.code !== 0) {
    out.info('The demo stopped at verify: the target differs from the source (above).');
    return stopped('verify');
  }
  // The hybrid period: tenants move to the multi-tenant side wave by wave while the application keeps writing.
  out.info('');
  const hybrid = await runHybridDemo(loaded, out, cwd);
  phases.hybrid = hybrid.json;
  if (hybrid.code !== 0) return stopped(String(hybrid.json.stoppedAt ?? 'lost writes'));
  out.info('');
  const level = await runVerifyCommand(loaded, out, cwd, true);
  phases.verifyAfterSwitch = level.json;
  if (level.code !== 0) {
    out.info('The demo stopped at verify: after the switch the two sides differ (above).');
    return stopped('verify');
  }
  // Integration: the demo's identity providers reference secrets in environment variables, set here (random values,
  // never printed).
  for (const name of ['DEMO_ACME_GOOGLE_SECRET', 'DEMO_GLOBEX_GITHUB_SECRET'])
    if (process.env[name] === undefined) process.env[name] = randomBytes(24).toString('hex');
  if (!(await run('integration'))) return stopped('integration');
  // Go-live: the final drain, verification, health (the multi-tenant API's stand-in answers the probe), the legacy
  // tables archived, sync ended; then the archive restored into a scratch database and proven.
  out.info('');
  const live = await runGoLiveDemo(loaded, out, cwd);
  phases.golive = live.json;
  if (live.code !== 0) return stopped('golive');
  out.info('');
  const scratch = withDatabase(loaded.targetUrl, `${loaded.targetUrl.database}_restored`);
  const cleaner = openSql(withDatabase(loaded.targetUrl, 'information_schema'), { label: 'target' });
  try {
    await cleaner.execute(`DROP DATABASE IF EXISTS ${ident(scratch.database, 'database')}`);
  } finally {
    await cleaner.close();
  }
  const restored = await runRestoreArchive(loaded, 'latest', scratch.raw, undefined, out, cwd);
  phases.restoreArchive = restored.json;
  if (restored.code !== 0) return stopped('restore-archive');
  const report = (live.json.report as { html?: string } | null)?.html;
  out.info('');
  out.info(
    `Demo complete: ${LOCAL_PHASES.join(', ')} ran against ${url.database} → ${loaded.targetUrl.database}, with no difference between the two and no write lost; the legacy archive restored into ${scratch.database} with every checksum equal.`,
  );
  if (report !== undefined)
    out.info(
      `The migration's report (open it in a browser): ${join(resolve(cwd, loaded.config.archive.url), report)}`,
    );
  const assessed = phases.assess as { reportMarkdown?: unknown } | undefined;
  const next = [
    'npx shifu-migrate verify                 compare the target with the source again (read-only)',
    'npx shifu-migrate status                 the ledger: runs, tables, chunks, quarantine',
    ...(typeof assessed?.reportMarkdown === 'string'
      ? [`${join(loaded.config.archive.url, assessed.reportMarkdown)}   the assessment, for people`]
      : []),
    'npx shifu-migrate rollback --tenant acme  one tenant back to legacy, its writes drained back first (go-live undone: sync runs again)',
    'npx shifu-migrate report --open          the migration report (HTML with charts, offline)',
    'npx shifu-migrate restore-archive latest --into mysql://root@127.0.0.1:3306/another   load the legacy archive again',
    'npx shifu-migrate cleanup-legacy         what dropping the legacy tables would take (it refuses before golive.archive.retentionDays)',
    'npx shifu-migrate rollback --phase application  every tenant back to legacy, go-live undone; then --phase data, --phase foundation',
    'your own databases: write shifu-migrate.config.json (docs/configuration.md; schema/shifu-migrate.config.schema.json)',
    `cleaning up: DROP DATABASE ${loaded.targetUrl.database}; DROP DATABASE ${loaded.targetUrl.database}_restored; DROP DATABASE ${url.database}; rm -r .shifu-migrate`,
  ];
  out.info('Next:');
  for (const line of next) out.info(`  ${line}`);
  return { code: 0, json: { status: 'SUCCEEDED', seeded, phases } };
}

async function anyTenantSwitched(loaded: LoadedConfig): Promise<boolean> {
  const target = openSql(loaded.targetUrl, { label: 'target' });
  try {
    const [row] = await target.query(
      "SELECT COUNT(*) AS n FROM tenant_migration_status s LEFT JOIN traffic_routing r ON r.scope = 'tenant' AND r.tenant_bid = s.tenant_bid WHERE s.status = 'switched' OR r.target IN ('saas', 'paused')",
    );
    return Number(row?.n ?? 0) > 0;
  } finally {
    await target.close();
  }
}

/** Traffic at a steady rate in this process, its writes logged like simulate-traffic's, until `stop()`. */
function startTraffic(loaded: LoadedConfig, cwd: string, out: Output) {
  const rate = DEMO_TRAFFIC_RATE;
  const db = openSql(loaded.sourceUrl, { label: 'source' });
  const dir = join(cwd, '.shifu-migrate', 'traffic');
  mkdirSync(dir, { recursive: true });
  const log = join(dir, `traffic-${new Date().toISOString().replace(/[:.]/g, '')}-demo.jsonl`);
  out.info(
    `Simulated traffic: ${rate} writes/s to ${loaded.sourceUrl.database} during data and sync (log: ${log}).`,
  );
  const abort = new AbortController();
  const running = simulateTraffic(db, {
    rate,
    seed: 1,
    signal: abort.signal,
    onWrite: (write) =>
      appendFileSync(log, `${JSON.stringify({ ...write, at: new Date().toISOString() })}\n`),
  });
  return {
    async stop(): Promise<TrafficResult> {
      abort.abort();
      try {
        return await running;
      } finally {
        await db.close();
      }
    },
  };
}

/** The demo's traffic: enough to change rows in every table while it copies, little enough to stay quick. */
const DEMO_TRAFFIC_RATE = 40;

/** Go-live on the demo, its probe answered by the multi-tenant API's stand-in (started for it, stopped after). */
async function runGoLiveDemo(loaded: LoadedConfig, out: Output, cwd: string) {
  const saasDb = openSql(loaded.targetUrl, { label: 'target' });
  const saasApi = await startHealthStandIn('multi-tenant', saasDb);
  try {
    const withProbe: LoadedConfig = {
      ...loaded,
      config: {
        ...loaded.config,
        golive: {
          ...loaded.config.golive,
          probes: [
            {
              name: 'multi-tenant api',
              url: saasApi.url,
              expectStatus: 200,
              bodyIncludes: '"status":"ok"',
              timeoutMs: 3_000,
            },
          ],
        },
      },
    };
    out.info(
      "Go-live: the demo's quarantined rows and tenant conflicts are accepted by its config (golive.accept); your own migration reviews them first.",
    );
    return await runPhaseCommand(withProbe, 'golive', out, cwd);
  } finally {
    await saasApi.close();
    await saasDb.close();
  }
}
