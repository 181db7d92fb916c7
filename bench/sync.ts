// npm run bench (second part): the sync phase on the 1M-row demo, against pt-table-checksum, measured in the same
// run, written to docs/benchmarks-sync.md.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { type LoadedConfig, loadConfig } from '../lambdas/core/config/load.ts';
import { ident, qualified } from '../lambdas/core/identifiers.ts';
import { createMysqlClient } from '../lambdas/core/sql/mysql.ts';
import type { SqlClient } from '../lambdas/core/sql/port.ts';
import { scalarNumber } from '../lambdas/core/sql/rows.ts';
import { parseDatabaseUrl } from '../lambdas/core/sql/url.ts';
import type { SyncSummary } from '../lambdas/sync/finish.ts';
import { demoConfig } from '../local/demo/config.ts';
import { DEMO_MARKER, DEMO_TABLES } from '../local/demo/schema.ts';
import { seedDemo } from '../local/demo/seed.ts';
import { simulateTraffic } from '../local/demo/traffic.ts';
import { runPhase } from '../local/run-phase.ts';

const SERVER = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const TABLES = DEMO_TABLES.map((t) => t.name);
const SEED_SOURCE = 'bench_legacy_1m';
const SOURCE = 'bench_sync_legacy';
const TARGET = 'bench_sync_saas';
/** Writes per second of the simulated application during the copy and the first pass (b). */
const TRAFFIC_RATE = Number(process.env.BENCH_SYNC_RATE ?? 200);
const root = join(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'smt-bench-sync-'));

function client(database: string): SqlClient {
  const url = parseDatabaseUrl(`${SERVER}/${database}`);
  if (url.kind !== 'mysql') throw new Error('BENCH_MYSQL_URL must be mysql://');
  return createMysqlClient(url, { connectionLimit: 8 });
}
const admin = client('information_schema');
const fmt = (n: number) => n.toLocaleString('en-US');

function configFor(): LoadedConfig {
  const loaded = loadConfig({
    defaults: demoConfig,
    cwd: work,
    env: {
      SOURCE_DATABASE_URL: `${SERVER}/${SOURCE}`,
      TARGET_DATABASE_URL: `${SERVER}/${TARGET}`,
      ARCHIVE_URL: join(work, 'archive'),
    },
  });
  return {
    ...loaded,
    config: {
      ...loaded.config,
      chunking: { ...loaded.config.chunking, copyPath: 'server', maxConcurrency: 4, recheckDelaySeconds: 1 },
    },
  };
}

/** A copy of the 1M-row demo that sync may change (the copy benchmark's source stays as it is). */
async function freshSource(): Promise<number> {
  const marked = await admin.query(
    'SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_COMMENT = ?',
    [SEED_SOURCE, DEMO_MARKER],
  );
  if (marked.length === 0) {
    process.stderr.write(`seeding ${SEED_SOURCE} with 20000 users…\n`);
    await seedDemo({ client: admin, database: SEED_SOURCE, users: 20_000, reset: true });
  }
  await admin.execute(`DROP DATABASE IF EXISTS ${ident(SOURCE)}`);
  await admin.execute(`CREATE DATABASE ${ident(SOURCE)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  let rows = 0;
  for (const t of TABLES) {
    await admin.execute(`CREATE TABLE ${qualified(SOURCE, t)} LIKE ${qualified(SEED_SOURCE, t)}`);
    await admin.execute(`INSERT INTO ${qualified(SOURCE, t)} SELECT * FROM ${qualified(SEED_SOURCE, t)}`);
    rows += scalarNumber(await admin.query(`SELECT COUNT(*) AS n FROM ${qualified(SOURCE, t)}`));
  }
  return rows;
}

async function phase(name: string): Promise<{ seconds: number; output: unknown }> {
  const started = performance.now();
  const run = await runPhase({ loaded: configFor(), stateMachine: name, input: {}, cwd: work });
  if (run.status !== 'SUCCEEDED') throw new Error(`${name} failed: ${run.error} ${run.cause}`);
  return { seconds: (performance.now() - started) / 1000, output: run.output };
}

async function pass(): Promise<{ seconds: number; summary: SyncSummary }> {
  const { seconds, output } = await phase('sync');
  return { seconds, summary: output as SyncSummary };
}

/** pt-table-checksum over the source's tables: one side, on the server, as Percona Toolkit does it. */
function ptTableChecksum(): number {
  const url = new URL(`${SERVER}/`);
  const started = performance.now();
  execFileSync(
    'pt-table-checksum',
    [
      '--no-check-binlog-format',
      '--no-check-replication-filters',
      '--recursion-method=none',
      '--replicate=bench_sync_percona.checksums',
      '--create-replicate-table',
      `--databases=${SOURCE}`,
      `--tables=${TABLES.join(',')}`,
      '--chunk-time=0.5',
      '--quiet',
      `h=${url.hostname},P=${url.port || '3306'},u=${decodeURIComponent(url.username) || 'root'}`,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return (performance.now() - started) / 1000;
}

async function main(): Promise<void> {
  const rows = await freshSource();
  process.stderr.write(`sync benchmark: ${fmt(rows)} rows in ${SOURCE}\n`);
  await admin.execute(`DROP DATABASE IF EXISTS ${ident(TARGET)}`);
  await admin.execute('DROP DATABASE IF EXISTS bench_sync_percona');
  await phase('foundation');

  // (b) the copy with the application writing, then passes while it goes on writing.
  const traffic = client(SOURCE);
  const stop = new AbortController();
  const writing = simulateTraffic(traffic, { rate: TRAFFIC_RATE, seed: 7, signal: stop.signal });
  const copy = await phase('data');
  const first = await pass();
  const second = await pass();
  stop.abort();
  const written = await writing;
  await traffic.close();
  const settle = await pass();
  process.stderr.write(
    `(b) data ${copy.seconds.toFixed(1)} s; pass 1 ${first.seconds.toFixed(1)} s (lag ${first.summary.maxLagSeconds} s), pass 2 ${second.seconds.toFixed(1)} s (lag ${second.summary.maxLagSeconds} s)\n`,
  );

  // (a) nothing to repair: a pass right after one that settled, against pt-table-checksum of one side.
  const idle = await pass();
  let ptSeconds: number | null = null;
  try {
    ptSeconds = ptTableChecksum();
  } catch (error) {
    process.stderr.write(`pt-table-checksum did not run (${(error as Error).message.split('\n')[0]})\n`);
  }
  process.stderr.write(
    `(a) idle pass ${idle.seconds.toFixed(1)} s; pt-table-checksum ${ptSeconds?.toFixed(1)} s\n`,
  );

  // (c) 1 % of every table's rows changed (as the application does, updated_at moved) and 0.1 % deleted.
  // Changed rows held in the quarantine or an open conflict stay held: not written.
  const heldBefore = scalarNumber(
    await admin.query(
      `SELECT (SELECT COUNT(*) FROM ${qualified(TARGET, 'migration_quarantine')} WHERE CAST(SUBSTRING(row_key, 2) AS UNSIGNED) % 100 = 7)
            + (SELECT COUNT(*) FROM ${qualified(TARGET, 'migration_sync_conflicts')} WHERE resolved_at IS NULL AND CAST(SUBSTRING(row_key, 2) AS UNSIGNED) % 100 = 7) AS n`,
    ),
  );
  let changed = 0;
  let deleted = 0;
  for (const t of TABLES) {
    changed += (
      await admin.execute(`UPDATE ${qualified(SOURCE, t)} SET updated_at = NOW() WHERE id % 100 = 7`)
    ).affectedRows;
    deleted += (await admin.execute(`DELETE FROM ${qualified(SOURCE, t)} WHERE id % 1000 = 3`)).affectedRows;
  }
  const churn = await pass();
  process.stderr.write(
    `(c) ${fmt(changed)} changed, ${fmt(deleted)} deleted: pass ${churn.seconds.toFixed(1)} s\n`,
  );
  const after = await pass();

  const lag = (s: SyncSummary) => (s.maxLagSeconds === null ? 'unknown' : `${s.maxLagSeconds} s`);
  const line = (what: string, p: { seconds: number; summary: SyncSummary }, note = '') =>
    `| ${what} | ${p.seconds.toFixed(1)} | ${fmt(p.summary.rowsApplied)} | ${fmt(p.summary.rowsDeleted)} | ${fmt(p.summary.chunksChecked)} | ${fmt(p.summary.chunksRepaired)} | ${lag(p.summary)} | ${note} |`;
  const table = [
    '| pass | seconds | rows written | rows deleted | chunks compared | chunks repaired | largest lag after | note |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
    line(
      '(b) first pass after data, traffic on',
      first,
      `data took ${copy.seconds.toFixed(1)} s with ${TRAFFIC_RATE} writes/s`,
    ),
    line('(b) second pass, traffic on', second),
    line('(b) pass after traffic stopped', settle, `${fmt(written.writes)} writes in all`),
    line('(a) nothing to repair', idle),
    line('(c) 1 % changed, 0.1 % deleted', churn, `${fmt(changed)} rows changed, ${fmt(deleted)} deleted`),
    line('(c) the pass after', after),
  ].join('\n');
  const ratio = ptSeconds === null ? null : idle.seconds / ptSeconds;
  const checks = [
    '| target | measured | wanted | met |',
    '|---|---:|---|---|',
    `| (a) our pass (both sides) ÷ pt-table-checksum (one side) | ${ratio === null ? 'not run' : ratio.toFixed(2)} | ≤ 2 (it checks one side, we check two) | ${ratio === null ? 'not run' : ratio <= 2 ? 'yes' : '**no**'} |`,
    `| (b) largest lag after one pass, once the traffic during the copy and the passes stopped | ${lag(settle.summary)} (pass ${settle.seconds.toFixed(1)} s) | < 1 s | ${settle.summary.maxLagSeconds !== null && settle.summary.maxLagSeconds < 1 ? 'yes' : '**no**'} |`,
    `| (b) largest lag after a pass with traffic on (first, second) | ${lag(first.summary)}, ${lag(second.summary)} | reported: about the pass's own length (rows written during a pass, after their parent's turn, wait for the next) | — |`,
    `| (c) rows deleted = rows deleted on the source | ${fmt(churn.summary.rowsDeleted)} | ${fmt(deleted)} | ${churn.summary.rowsDeleted === deleted ? 'yes' : '**no**'} |`,
    `| (c) rows written, of the rows changed (less ${fmt(heldBefore)} held in quarantine or a conflict) | ${fmt(churn.summary.rowsApplied)} | ≤ ${fmt(changed - heldBefore)}, and the pass after finds nothing | ${churn.summary.rowsApplied <= changed - heldBefore && after.summary.rowsApplied + after.summary.rowsDeleted + after.summary.chunksRepaired === 0 ? 'yes' : '**no**'} |`,
    `| (c) pass with churn ÷ pass with nothing to repair | ${(churn.seconds / idle.seconds).toFixed(2)} | reported (deletes are in every chunk, so every chunk is diffed row by row) | — |`,
  ].join('\n');
  process.stdout.write(`\n${table}\n\n${checks}\n`);
  const git = (() => {
    try {
      return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    } catch {
      return 'unknown';
    }
  })();
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 1024 ** 3)} GiB RAM`;
  writeFileSync(
    join(root, 'docs', 'benchmarks-sync.md'),
    `# Sync benchmark\n\nWritten by \`npm run bench\` (bench/sync.ts), every figure from one run.\n\n` +
      `- Run: ${new Date().toISOString()}, commit ${git}\n- Machine: ${machine}\n` +
      `- Data: a copy of the 1M-row demo (${fmt(rows)} rows, \`--users 20000\`); data copied server-side, then sync passes with \`sync.slices\` 1 (every chunk compared every pass) and the demo's 5,000-row chunks\n` +
      `- (b): simulate-traffic at ${TRAFFIC_RATE} writes/s (seed 7) through the copy and two passes, then a pass once it stopped\n` +
      `- (a): pt-table-checksum ${ptSeconds === null ? '(not installed: apt-get install percona-toolkit)' : ''} over the same ten tables of the source, \`--chunk-time 0.5\`, no replicas (\`--recursion-method none\`): it checksums one side, our pass both (and catches up first)\n\n` +
      `${table}\n\n${checks}\n\n` +
      'Lag is the largest of the tables after the pass: seconds from the oldest change the pass may not have applied to the end of its catch-up (0 when nothing changed since it began reading). With traffic on it is about how long a table’s catch-up took; a row that waited for its parent counts from the watermark.\n',
  );
}

try {
  await main();
} finally {
  await admin.close();
}
