// npm run bench: the data phase against the baselines, measured in the same run, written to docs/benchmarks.md.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { type LoadedConfig, loadConfig } from '../lambdas/core/config/load.ts';
import { ident, identList, qualified } from '../lambdas/core/identifiers.ts';
import { introspect } from '../lambdas/core/schema/introspect.ts';
import { insertRows } from '../lambdas/core/sql/insert.ts';
import { createMysqlClient } from '../lambdas/core/sql/mysql.ts';
import type { SqlClient } from '../lambdas/core/sql/port.ts';
import { num, scalarNumber, str } from '../lambdas/core/sql/rows.ts';
import { parseDatabaseUrl } from '../lambdas/core/sql/url.ts';
import { demoConfig } from '../local/demo/config.ts';
import { DEMO_MARKER, DEMO_TABLES } from '../local/demo/schema.ts';
import { seedDemo } from '../local/demo/seed.ts';
import { runPhase } from '../local/run-phase.ts';

const SERVER = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const BUFFER_POOL = Number(process.env.BENCH_BUFFER_POOL_BYTES ?? 4 * 1024 ** 3);
const TABLES = DEMO_TABLES.map((t) => t.name);
/** Runs of every method; the figures are the median run's. */
const REPEAT = Math.max(1, Number(process.env.BENCH_REPEAT ?? 3));
const root = join(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'smt-bench-'));

function client(database: string): SqlClient {
  const url = parseDatabaseUrl(`${SERVER}/${database}`);
  if (url.kind !== 'mysql') throw new Error('BENCH_MYSQL_URL must be mysql://');
  return createMysqlClient(url, { connectionLimit: 8 });
}
const admin = client('information_schema');

async function ensureSource(database: string, users: number): Promise<number> {
  const marked = await admin.query(
    'SELECT TABLE_ROWS AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_COMMENT = ?',
    [database, DEMO_MARKER],
  );
  const users_ =
    marked.length > 0
      ? scalarNumber(
          await admin.query(`SELECT COUNT(DISTINCT user_bid) AS n FROM ${qualified(database, 'user_users')}`),
        )
      : 0;
  if (users_ !== users) {
    process.stderr.write(`seeding ${database} with ${users} users…\n`);
    await seedDemo({ client: admin, database, users, reset: true });
  }
  let rows = 0;
  for (const t of TABLES)
    rows += scalarNumber(await admin.query(`SELECT COUNT(*) AS n FROM ${qualified(database, t)}`));
  return rows;
}

function configFor(source: string, target: string, copyPath: 'client' | 'server'): LoadedConfig {
  const loaded = loadConfig({
    defaults: demoConfig,
    cwd: work,
    env: {
      SOURCE_DATABASE_URL: `${SERVER}/${source}`,
      TARGET_DATABASE_URL: `${SERVER}/${target}`,
      ARCHIVE_URL: join(work, 'archive'),
    },
  });
  return {
    ...loaded,
    config: { ...loaded.config, chunking: { ...loaded.config.chunking, copyPath, maxConcurrency: 4 } },
  };
}

async function freshTarget(source: string, target: string): Promise<void> {
  await admin.execute(`DROP DATABASE IF EXISTS ${ident(target)}`);
  const run = await runPhase({
    loaded: configFor(source, target, 'server'),
    stateMachine: 'foundation',
    input: {},
    cwd: work,
  });
  if (run.status !== 'SUCCEEDED') throw new Error(`foundation failed: ${run.error} ${run.cause}`);
}

/** CPU seconds a process has used (user + system), from /proc; undefined once it is gone. */
function processCpu(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}
const CLOCK_TICKS = 100;

/** The database server's process, when it runs on this machine: its CPU time is part of every method's cost. */
const serverPid = (() => {
  if (!/@(127\.0\.0\.1|localhost)[:/]/.test(SERVER)) return undefined;
  try {
    const pid = execFileSync('pgrep', ['-x', 'mariadbd|mysqld'], { encoding: 'utf8' }).trim().split('\n')[0];
    return pid === undefined || pid === '' ? undefined : Number(pid);
  } catch {
    return undefined;
  }
})();

interface Timed<T> {
  readonly seconds: number;
  readonly peakRss: number;
  readonly value: T;
  /** CPU seconds of the database server during the method. */
  readonly serverCpu?: number | undefined;
  /** CPU seconds of the client processes (ours, or mariadb-dump and mariadb). */
  readonly clientCpu?: number | undefined;
}

async function timed<T>(
  work_: () => Promise<T>,
  clientCpu: () => number | undefined = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  },
): Promise<Timed<T>> {
  // Every method starts on a flushed server.
  await quiet();
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 50);
  const serverBefore = processCpu(serverPid);
  const clientBefore = clientCpu() ?? 0;
  const started = performance.now();
  try {
    const value = await work_();
    const serverAfter = processCpu(serverPid);
    return {
      seconds: (performance.now() - started) / 1000,
      peakRss: peak,
      value,
      serverCpu:
        serverBefore === undefined || serverAfter === undefined ? undefined : serverAfter - serverBefore,
      clientCpu: (clientCpu() ?? 0) - clientBefore,
    };
  } finally {
    clearInterval(sampler);
  }
}

/**
 * Our data phase as a user runs it: the CLI in its own process (so its peak memory is its own), with a config
 * file for this source and path. Peak RSS is the kernel's high-water mark (VmHWM), read while it runs.
 */
async function ourDataPhase(source: string, copyPath: 'client' | 'server') {
  const target = 'bench_target';
  await freshTarget(source, target);
  const dir = mkdtempSync(join(tmpdir(), 'smt-bench-run-'));
  const loaded = configFor(source, target, copyPath);
  writeFileSync(join(dir, 'shifu-migrate.config.json'), JSON.stringify(loaded.config));
  await quiet();
  const serverBefore = processCpu(serverPid);
  const started = performance.now();
  let peakRss = 0;
  let clientCpu = 0;
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(
      join(root, 'node_modules', '.bin', 'node'),
      [join(root, 'bin', 'shifu-migrate.mjs'), 'run', 'data', '--json'],
      {
        cwd: dir,
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    let text = '';
    child.stdout.on('data', (d: Buffer) => {
      text += d.toString();
    });
    const sampler = setInterval(() => {
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
        const hwm = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
        if (hwm !== undefined) peakRss = Math.max(peakRss, Number(hwm) * 1024);
        clientCpu = Math.max(clientCpu, processCpu(child.pid) ?? 0);
      } catch {
        // The process has exited between two samples.
      }
    }, 50);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearInterval(sampler);
      if (code === 0) resolve(text);
      else reject(new Error(`run data exited ${code}: ${text}`));
    });
  });
  const seconds = (performance.now() - started) / 1000;
  const serverAfter = processCpu(serverPid);
  const result = JSON.parse(output) as { rows: number; quarantined: number };
  return {
    seconds,
    peakRss,
    rows: result.rows + result.quarantined,
    serverCpu:
      serverBefore === undefined || serverAfter === undefined ? undefined : serverAfter - serverBefore,
    // Sampled every 50 ms until it exits: the last sample misses at most its final 50 ms.
    clientCpu,
  };
}

async function mysqldumpPipe(source: string) {
  const target = 'bench_dump';
  await admin.execute(`DROP DATABASE IF EXISTS ${ident(target)}`);
  await admin.execute(`CREATE DATABASE ${ident(target)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  const url = new URL(`${SERVER}/x`);
  const args = ['-h', url.hostname, '-P', url.port || '3306', '-u', url.username || 'root'];
  // The two client processes' CPU, sampled while they run (their last 50 ms may be missed).
  const used = new Map<string, number>();
  let sampler: NodeJS.Timeout | undefined;
  const result = await timed(
    () =>
      new Promise<void>((resolve, reject) => {
        const dump = spawn(
          'mariadb-dump',
          [...args, '--single-transaction', '--skip-lock-tables', source, ...TABLES],
          { stdio: ['ignore', 'pipe', 'inherit'] },
        );
        const load = spawn('mariadb', [...args, target], { stdio: ['pipe', 'ignore', 'inherit'] });
        sampler = setInterval(() => {
          for (const [name, p] of [
            ['dump', dump.pid],
            ['load', load.pid],
          ] as const) {
            const cpu = processCpu(p);
            if (cpu !== undefined) used.set(name, Math.max(used.get(name) ?? 0, cpu));
          }
        }, 50);
        dump.stdout.pipe(load.stdin);
        load.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`mariadb exited ${code}`))));
        dump.on('error', reject);
        load.on('error', reject);
      }),
    () => [...used.values()].reduce((s, v) => s + v, 0),
  );
  clearInterval(sampler);
  return result;
}

/** The plan's sample code: `ORDER BY id LIMIT 2000 OFFSET n`, same driver, written with multi-row inserts. */
async function offsetBatching(source: string) {
  const target = 'bench_target';
  await freshTarget(source, target);
  const src = client(source);
  const tgt = client(target);
  const schema = await introspect(src, source);
  try {
    return await timed(async () => {
      for (const table of TABLES) {
        const columns = schema.tables.find((t) => t.name === table)?.columns.map((c) => c.name) ?? [];
        const tenant =
          DEMO_TABLES.find((t) => t.name === table)?.comment === DEMO_MARKER ? [] : ['tenant_bid'];
        for (let offset = 0; ; offset += 2000) {
          const rows = await src.query(
            `SELECT ${identList(columns)} FROM ${ident(table)} ORDER BY ${ident('id')} LIMIT 2000 OFFSET ?`,
            [offset],
          );
          if (rows.length === 0) break;
          await insertRows(tgt, {
            table,
            columns: [...columns, ...tenant],
            rows: rows.map((r) => [
              ...columns.map((c) => r[c] ?? null),
              ...(tenant.length > 0 ? ['default'] : []),
            ]),
            maxStatementBytes: tgt.maxStatementBytes,
            // Written the way our client-side copy writes (prepared, power-of-two statements): the
            // comparison is then of the reads, OFFSET against keyset, plus our mapping and validation.
            prepared: tgt.preparesStatements,
          });
        }
      }
    });
  } finally {
    await src.close();
    await tgt.close();
  }
}

/** The one-server limit: one INSERT … SELECT per table into the same target tables, no mapping, no validation. */
async function insertSelect(source: string) {
  const target = 'bench_target';
  await freshTarget(source, target);
  const schema = await introspect(admin, source);
  return timed(async () => {
    for (const table of TABLES) {
      const columns = schema.tables.find((t) => t.name === table)?.columns.map((c) => c.name) ?? [];
      const global = table === 'sys_configs';
      await admin.execute(
        `INSERT INTO ${qualified(target, table)} (${identList([...columns, ...(global ? [] : ['tenant_bid'])])}) SELECT ${identList(columns)}${global ? '' : ", 'default'"} FROM ${qualified(source, table)}`,
      );
    }
  });
}

async function settings(): Promise<Record<string, string>> {
  const rows = await admin.query(
    "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('version', 'innodb_buffer_pool_size', 'innodb_autoinc_lock_mode', 'innodb_flush_log_at_trx_commit', 'innodb_log_file_size', 'log_bin', 'max_allowed_packet')",
  );
  return Object.fromEntries(rows.map((r) => [str(r, 'Variable_name'), str(r, 'Value')]));
}

/**
 * Flushes the previous method's writes before the next one starts, so no method pays for its predecessor's:
 * with a large buffer pool InnoDB would otherwise leave them dirty until redo log space runs short, in the
 * middle of whichever method comes next. Lowering innodb_max_dirty_pages_pct to 0 for a moment makes the page
 * cleaner write them all; the setting is put back before the method starts.
 */
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

async function resized(): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const [row] = await admin.query("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_resize_status'");
    const status = row === undefined ? '' : str(row, 'Value');
    if (status === '' || /completed|finished/i.test(status) || Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 500));
  }
}

const rate = (rows: number, seconds: number) => Math.round(rows / seconds);
/** A Markdown table cell: a `|` in the text would split it. */
const cell = (text: string) => text.replace(/\|/g, '\\|');
const fmt = (n: number) => n.toLocaleString('en-US');

type Result = {
  name: string;
  rows: number;
  seconds: number;
  serverCpu?: number | undefined;
  clientCpu?: number | undefined;
};

/**
 * What the CPU columns say about the targets, computed from this run: how busy the cores were, and how many
 * cores the client-side path would need, at the CPU it used, to reach the wanted ratios.
 */
function reading(cores: number, a: Result, b: Result, c: Result, d: Result, e: Result): string {
  if (a.serverCpu === undefined || b.serverCpu === undefined) return '';
  const cpuA = a.serverCpu + (a.clientCpu ?? 0);
  const cpuB = b.serverCpu + (b.clientCpu ?? 0);
  const wantedDump = c.seconds / 1.5;
  const wantedOffset = d.seconds / 5;
  const need = (cpu: number, seconds: number) => (cpu / seconds).toFixed(1);
  return (
    `\n## Reading these figures\n\n` +
    `- (a) used ${cpuA.toFixed(1)} CPU seconds (server ${a.serverCpu.toFixed(1)}, our process ${(a.clientCpu ?? 0).toFixed(1)}) in ${a.seconds.toFixed(1)} s on ${cores} cores. ` +
    `1.5× mariadb-dump means ${wantedDump.toFixed(1)} s, and 5× OFFSET batching ${wantedOffset.toFixed(1)} s: at the CPU (a) needs that is ${need(cpuA, wantedDump)} and ${need(cpuA, wantedOffset)} cores kept fully busy, against ${cores} here.\n` +
    `- (a) kept the cores ${Math.round((cpuA / (cores * a.seconds)) * 100)}% busy; (c) keeps about one core busy (one dump process feeding one load session), so (a) gains on it only by running on every core, while it also checksums every chunk on both sides and checks tenant isolation.\n` +
    `- (b), the server-side path, does the same work without the rows travelling through a client: ${cpuB.toFixed(1)} CPU seconds, ${b.seconds.toFixed(1)} s.\n` +
    `- OFFSET batching is quadratic per table, and loses more as tables grow; at this size, with every table in the buffer pool, its reads cost it little: INSERT … SELECT, which moves no row through a client, is ${(d.seconds / e.seconds).toFixed(1)}× as fast, and (b) ${(d.seconds / b.seconds).toFixed(1)}× (with ${cpuB.toFixed(1)} CPU seconds to (a)'s ${cpuA.toFixed(1)}).\n`
  );
}

async function main(): Promise<void> {
  const [before] = await admin.query('SELECT @@innodb_buffer_pool_size AS size');
  const previousPool = before === undefined ? 0 : num(before, 'size');
  if (BUFFER_POOL > 0 && previousPool !== BUFFER_POOL) {
    await admin.execute('SET GLOBAL innodb_buffer_pool_size = ?', [BUFFER_POOL]);
    // The resize runs in the background; measuring during it would charge the first method.
    await resized();
  }
  try {
    const rows1m = await ensureSource('bench_legacy_1m', 20_000);
    const rows2m = await ensureSource('bench_legacy_2m', 40_000);
    const server = await settings();
    process.stderr.write(
      `sources: ${fmt(rows1m)} and ${fmt(rows2m)} rows; buffer pool ${fmt(Number(server.innodb_buffer_pool_size) / 1024 ** 2)} MiB\n`,
    );
    // Warm the caches (every row of both sources) so the first method measured does not pay for reading from disk.
    await admin.query(
      `CHECKSUM TABLE ${TABLES.map((t) => qualified('bench_legacy_1m', t)).join(', ')} EXTENDED`,
    );
    await admin.query(
      `CHECKSUM TABLE ${TABLES.map((t) => qualified('bench_legacy_2m', t)).join(', ')} EXTENDED`,
    );

    const results: {
      name: string;
      rows: number;
      seconds: number;
      /** Fastest and slowest of the runs. */
      range: [number, number];
      peakRss?: number;
      serverCpu?: number | undefined;
      clientCpu?: number | undefined;
    }[] = [];
    type Sample = {
      seconds: number;
      peakRss: number;
      rows: number;
      serverCpu?: number | undefined;
      clientCpu?: number | undefined;
    };
    const withRows =
      (rows: number, run: () => Promise<Omit<Sample, 'rows'>>): (() => Promise<Sample>) =>
      async () => ({ ...(await run()), rows });
    const methods: { name: string; rss: boolean; run: () => Promise<Sample> }[] = [
      {
        name: '(a) data phase, client-side path, validation included',
        rss: true,
        run: () => ourDataPhase('bench_legacy_1m', 'client'),
      },
      {
        name: '(b) data phase, server-side path, validation included',
        rss: true,
        run: () => ourDataPhase('bench_legacy_1m', 'server'),
      },
      {
        name: '(c) mariadb-dump --single-transaction | mariadb',
        rss: false,
        run: withRows(rows1m, () => mysqldumpPipe('bench_legacy_1m')),
      },
      {
        name: '(d) the plan: LIMIT 2000 OFFSET n batching, same driver',
        rss: false,
        run: withRows(rows1m, () => offsetBatching('bench_legacy_1m')),
      },
      {
        name: '(e) INSERT … SELECT per table (the one-server limit)',
        rss: false,
        run: withRows(rows1m, () => insertSelect('bench_legacy_1m')),
      },
      {
        name: '(a) at 2M rows: data phase, client-side path',
        rss: true,
        run: () => ourDataPhase('bench_legacy_2m', 'client'),
      },
    ];
    // Rounds, every method once per round: whatever drifts on a shared machine is spread over all of them.
    const samples = new Map<string, Sample[]>(methods.map((m) => [m.name, []]));
    for (let round = 1; round <= REPEAT; round += 1) {
      for (const method of methods) {
        const sample = await method.run();
        samples.get(method.name)?.push(sample);
        process.stderr.write(
          `round ${round}/${REPEAT} ${method.name}: ${sample.seconds.toFixed(1)} s, ${fmt(rate(sample.rows, sample.seconds))} rows/s\n`,
        );
      }
    }
    for (const method of methods) {
      const runs = [...(samples.get(method.name) ?? [])].sort((x, y) => x.seconds - y.seconds);
      const median = runs[Math.floor((runs.length - 1) / 2)] as Sample;
      results.push({
        name: method.name,
        rows: median.rows,
        seconds: median.seconds,
        range: [runs[0]?.seconds ?? median.seconds, runs.at(-1)?.seconds ?? median.seconds],
        serverCpu: median.serverCpu,
        clientCpu: median.clientCpu,
        ...(method.rss ? { peakRss: Math.max(...runs.map((r) => r.peakRss)) } : {}),
      });
    }

    const by = (prefix: string) => results.find((r) => r.name.startsWith(prefix)) as (typeof results)[number];
    const a = by('(a) data');
    const b = by('(b)');
    const c = by('(c)');
    const d = by('(d)');
    const e = by('(e)');
    const a2 = by('(a) at 2M');
    const checks = [
      [
        'client-side rows/s ÷ mariadb-dump|mariadb rows/s',
        rate(a.rows, a.seconds) / rate(c.rows, c.seconds),
        '≥ 1.5',
      ],
      ['server-side time ÷ INSERT … SELECT time', b.seconds / e.seconds, '≤ 1.3'],
      [
        'client-side rows/s ÷ OFFSET batching rows/s',
        rate(a.rows, a.seconds) / rate(d.rows, d.seconds),
        '≥ 5',
      ],
      ['2M time ÷ 1M time (client-side)', a2.seconds / a.seconds, '≤ 2.2'],
      [
        'peak RSS at 2M ÷ peak RSS at 1M (client-side)',
        (a2.peakRss ?? 0) / (a.peakRss ?? 1),
        '≈ 1 (bounded by chunk size)',
      ],
    ] as const;
    const met = (value: number, target: string) =>
      target.startsWith('≥')
        ? value >= Number(target.slice(2))
        : target.startsWith('≤')
          ? value <= Number(target.slice(2))
          : value < 1.3;
    const lines: string[] = [];
    lines.push(
      '| method | rows | seconds (median) | fastest – slowest | rows/s | ÷ mariadb-dump rows/s | peak RSS | server CPU s | client CPU s | cores busy |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    const cores = cpus().length;
    const busy = (r: (typeof results)[number]) =>
      r.serverCpu === undefined ? undefined : (r.serverCpu + (r.clientCpu ?? 0)) / (cores * r.seconds);
    for (const r of results) {
      const b_ = busy(r);
      lines.push(
        `| ${cell(r.name)} | ${fmt(r.rows)} | ${r.seconds.toFixed(1)} | ${r.range[0].toFixed(1)} – ${r.range[1].toFixed(1)} | ${fmt(rate(r.rows, r.seconds))} | ${(rate(r.rows, r.seconds) / rate(c.rows, c.seconds)).toFixed(2)} | ${r.peakRss === undefined ? '' : `${Math.round(r.peakRss / 1024 ** 2)} MiB`} | ${r.serverCpu?.toFixed(1) ?? ''} | ${r.clientCpu?.toFixed(1) ?? ''} | ${b_ === undefined ? '' : `${Math.round(b_ * 100)}%`} |`,
      );
    }
    lines.push('', '| target | measured | wanted | met |', '|---|---:|---|---|');
    for (const [what, value, target] of checks)
      lines.push(
        `| ${cell(what)} | ${value.toFixed(2)} | ${target} | ${met(value, target) ? 'yes' : '**no**'} |`,
      );
    const table = lines.join('\n');
    process.stdout.write(`\n${table}\n`);
    const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 1024 ** 3)} GiB RAM`;
    const git = (() => {
      try {
        return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
      } catch {
        return 'unknown';
      }
    })();
    writeFileSync(
      join(root, 'docs', 'benchmarks.md'),
      `# Benchmarks\n\nWritten by \`npm run bench\` (bench/run.ts); every figure below comes from one run, so the baselines were measured on the same machine, server and data, minutes apart.\n\n` +
        `- Run: ${new Date().toISOString()}, commit ${git}\n- Machine: ${machine}\n` +
        `- Server: ${Object.entries(server)
          .map(([k, v]) => `${k}=${v}`)
          .join(', ')}\n` +
        `- Data: the demo legacy database, ${fmt(rows1m)} rows (\`--users 20000\`) and ${fmt(rows2m)} rows (\`--users 40000\`), ten tables\n` +
        `- Our runs: \`copyPath\` client or server, \`maxConcurrency\` 4, \`rowsPerChunk\` 5000, each into a target fresh from foundation; (d) and (e) write into the same foundation-made tables; (c) makes its own tables\n` +
        `- Runs: every method ${REPEAT} times, in rounds (each round runs every method once); each row shows the median run, the fastest and slowest, and the highest peak RSS of its runs (\`BENCH_REPEAT\` sets the count)\n\n` +
        `${table}\n\nThe server's buffer pool size changes every figure: compare ratios, not seconds, across machines.\n\nThe sync phase's figures (catch-up under traffic, reconciliation against pt-table-checksum, a pass with 1 % changed) are in [benchmarks-sync.md](benchmarks-sync.md), and go-live's archive and restore against \`mariadb-dump | gzip\` and loading it in [benchmarks-archive.md](benchmarks-archive.md), written by the same \`npm run bench\`.\n` +
        reading(cores, a, b, c, d, e),
    );
  } finally {
    if (BUFFER_POOL > 0 && previousPool !== BUFFER_POOL && previousPool > 0) {
      await admin.execute('SET GLOBAL innodb_buffer_pool_size = ?', [previousPool]);
    }
    await admin.close();
  }
}

await main();
