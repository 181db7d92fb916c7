import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lambdas/core/config/load.ts';
import { ensureLedger } from '../../lambdas/core/ledger/runs.ts';
import { createDataApiClient } from '../../lambdas/core/sql/data-api.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import type { TaskDeps } from '../../lambdas/core/task.ts';
import {
  type ArchivePart,
  archiveInProcess,
  archivePart,
  partListKey,
  type TableManifest,
  tableManifestKey,
} from '../../lambdas/golive/archive.ts';
import { ArchiveTampered } from '../../lambdas/golive/errors.ts';
import { restoreArchive } from '../../lambdas/golive/restore.ts';
import { demoConfig } from '../../local/demo/config.ts';
import { openDeps } from '../../local/run-phase.ts';
import { fakeDataApi } from '../support/fake-data-api.ts';
import { adminConnection, mysqlClient, scratchDatabase } from '../support/mariadb.ts';

type Scratch = Awaited<ReturnType<typeof scratchDatabase>>;
let source: Scratch;
let target: Scratch;
const restored: Scratch[] = [];
let dir: string;
let deps: TaskDeps & { close(): Promise<void> };
const RUN = 'golive-20261201T120000Z-a1b2c3';

/** Over 1 MB in one row: a text and a blob, so the row travels in slices where a response is bounded. */
const BIG_TEXT = 'ü€𝄞x'.repeat(300_000);
const BIG_BLOB = Buffer.alloc(1_200_000, 0).map((_, i) => (i * 31) % 256);
const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

beforeAll(async () => {
  source = await scratchDatabase('arcs');
  target = await scratchDatabase('arct');
  dir = mkdtempSync(join(tmpdir(), 'smt-archive-'));
  const conn = await adminConnection(source.name);
  try {
    await conn.query(`CREATE TABLE awkward (
      id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
      dec_v DECIMAL(20,10) NULL, big BIGINT NULL, ubig BIGINT UNSIGNED NULL,
      dt DATETIME(6) NULL, ts TIMESTAMP(3) NULL DEFAULT NULL, d DATE NULL, tm TIME(2) NULL, yr YEAR NULL,
      js JSON NULL, bin VARBINARY(300) NULL, blb LONGBLOB NULL, s VARCHAR(50) NULL, txt LONGTEXT NULL,
      f FLOAT NULL, dbl DOUBLE NULL, bits BIT(10) NULL, e ENUM('a','b c','') NULL, st SET('x','y') NULL,
      gen INT AS (CHAR_LENGTH(s)) VIRTUAL
    ) CHARACTER SET utf8mb4`);
    const rows: unknown[][] = [
      [
        1n,
        '1234567890.0123456789',
        '-9223372036854775808',
        '18446744073709551615',
        '1000-01-01 00:00:00.000000',
        '1970-01-01 00:00:01.000',
        '1000-01-01',
        '-838:59:59.00',
        1901,
        '{"a": 12345678901234567890, "b": null}',
        ALL_BYTES,
        Buffer.alloc(0),
        '',
        'NULL',
        123456.7890625,
        0.1 + 0.2,
        Buffer.from([0x03, 0xff]),
        'b c',
        'x,y',
      ],
      [
        2n,
        '-9999999999.9999999999',
        '9223372036854775807',
        '9007199254740993',
        '9999-12-31 23:59:59.999999',
        '2038-01-19 03:14:07.999',
        '9999-12-31',
        '838:59:59.99',
        2155,
        'null',
        Buffer.from([0]),
        ALL_BYTES,
        'NULL',
        '',
        -3.4e38,
        1.7976931348623157e308,
        Buffer.from([0, 0]),
        '',
        '',
      ],
      [
        3n,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
        null,
      ],
      [
        18446744073709551615n,
        '0.0000000001',
        '0',
        '0',
        '2026-12-01 12:00:00.5',
        '2026-12-01 12:00:00.125',
        '2026-12-01',
        '00:00:00.01',
        2026,
        '"text \\" \\u0000 \\n"',
        Buffer.from('NULL'),
        BIG_BLOB,
        'tab\there\nnewline "quote" \\ back',
        BIG_TEXT,
        5e-45,
        5e-324,
        Buffer.from([0x02, 0x00]),
        'a',
        'y',
      ],
    ];
    for (const r of rows) {
      await conn.query(
        'INSERT INTO awkward (id, dec_v, big, ubig, dt, ts, d, tm, yr, js, bin, blb, s, txt, f, dbl, bits, e, st) VALUES (?)',
        [r.map((v) => (typeof v === 'bigint' ? v.toString() : v))],
      );
    }
    // Many parts: a composite text key walked on its index, and rows enough for three parts of 1,000.
    await conn.query(
      'CREATE TABLE tags (name VARCHAR(40) NOT NULL, lang CHAR(2) NOT NULL, n INT NOT NULL, PRIMARY KEY (name, lang))',
    );
    const tags = Array.from({ length: 2_500 }, (_, i) => [
      `tag-${String(i % 1250).padStart(5, '0')}`,
      i < 1250 ? 'en' : 'zh',
      i,
    ]);
    await conn.query('INSERT INTO tags (name, lang, n) VALUES ?', [tags]);
    // No key at all, duplicates included: one part, read whole.
    await conn.query('CREATE TABLE loose (a INT NULL, b VARCHAR(10) NULL)');
    await conn.query("INSERT INTO loose VALUES (1, 'x'), (1, 'x'), (NULL, NULL), (2, '')");
    await conn.query('CREATE TABLE empty_one (id INT PRIMARY KEY)');
    await conn.query('ANALYZE TABLE awkward, tags, loose, empty_one');
  } finally {
    await conn.end();
  }
  const loaded = loadConfig({
    cwd: dir,
    env: {},
    defaults: () => ({
      ...demoConfig(),
      source: { url: source.url.raw },
      target: { url: target.url.raw },
      archive: { url: join(dir, 'archive') },
      golive: { archive: { partRows: 1_000 } },
    }),
  });
  deps = { ...openDeps(loaded, dir), signal: new AbortController().signal };
  await ensureLedger(deps.target);
}, 120_000);

afterAll(async () => {
  await deps?.close();
  for (const db of [source, target, ...restored]) await db?.drop();
});

async function archiveAll(): Promise<void> {
  const manifest = await archiveInProcess(deps, RUN, 2);
  expect(manifest.tables.map((t) => t.table)).toEqual(['awkward', 'empty_one', 'loose', 'tags']);
}

async function restoreInto(table?: string) {
  const db = await scratchDatabase('arcr');
  restored.push(db);
  const into: SqlClient = mysqlClient(db.name);
  try {
    return {
      db,
      result: await restoreArchive({
        archive: deps.archive,
        into,
        intoLabel: db.name,
        which: 'latest',
        table,
        ledger: deps.target,
      }),
    };
  } finally {
    await into.close();
  }
}

/** The server's own checksum of a table (CHECKSUM TABLE): independent of ours, bit-level over every column. */
async function serverChecksum(database: string, table: string): Promise<string> {
  const conn = await adminConnection(database);
  try {
    const [rows] = await conn.query(`CHECKSUM TABLE \`${table}\` EXTENDED`);
    return String((rows as { Checksum: unknown }[])[0]?.Checksum);
  } finally {
    await conn.end();
  }
}

describe('the legacy archive', () => {
  it('archives every table in parts with manifests, and restores each bit-exact (checksums equal, CHECKSUM TABLE too)', async () => {
    await archiveAll();
    const manifest = JSON.parse(
      (await deps.archive.get(tableManifestKey(RUN, 'tags')))?.toString() ?? '{}',
    ) as TableManifest;
    expect(manifest.rows).toBe(2_500);
    expect(manifest.objects.length).toBe(3);
    expect(manifest.ddl).toMatch(/^CREATE TABLE `tags`/);
    expect(manifest.objects.every((o) => /^[0-9a-f]{64}$/.test(o.sha256))).toBe(true);

    const { db, result } = await restoreInto();
    expect(result.tables.map((t) => [t.table, t.rows, t.verified])).toEqual([
      ['awkward', 4, true],
      ['empty_one', 0, true],
      ['loose', 4, true],
      ['tags', 2_500, true],
    ]);
    for (const table of ['awkward', 'tags', 'loose', 'empty_one']) {
      expect(await serverChecksum(db.name, table), table).toBe(await serverChecksum(source.name, table));
    }
    const recorded = await deps.target.query(
      'SELECT table_name, verified FROM migration_archive_restores WHERE archive_run_id = ? ORDER BY table_name',
      [RUN],
    );
    expect(recorded.map((r) => [r.table_name, Number(r.verified)])).toEqual([
      ['awkward', 1],
      ['empty_one', 1],
      ['loose', 1],
      ['tags', 1],
    ]);
  }, 120_000);

  it('keeps every awkward value exactly as text in the JSON Lines (NULL, empty and the string NULL apart)', async () => {
    const manifest = JSON.parse(
      (await deps.archive.get(tableManifestKey(RUN, 'awkward')))?.toString() ?? '{}',
    ) as TableManifest;
    const lines = manifest.objects.flatMap((o) =>
      gunzipSync(readFileSync(join(dir, 'archive', ...o.key.split('/'))))
        .toString('utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, string | null>),
    );
    const byId = new Map(lines.map((l) => [l.id, l]));
    expect(byId.get('18446744073709551615')?.dec_v).toBe('0.0000000001');
    expect(byId.get('1')?.ubig).toBe('18446744073709551615');
    expect(byId.get('2')?.ubig).toBe('9007199254740993');
    expect(byId.get('1')?.dt).toBe('1000-01-01 00:00:00.000000');
    expect(byId.get('1')?.js).toBe('{"a": 12345678901234567890, "b": null}');
    expect(byId.get('2')?.js).toBe('null');
    expect(byId.get('1')?.s).toBe('');
    expect(byId.get('1')?.txt).toBe('NULL');
    expect(byId.get('3')?.s).toBeNull();
    expect(Buffer.from(byId.get('1')?.bin ?? '', 'base64').equals(ALL_BYTES)).toBe(true);
    expect(byId.get('18446744073709551615')?.txt).toBe(BIG_TEXT);
    expect(Buffer.from(byId.get('18446744073709551615')?.blb ?? '', 'base64').equals(BIG_BLOB)).toBe(true);
    expect('gen' in (byId.get('1') ?? {})).toBe(false);
    expect(manifest.readWith).toContain("'ubig': 'UBIGINT'");
  });

  it('names an altered object (SHA-256) and restores nothing of it', async () => {
    const manifest = JSON.parse(
      (await deps.archive.get(tableManifestKey(RUN, 'tags')))?.toString() ?? '{}',
    ) as TableManifest;
    const victim = manifest.objects[1];
    if (victim === undefined) throw new Error('no second part');
    const path = join(dir, 'archive', ...victim.key.split('/'));
    const original = readFileSync(path);
    const altered = Buffer.from(original);
    altered[altered.length - 12] = (altered[altered.length - 12] ?? 0) ^ 0x01;
    writeFileSync(path, altered);
    try {
      const attempt = restoreInto('tags');
      await expect(attempt).rejects.toThrow(ArchiveTampered);
      await expect(attempt).rejects.toThrow(victim.key);
      // Nothing half-loaded is left behind: the table the restore had made is gone again, so it can run again.
      const into = restored.at(-1);
      const left = await adminConnection(into?.name);
      try {
        const [tables] = await left.query('SHOW TABLES');
        expect(tables).toEqual([]);
      } finally {
        await left.end();
      }
    } finally {
      writeFileSync(path, original);
    }
  }, 60_000);

  it('refuses a manifest edited to drop a part or to smuggle SQL into its DDL, before loading anything', async () => {
    const key = tableManifestKey(RUN, 'tags');
    const original = (await deps.archive.get(key)) ?? Buffer.alloc(0);
    const manifest = JSON.parse(original.toString()) as TableManifest;
    try {
      // One part left out, the table's rows and checksum made to fit the rest: the ledger recorded three parts.
      const kept = manifest.objects.filter((o) => o.part !== 2);
      const rows = kept.reduce((n, o) => n + o.rows, 0);
      const sum = kept.reduce((x, o) => x ^ BigInt(o.checksum), 0n).toString();
      await deps.archive.put(
        key,
        JSON.stringify({ ...manifest, objects: kept, rows, checksum: { rows, sum } }),
      );
      await expect(restoreInto('tags')).rejects.toThrow(/number of parts|rows or checksum/);
      // A DDL that would copy whatever the restoring user may read: refused by the ledger's DDL digest, and without
      // a ledger by what the DDL may hold.
      await deps.archive.put(
        key,
        JSON.stringify({ ...manifest, ddl: `${manifest.ddl} IGNORE SELECT 1 AS x` }),
      );
      await expect(restoreInto('tags')).rejects.toThrow(ArchiveTampered);
      const db = await scratchDatabase('arcr');
      restored.push(db);
      const into = mysqlClient(db.name);
      try {
        await expect(
          restoreArchive({ archive: deps.archive, into, intoLabel: db.name, which: RUN, table: 'tags' }),
        ).rejects.toThrow(/holds no CREATE TABLE of that table/);
      } finally {
        await into.close();
      }
    } finally {
      await deps.archive.put(key, original);
    }
  }, 60_000);

  it('archives a part again when asked again (a retry): one object per part, the same checksum', async () => {
    const before = await deps.target.query(
      "SELECT table_name, chunk_no, sha256, checksum FROM migration_archive_chunks WHERE run_id = ? AND table_name = 'tags' ORDER BY chunk_no",
      [RUN],
    );
    await deps.target.execute(
      "UPDATE migration_archive_chunks SET status = 'planned' WHERE run_id = ? AND table_name = 'tags' AND chunk_no = 0",
      [RUN],
    );
    const first = (
      JSON.parse((await deps.archive.get(partListKey(RUN, 'tags')))?.toString() ?? '[]') as ArchivePart[]
    ).find((p) => p.table === 'tags' && p.n === 0);
    if (first === undefined) throw new Error('no parts');
    await archivePart(deps, RUN, first);
    const after = await deps.target.query(
      "SELECT table_name, chunk_no, sha256, checksum FROM migration_archive_chunks WHERE run_id = ? AND table_name = 'tags' ORDER BY chunk_no",
      [RUN],
    );
    expect(after).toEqual(before);
    const keys = await deps.archive.list(`legacy-archive/${RUN}/tags/`);
    expect(keys.filter((k) => k.endsWith('.jsonl.gz'))).toHaveLength(3);
  }, 60_000);

  it('archives the same values through the Data API (rows over 64 KB read in slices), restored bit-exact', async () => {
    const fake = await fakeDataApi({ database: source.name });
    const viaApi = createDataApiClient({
      client: fake.client,
      resourceArn: 'arn:aws:rds:us-east-1:123456789012:cluster:legacy',
      secretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:legacy-AbCdEf',
      database: source.name,
    });
    const run = 'golive-20261201T130000Z-d1d2d3';
    try {
      const manifest = await archiveInProcess({ ...deps, source: viaApi }, run, 2);
      // Rows over the Data API's 64 KB were refused whole and read again in slices.
      expect(fake.tooLargeRows).toBeGreaterThan(0);
      const mine = JSON.parse(
        (await deps.archive.get(`legacy-archive/${RUN}/manifest.json`))?.toString() ?? '{}',
      );
      // The same checksums as the mysql2 path (whose lines the server formats): the two paths read the same values.
      expect(manifest.tables.map((t) => [t.table, t.checksum])).toEqual(
        (mine.tables as { table: string; checksum: unknown }[]).map((t) => [t.table, t.checksum]),
      );
      // And the same JSON values, line for line (JSON_QUOTE on the server, JSON.stringify here).
      const lines = async (runId: string) => {
        const m = JSON.parse(
          (await deps.archive.get(tableManifestKey(runId, 'awkward')))?.toString() ?? '{}',
        ) as TableManifest;
        return m.objects.flatMap((o) =>
          gunzipSync(readFileSync(join(dir, 'archive', ...o.key.split('/'))))
            .toString('utf8')
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as unknown),
        );
      };
      const viaApiLines = (await lines(run)) as Record<string, unknown>[];
      const viaServerLines = (await lines(RUN)) as Record<string, unknown>[];
      const differing = viaApiLines.flatMap((line, i) =>
        Object.keys(line)
          .filter((k) => line[k] !== viaServerLines[i]?.[k])
          .map(
            (k) =>
              `${String(line.id)}.${k}: ${JSON.stringify(line[k])?.slice(0, 60)} / ${JSON.stringify(viaServerLines[i]?.[k])?.slice(0, 60)}`,
          ),
      );
      expect(differing).toEqual([]);
      expect(viaApiLines).toEqual(viaServerLines);
      const db = await scratchDatabase('arcr');
      restored.push(db);
      const into = mysqlClient(db.name);
      try {
        const result = await restoreArchive({ archive: deps.archive, into, intoLabel: db.name, which: run });
        expect(result.tables.every((t) => t.verified)).toBe(true);
      } finally {
        await into.close();
      }
      expect(await serverChecksum(db.name, 'awkward')).toBe(await serverChecksum(source.name, 'awkward'));
    } finally {
      await fake.close();
    }
  }, 120_000);
});
