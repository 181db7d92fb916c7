import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { openSql } from '../../lambdas/core/sql/open.ts';
import { str } from '../../lambdas/core/sql/rows.ts';
import { startHealthStandIn } from '../demo/health.ts';
import { checkJournal, type JournalCheck } from '../demo/journal.ts';
import { type Side, simulateTraffic, type TrafficResult } from '../demo/traffic.ts';
import { runAlarmClear, runAlarmRaise } from './alarm.ts';
import { count, type Output } from './output.ts';
import { type PhaseOutcome, runPhaseCommand } from './phases.ts';

/** The demo's alarm: what an error-rate alarm on the multi-tenant API would be. */
const DEMO_ALARM = 'demo-saas-5xx';
/** Bake per wave: 10 rounds of 30 s on AWS; locally each Wait is scaled to 1/100 (about 3 s a wave). */
const DEMO_BAKE_MINUTES = 5;
const DEMO_RATE = 40;

export interface HybridResult {
  readonly code: 0 | 1;
  readonly json: Record<string, unknown>;
}

/**
 * The hybrid period, on the demo: the two APIs' /health stand-ins answer the probes; routed traffic writes to
 * whichever side owns each tenant; the application phase switches wave by wave; an alarm raised while the last
 * wave bakes rolls that wave back; the phase runs again to the end; a last sync pass both ways; then every write
 * is looked for on the side that owns it, and verify compares the two databases.
 */
export async function runHybridDemo(loaded: LoadedConfig, out: Output, cwd: string): Promise<HybridResult> {
  const legacyDb = openSql(loaded.sourceUrl, { label: 'source' });
  const saasDb = openSql(loaded.targetUrl, { label: 'target' });
  const legacyApi = await startHealthStandIn('legacy', legacyDb);
  const saasApi = await startHealthStandIn('multi-tenant', saasDb);
  const withProbes: LoadedConfig = {
    ...loaded,
    config: {
      ...loaded.config,
      application: {
        ...loaded.config.application,
        bakeMinutes: DEMO_BAKE_MINUTES,
        probes: [
          {
            name: 'legacy api',
            url: legacyApi.url,
            expectStatus: 200,
            bodyIncludes: '"status":"ok"',
            timeoutMs: 3_000,
          },
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
    `Health probes: the legacy API's stand-in at ${legacyApi.url}, the multi-tenant API's at ${saasApi.url} (each answers from its own database).`,
  );
  // The application's two sides, one connection each: each side's id series is a session setting.
  const legacy = openSql(loaded.sourceUrl, { label: 'source', connectionLimit: 1 });
  const saas = openSql(loaded.targetUrl, { label: 'target', connectionLimit: 1 });
  const taken: Record<Side, number> = { legacy: 0, saas: 0 };
  const stop = new AbortController();
  out.info(
    `Simulated traffic: ${DEMO_RATE} writes/s, each to the side the routing table gives its tenant (legacy without tenant_bid, the multi-tenant side with it).`,
  );
  const traffic = simulateTraffic(legacy, {
    rate: DEMO_RATE,
    seed: 2,
    signal: stop.signal,
    routing: { target: saas, config: loaded.config },
    onWrite: (w) => {
      taken[w.side] += 1;
    },
  });
  const serves = async () => {
    const rows = await saasDb.query("SELECT tenant_bid, target FROM traffic_routing WHERE scope = 'tenant'");
    const by = new Map(rows.map((r) => [str(r, 'tenant_bid'), str(r, 'target')]));
    const of = (route: string) =>
      loaded.config.tenants.map((t) => t.bid).filter((t) => (by.get(t) ?? 'legacy') === route);
    return { legacy: of('legacy'), saas: of('saas'), paused: of('paused') };
  };
  const tell = async (when: string) => {
    const s = await serves();
    out.info(
      `${when}: legacy serves ${s.legacy.join(', ') || 'no tenant'}; the multi-tenant side serves ${s.saas.join(', ') || 'no tenant'}${s.paused.length > 0 ? `; paused: ${s.paused.join(', ')}` : ''}. Writes so far: legacy ${count(taken.legacy)}, multi-tenant ${count(taken.saas)}.`,
    );
  };
  // Each route change as it happens.
  let last = '';
  const watcher = setInterval(() => {
    serves()
      .then((s) => {
        const now = JSON.stringify(s);
        if (now !== last && last !== '')
          out.info(
            `  routes now: legacy ${s.legacy.join(', ') || '-'} | multi-tenant ${s.saas.join(', ') || '-'}${s.paused.length > 0 ? ` | paused ${s.paused.join(', ')}` : ''} (writes: legacy ${count(taken.legacy)}, multi-tenant ${count(taken.saas)})`,
          );
        last = now;
      })
      .catch(() => undefined);
  }, 100);
  const steps: Record<string, unknown> = {};
  let wrote: TrafficResult | undefined;
  let checked: JournalCheck | undefined;
  try {
    await tell('Before the switch');
    out.info('');
    // The application phase runs; when the last wave is switched and baking, the alarm goes off.
    const lastWave = lastWaveTenants(withProbes);
    let settled = false;
    let raised: PhaseOutcome | null = null;
    const first = runPhaseCommand(withProbes, 'application', out, cwd);
    const alarm = (async () => {
      for (;;) {
        const rows = await saasDb.query(
          `SELECT COUNT(*) AS n FROM tenant_migration_status WHERE status = 'switched' AND baked = 0 AND tenant_bid IN (${lastWave.map(() => '?').join(', ')})`,
          lastWave,
        );
        if (Number(rows[0]?.n ?? 0) === lastWave.length) break;
        if (settled) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      out.info('');
      out.info(
        `The last wave (${lastWave.join(', ')}) is switched and baking: the multi-tenant API's error rate alarm goes off.`,
      );
      raised = await runAlarmRaise(
        withProbes,
        DEMO_ALARM,
        'the demo: error rate over the bound on the multi-tenant API',
        out,
        cwd,
      );
    })();
    steps.application = (await first).json;
    settled = true;
    await alarm;
    if (raised === null) {
      out.info('The last wave finished its bake before the alarm could go off: nothing was rolled back.');
    } else {
      steps.alarm = (raised as PhaseOutcome).json;
      await tell('After the alarm');
      await runAlarmClear(withProbes, DEMO_ALARM, out, cwd);
    }
    out.info('');
    out.info('The alarm is cleared: the application phase runs again, for the waves still to switch.');
    const again = await runPhaseCommand(withProbes, 'application', out, cwd);
    steps.applicationAgain = again.json;
    if (again.code !== 0) return { code: 1, json: { stoppedAt: 'application', ...steps } };
    await tell('Every wave switched');
  } finally {
    clearInterval(watcher);
    stop.abort();
    wrote = await traffic.catch(() => undefined);
    await legacy.close();
    await saas.close();
    await legacyApi.close();
    await saasApi.close();
  }
  try {
    out.info('');
    out.info(
      `Simulated traffic stopped: ${count(wrote?.writes ?? 0)} writes, legacy took ${count(wrote?.sides.legacy ?? 0)} and the multi-tenant side ${count(wrote?.sides.saas ?? 0)}${(wrote?.held ?? 0) > 0 ? ` (${count(wrote?.held ?? 0)} waited while their tenant was paused)` : ''}. A last sync pass, both ways:`,
    );
    const pass = await runPhaseCommand(withProbes, 'sync', out, cwd);
    steps.sync = pass.json;
    if (pass.code !== 0 || wrote === undefined) return { code: 1, json: { stoppedAt: 'sync', ...steps } };
    checked = await checkJournal(
      wrote.journal,
      {
        legacy: legacyDb,
        legacyDb: loaded.sourceUrl.database,
        target: saasDb,
        targetDb: loaded.targetUrl.database,
      },
      loaded.config,
    );
    out.info(
      checked.lost.length === 0
        ? `Lost writes: none. Each of the ${count(checked.rows)} rows the simulator wrote is on the side that owns its tenant, as it last wrote it (plain SELECTs, not the product's checksums).`
        : `LOST WRITES: ${count(checked.lost.length)} of ${count(checked.rows)} rows are not as the simulator last wrote them on the side that owns them: ${checked.lost
            .slice(0, 5)
            .map((l) => `${l.row} on ${l.side}: ${l.found}`)
            .join('; ')}`,
    );
  } finally {
    await legacyDb.close();
    await saasDb.close();
  }
  return {
    code: checked.lost.length === 0 ? 0 : 1,
    json: {
      ...steps,
      writes: wrote?.writes ?? 0,
      sides: wrote?.sides ?? null,
      held: wrote?.held ?? 0,
      journal: { rows: checked.rows, kept: checked.kept, lost: checked.lost },
    },
  };
}

/** The tenants of the application phase's last wave: the config's, or the default tenant (it goes last). */
function lastWaveTenants(loaded: LoadedConfig): string[] {
  const waves = loaded.config.application.waves;
  return waves === undefined ? [loaded.config.defaultTenant] : [...(waves.at(-1) ?? [])];
}
