// npm run bench (last): go-live's archive of the legacy tables and its restore, against mariadb-dump | gzip and
// loading that dump, measured in the same run on the same 1M-row demo database; written to docs/benchmarks-archive.md.
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { loadConfig } from '../lambdas/core/config/load.ts';
import { ident, qualified } from '../lambdas/core/identifiers.ts';
import { ensureLedger } from '../lambdas/core/ledger/runs.ts';
import { createMysqlClient } from '../lambdas/core/sql/mysql.ts';
import type { SqlClient } from '../lambdas/core/sql/port.ts';
import { scalarNumber, str } from '../lambdas/core/sql/rows.ts';
import { parseDatabaseUrl } from '../lambdas/core/sql/url.ts';
import { archiveInProcess } from '../lambdas/golive/archive.ts';
import { restoreArchive } from '../lambdas/golive/restore.ts';
import { demoConfig } from '../local/demo/config.ts';
import { DEMO_MARKER, DEMO_TABLES } from '../local/demo/schema.ts';
import { seedDemo } from '../local/demo/seed.ts';
import { openDeps } from '../local/run-phase.ts';

const SERVER = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const SOURCE = 'bench_legacy_1m';
const LEDGER = 'bench_archive_ledger';
const TABLES = DEMO_TABLES.map((t) => t.name);
const REPEAT = Math.max(1, Number(process.env.BENCH_REPEAT ?? 3));
const root = join(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'smt-bench-archive-'));

function client(database: string): SqlClient {
  const url = parseDatabaseUrl(`${SERVER}/${database}`);
  if (url.kind !== 'mysql') throw new Error('BENCH_MYSQL_URL must be mysql://');
  return createMysqlClient(url, { connectionLimit: 8 });
}
const admin = client('information_schema');
const fmt = (n: number) => n.toLocaleString('en-US');
const server = new URL(`${SERVER}/x`);
const cliArgs = ['-h', server.hostname, '-P', server.port || '3306', '-u', server.username || 'root'];

/** The 1M-row demo source (20,000 users), made once and shared with the other benchmarks. */
async function ensureSource(): Promise<number> {
  const marked = await admin.query(
    'SELECT TABLE_ROWS AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_COMMENT = ?',
    [SOURCE, DEMO_MARKER],
  );
  const users =
    marked.length > 0
      ? scalarNumber(
          await admin.query(`SELECT COUNT(DISTINCT user_bid) AS n FROM ${qualified(SOURCE, 'user_users')}`),
        )
      : 0;
  if (users !== 20_000) await seedDemo({ client: admin, database: SOURCE, users: 20_000, reset: true });
  let rows = 0;
  for (const t of TABLES)
    rows += scalarNumber(await admin.query(`SELECT COUNT(*) AS n FROM ${qualified(SOURCE, t)}`));
  return rows;
}

/** Flushes dirty pages before each method (see bench/run.ts), so none pays for its predecessor's writes. */
async function quiet(): Promise<void> {
  const [row] = await admin.query('SELECT @@GLOBAL.innodb_max_dirty_pages_pct AS pct');
  const previous = row === undefined ? 90 : Number(str(row, 'pct'));
  await admin.execute('SET GLOBAL innodb_max_dirty_pages_pct = 0');
  try {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const [dirty] = await admin.query("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'");
      if ((dirty === undefined ? 0 : Number(str(dirty, 'Value'))) < 100 || Date.now() > deadline) return;
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await admin.execute('SET GLOBAL innodb_max_dirty_pages_pct = ?', [previous]);
  }
}

interface Sample {
  readonly seconds: number;
  readonly bytes: number;
  /** CPU seconds of this process (ours) during the method; of the baselines' processes, not measured. */
  readonly cpu?: number;
}

const ownCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Ours: plan, every part (go-live's default two at a time), manifests; the objects' total size. */
async function ourArchive(round: number): Promise<Sample & { runId: string }> {
  const loaded = loadConfig({
    defaults: demoConfig,
    cwd: work,
    env: {
      SOURCE_DATABASE_URL: `${SERVER}/${SOURCE}`,
      TARGET_DATABASE_URL: `${SERVER}/${LEDGER}`,
      ARCHIVE_URL: join(work, `archive-${round}`),
    },
  });
  const deps = { ...openDeps(loaded, work), signal: new AbortController().signal };
  try {
    await ensureLedger(deps.target);
    const runId = `golive-20261201T00000${round}Z-${String(round).padStart(6, '0')}`;
    await quiet();
    const cpu = ownCpu();
    const started = performance.now();
    const manifest = await archiveInProcess(deps, runId, loaded.config.golive.archive.maxConcurrency);
    return {
      seconds: (performance.now() - started) / 1000,
      bytes: manifest.tables.reduce((s, t) => s + t.bytes, 0),
      cpu: ownCpu() - cpu,
      runId,
    };
  } finally {
    await deps.close();
  }
}

/** The baseline: mariadb-dump --single-transaction of the same tables, through gzip (its default level), to a file. */
async function dumpGzip(file: string): Promise<Sample> {
  await quiet();
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    const dump = spawn(
      'mariadb-dump',
      [...cliArgs, '--single-transaction', '--skip-lock-tables', SOURCE, ...TABLES],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const gzip = spawn('gzip', ['-c'], { stdio: ['pipe', 'pipe', 'inherit'] });
    dump.stdout.pipe(gzip.stdin);
    pipeline(gzip.stdout, createWriteStream(file)).then(resolve, reject);
    dump.on('error', reject);
    gzip.on('error', reject);
  });
  return { seconds: (performance.now() - started) / 1000, bytes: statSync(file).size };
}

/** Ours: restore-archive's work into an empty database, every object's SHA-256 and every table's checksum checked. */
async function ourRestore(round: number, runId: string): Promise<Sample> {
  const database = 'bench_restore_ours';
  await admin.execute(`DROP DATABASE IF EXISTS ${ident(database)}`);
  await admin.execute(`CREATE DATABASE ${ident(database)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  const loaded = loadConfig({
    defaults: demoConfig,
    cwd: work,
    env: { ARCHIVE_URL: join(work, `archive-${round}`) },
  });
  const deps = openDeps(loaded, work);
  const into = client(database);
  try {
    await quiet();
    const cpu = ownCpu();
    const started = performance.now();
    const result = await restoreArchive({ archive: deps.archive, into, intoLabel: database, which: runId });
    const failed = result.tables.filter((t) => !t.verified);
    if (failed.length > 0)
      throw new Error(`restore did not verify: ${failed.map((t) => t.table).join(', ')}`);
    return { seconds: (performance.now() - started) / 1000, bytes: 0, cpu: ownCpu() - cpu };
  } finally {
    await into.close();
    await deps.close();
  }
}

/** The baseline: that dump loaded, `gunzip -c | mariadb`, into an empty database. */
async function loadDump(file: string): Promise<Sample> {
  const database = 'bench_restore_dump';
  await admin.execute(`DROP DATABASE IF EXISTS ${ident(database)}`);
  await admin.execute(`CREATE DATABASE ${ident(database)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  await quiet();
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    const gunzip = spawn('gunzip', ['-c', file], { stdio: ['ignore', 'pipe', 'inherit'] });
    const load = spawn('mariadb', [...cliArgs, database], { stdio: ['pipe', 'ignore', 'inherit'] });
    gunzip.stdout.pipe(load.stdin);
    load.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`mariadb exited ${code}`))));
    gunzip.on('error', reject);
    load.on('error', reject);
  });
  return { seconds: (performance.now() - started) / 1000, bytes: 0 };
}

const median = (samples: readonly Sample[]): Sample =>
  [...samples].sort((a, b) => a.seconds - b.seconds)[Math.floor((samples.length - 1) / 2)] as Sample;

async function main(): Promise<void> {
  try {
    const rows = await ensureSource();
    await admin.execute(`DROP DATABASE IF EXISTS ${ident(LEDGER)}`);
    await admin.execute(`CREATE DATABASE ${ident(LEDGER)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    await admin.query(`CHECKSUM TABLE ${TABLES.map((t) => qualified(SOURCE, t)).join(', ')} EXTENDED`);
    const samples = {
      archive: [] as Sample[],
      dump: [] as Sample[],
      restore: [] as Sample[],
      load: [] as Sample[],
    };
    for (let round = 1; round <= REPEAT; round += 1) {
      const dumpFile = join(work, `dump-${round}.sql.gz`);
      const archived = await ourArchive(round);
      samples.archive.push(archived);
      samples.dump.push(await dumpGzip(dumpFile));
      samples.restore.push(await ourRestore(round, archived.runId));
      samples.load.push(await loadDump(dumpFile));
      process.stderr.write(
        `round ${round}/${REPEAT}: archive ${archived.seconds.toFixed(1)} s ${fmt(archived.bytes)} B; dump|gzip ${samples.dump.at(-1)?.seconds.toFixed(1)} s ${fmt(samples.dump.at(-1)?.bytes ?? 0)} B; restore ${samples.restore.at(-1)?.seconds.toFixed(1)} s; load dump ${samples.load.at(-1)?.seconds.toFixed(1)} s\n`,
      );
      rmSync(join(work, `archive-${round}`), { recursive: true, force: true });
      rmSync(dumpFile, { force: true });
    }
    const a = median(samples.archive);
    const d = median(samples.dump);
    const r = median(samples.restore);
    const l = median(samples.load);
    const range = (s: readonly Sample[]) =>
      `${Math.min(...s.map((x) => x.seconds)).toFixed(1)} – ${Math.max(...s.map((x) => x.seconds)).toFixed(1)}`;
    const checks = [
      ['archive time ÷ mariadb-dump \\| gzip time', a.seconds / d.seconds, 1.0],
      ['archive bytes ÷ mariadb-dump \\| gzip bytes', a.bytes / d.bytes, 1.5],
      ['restore time ÷ loading the dump time', r.seconds / l.seconds, 1.0],
    ] as const;
    const table = [
      '| method | seconds (median) | fastest – slowest | rows/s | bytes | our CPU s |',
      '|---|---:|---:|---:|---:|---:|',
      `| archive: gzip JSON Lines parts, manifests, checksums (ours) | ${a.seconds.toFixed(1)} | ${range(samples.archive)} | ${fmt(Math.round(rows / a.seconds))} | ${fmt(a.bytes)} | ${a.cpu?.toFixed(1) ?? ''} |`,
      `| mariadb-dump --single-transaction \\| gzip | ${d.seconds.toFixed(1)} | ${range(samples.dump)} | ${fmt(Math.round(rows / d.seconds))} | ${fmt(d.bytes)} | |`,
      `| restore-archive: SHA-256 of every object, load, checksum and lines read again of every table (ours) | ${r.seconds.toFixed(1)} | ${range(samples.restore)} | ${fmt(Math.round(rows / r.seconds))} | | ${r.cpu?.toFixed(1) ?? ''} |`,
      `| gunzip -c dump \\| mariadb | ${l.seconds.toFixed(1)} | ${range(samples.load)} | ${fmt(Math.round(rows / l.seconds))} | | |`,
      '',
      '| target | measured | wanted | met |',
      '|---|---:|---|---|',
      ...checks.map(
        ([what, value, bound]) =>
          `| ${what} | ${value.toFixed(2)} | ≤ ${bound.toFixed(1)} | ${value <= bound ? 'yes' : '**no**'} |`,
      ),
    ].join('\n');
    process.stdout.write(`\n${table}\n`);
    const git = (() => {
      try {
        return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
      } catch {
        return 'unknown';
      }
    })();
    writeFileSync(
      join(root, 'docs', 'benchmarks-archive.md'),
      `# Benchmarks: the legacy archive\n\nWritten by \`npm run bench\` (bench/archive.ts): go-live's archive of the legacy tables and \`restore-archive\`, against \`mariadb-dump | gzip\` of the same tables and loading that dump, in the same run.\n\n` +
        `- Run: ${new Date().toISOString()}, commit ${git}\n- Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 1024 ** 3)} GiB RAM\n` +
        `- Data: the demo legacy database, ${fmt(rows)} rows (\`--users 20000\`), ten tables, in the buffer pool\n` +
        `- Ours: the archive as go-live runs it (parts of up to 100,000 rows, two at a time, each read between two checksums in one snapshot, hashed on its way to a folder archive), the restore as \`restore-archive\` runs it (every object's SHA-256 before its rows, three objects at a time, secondary indexes built after the load, every table's checksum compared with the manifest's and every part's lines read again and hashed), both in this process\n` +
        `- Runs: every method ${REPEAT} times, in rounds; each row shows the median run\n\n${table}\n\n` +
        'The dump holds SQL statements that only a MySQL-compatible server reads back; the archive holds JSON Lines that DuckDB, Athena or any JSON reader can query (its manifest has the query), with a SHA-256 per object and a checksum per table that the restore proves.\n',
    );
    // And its table in docs/benchmarks.md, as a section of its own (replaced on every run).
    const overview = join(root, 'docs', 'benchmarks.md');
    const heading = "## Go-live's archive and restore";
    const before = readFileSync(overview, 'utf8');
    const kept = before.includes(heading)
      ? before.slice(0, before.indexOf(heading)).trimEnd()
      : before.trimEnd();
    writeFileSync(
      overview,
      `${kept}\n\n${heading}\n\nFrom bench/archive.ts at commit ${git} (${new Date().toISOString()}), the same 1M-row source; details in [benchmarks-archive.md](benchmarks-archive.md).\n\n${table}\n`,
    );
  } finally {
    await admin.close();
  }
}

await main();
