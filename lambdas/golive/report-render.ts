import type { ArchiveStore } from '../core/archive/port.ts';
import type { FinalReport } from './report.ts';
import { CHART_JS_SOURCE, CHART_JS_VERSION } from './vendor/chart-js.generated.ts';

/**
 * The final report for people: Markdown, and one HTML file that opens offline (Chart.js inlined, the charts' data
 * embedded as JSON, every figure also in a table that reads without JavaScript). Both come from one list of
 * sections, so they say the same.
 */

/** Where the final report goes in the archive: `reports/final/<golive run or so-far>/` and `reports/final/latest/`. */
export const FINAL_REPORT_PREFIX = 'reports/final';
/** Where the report of one run of another phase goes: `reports/runs/<run>/`. */
export const RUN_REPORT_PREFIX = 'reports/runs';

/** Archive objects listed in the Markdown and HTML; report.json has them all. */
const OBJECTS_LISTED = 500;

/** A Chart.js chart: its config is JSON; the page adds what JSON cannot hold (time ticks, tooltips). */
export interface ChartSpec {
  readonly id: string;
  readonly title: string;
  /** The axis whose values are epoch milliseconds, shown as UTC times. */
  readonly time: 'x' | null;
  readonly height: number;
  readonly config: {
    readonly type: 'bar' | 'line';
    readonly data: { readonly labels?: readonly string[]; readonly datasets: readonly object[] };
    readonly options: Record<string, unknown>;
  };
}

type Block =
  | { readonly kind: 'p'; readonly text: string }
  | {
      readonly kind: 'table';
      readonly head: readonly string[];
      readonly rows: readonly (readonly string[])[];
      /** Columns of numbers, right-aligned. */
      readonly numeric?: readonly number[];
    }
  | { readonly kind: 'chart'; readonly spec: ChartSpec };

interface Section {
  readonly id: string;
  readonly title: string;
  readonly blocks: readonly Block[];
}

const STATUS_COLORS: Readonly<Record<string, string>> = {
  succeeded: '#2e7d32',
  running: '#1565c0',
  failed: '#c62828',
  interrupted: '#ef6c00',
  refused: '#9e9e9e',
  stopping: '#6a1b9a',
  rolling_back: '#ad1457',
  rolled_back: '#616161',
  rollback_failed: '#b71c1c',
};
const ROUTE_COLORS: Readonly<Record<string, string>> = {
  legacy: '#90a4ae',
  paused: '#ffb300',
  saas: '#2e7d32',
};
const PALETTE = ['#1565c0', '#2e7d32', '#c62828', '#6a1b9a', '#ef6c00', '#00838f', '#ad1457', '#4e342e'];
const PHASES = ['assess', 'foundation', 'data', 'sync', 'application', 'integration', 'golive', 'rollback'];

const count = (n: number) => n.toLocaleString('en-US');
const time = (iso: string | null) => (iso === null ? '-' : iso.replace('T', ' ').replace(/(\.\d+)?Z$/, ''));
const ms = (iso: string) => Date.parse(iso);
const color = (i: number) => PALETTE[i % PALETTE.length] ?? '#1565c0';

function took(seconds: number | null): string {
  if (seconds === null) return '-';
  if (seconds < 60) return `${Math.round(seconds * 10) / 10} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

function chart(
  id: string,
  title: string,
  config: ChartSpec['config'],
  options: { time?: boolean; rows?: number } = {},
): Block {
  return {
    kind: 'chart',
    spec: {
      id,
      title,
      time: options.time === true ? 'x' : null,
      height: options.rows === undefined ? 280 : Math.min(1600, Math.max(160, 60 + options.rows * 28)),
      config,
    },
  };
}

/** Options every chart shares: no animation (print, screenshots), sized by its box. */
function options(extra: Record<string, unknown>): Record<string, unknown> {
  return { animation: false, responsive: true, maintainAspectRatio: false, ...extra };
}

/** A timeline chart: one row per label, a floating bar per span. */
function timeline(
  labels: readonly string[],
  datasets: readonly {
    label: string;
    color: string;
    spans: { y: string; x: [number, number]; note: string }[];
  }[],
  from: number,
  to: number,
): ChartSpec['config'] {
  return {
    type: 'bar',
    data: {
      labels,
      datasets: datasets
        .filter((d) => d.spans.length > 0)
        .map((d) => ({
          label: d.label,
          data: d.spans,
          backgroundColor: d.color,
          grouped: false,
          borderSkipped: false,
          minBarLength: 3,
        })),
    },
    options: options({
      indexAxis: 'y',
      scales: { x: { type: 'linear', min: from, max: Math.max(to, from + 1000) }, y: { type: 'category' } },
    }),
  };
}

function summary(report: FinalReport): Section {
  const golive = report.golive;
  const blocks: Block[] = [
    {
      kind: 'p',
      text:
        golive === null && report.subject !== null
          ? `${report.subject.phase} run ${report.subject.runId}: ${report.subject.status}, started ${time(report.subject.startedAt)} UTC${report.subject.finishedAt === null ? '' : `, finished ${time(report.subject.finishedAt)} UTC`}${report.subject.error === null ? '' : ` (${report.subject.error.name}: ${report.subject.error.message})`}. The runs and sync passes count up to that run's end; tables, chunks, quarantine and conflicts are as the ledger had them when this report was written (${time(report.generatedAt)} UTC: at the run's end when the run wrote it, later when \`report ${report.subject.runId}\` wrote it again); go-live's sections say "not yet".`
          : golive === null
            ? 'The golive phase has not run yet: this is the migration so far; its sections say "not yet".'
            : `Golive run ${golive.runId}: ${golive.status}, started ${time(golive.startedAt)} UTC${golive.finishedAt === null ? '' : `, finished ${time(golive.finishedAt)} UTC`}${golive.error === null ? '' : ` (${golive.error.name}: ${golive.error.message})`}.`,
    },
    {
      kind: 'p',
      text: `Target database ${report.database}. Generated ${time(report.generatedAt)} UTC by shifu-migrate ${report.version}; runs count up to ${time(report.until)} UTC. All times are UTC.`,
    },
  ];
  const failed = report.runs.filter((r) => r.status !== 'succeeded' && r.status !== 'running');
  const rows = report.tables.filter((t) => t.phase === 'data').reduce((n, t) => n + t.recordsMigrated, 0);
  const differs = report.chunks.reduce((n, c) => n + c.checksum.differs, 0);
  blocks.push({
    kind: 'table',
    head: ['what', 'how many'],
    numeric: [1],
    rows: [
      ['runs (sync passes apart)', count(report.runs.length)],
      ['runs that did not succeed', count(failed.length)],
      ['sync passes', count(report.syncPasses.count)],
      ['rows copied (data)', count(rows)],
      ['chunks whose checksums differ', count(differs)],
      ['rows quarantined', count(report.quarantine.total)],
      ['open tenant conflicts', count(report.conflicts.open)],
      ['tenants switched', count(report.switches.tenants.filter((t) => t.status === 'switched').length)],
      [
        'health checks failed',
        report.health === null ? 'not yet' : count(report.health.filter((h) => !h.passed).length),
      ],
    ],
  });
  return { id: 'summary', title: 'Summary', blocks };
}

function runsSection(report: FinalReport): Section {
  const blocks: Block[] = [];
  const p = report.syncPasses;
  if (report.runs.length > 0 || p.count > 0) {
    const runs = report.runs;
    const starts = [
      ...runs.map((r) => ms(r.startedAt)),
      ...(p.firstStartedAt === null ? [] : [ms(p.firstStartedAt)]),
    ];
    const until = ms(report.until);
    const labels = PHASES.filter(
      (phase) => runs.some((r) => r.phase === phase) || (phase === 'sync' && p.count > 0),
    );
    const statuses = [...new Set(runs.map((r) => r.status))];
    blocks.push(
      chart(
        'timeline',
        'Phase timeline',
        timeline(
          labels,
          [
            ...statuses.map((status) => ({
              label: status,
              color: STATUS_COLORS[status] ?? '#6a1b9a',
              spans: runs
                .filter((r) => r.status === status)
                .map((r) => ({
                  y: r.phase,
                  x: [ms(r.startedAt), r.finishedAt === null ? until : ms(r.finishedAt)] as [number, number],
                  note: r.runId,
                })),
            })),
            // Last: Chart.js draws the first dataset on top, and the passes' band must not hide a failed pass.
            ...(p.firstStartedAt === null
              ? []
              : [
                  {
                    label: 'sync passes (first to last)',
                    color: '#a5d6a7',
                    spans: [
                      {
                        y: 'sync',
                        x: [
                          ms(p.firstStartedAt),
                          p.lastFinishedAt === null ? until : ms(p.lastFinishedAt),
                        ] as [number, number],
                        note: `${count(p.count)} passes`,
                      },
                    ],
                  },
                ]),
          ],
          Math.min(...starts),
          until,
        ),
        { time: true, rows: labels.length },
      ),
    );
  }
  blocks.push({
    kind: 'table',
    head: ['phase', 'run', 'status', 'started', 'finished', 'took', 'error'],
    numeric: [5],
    rows: report.runs.map((r) => [
      r.phase,
      r.runId,
      r.status,
      time(r.startedAt),
      time(r.finishedAt),
      took(r.seconds),
      r.error === null ? '' : `${r.error.name}: ${r.error.message}`,
    ]),
  });
  blocks.push({
    kind: 'p',
    text:
      p.count === 0
        ? 'No sync pass yet.'
        : `Sync: ${count(p.count)} passes from ${time(p.firstStartedAt)} to ${time(p.lastFinishedAt)}, ${count(p.failed)} of them did not succeed (those are listed above; the rest are drawn under Sync lag).`,
  });
  return { id: 'timeline', title: 'Phase timeline', blocks };
}

function tablesSection(report: FinalReport): Section {
  const data = report.tables.filter((t) => t.phase === 'data');
  const blocks: Block[] = [];
  if (data.length > 0)
    blocks.push(
      chart(
        'rows',
        'Rows per table (data phase)',
        {
          type: 'bar',
          data: {
            labels: data.map((t) => t.table),
            datasets: [
              { label: 'rows migrated', data: data.map((t) => t.recordsMigrated), backgroundColor: color(0) },
              {
                label: 'rows in the source',
                data: data.map((t) => t.recordsTotal),
                backgroundColor: '#90a4ae',
              },
            ],
          },
          options: options({ indexAxis: 'y' }),
        },
        { rows: data.length * 1.6 },
      ),
    );
  blocks.push({
    kind: 'table',
    head: [
      'phase',
      'table',
      'status',
      'rows in the source',
      'rows migrated',
      'started',
      'completed',
      'took',
      'rows/s',
    ],
    numeric: [3, 4, 7, 8],
    rows: report.tables.map((t) => [
      t.phase,
      t.table,
      t.status,
      count(t.recordsTotal),
      count(t.recordsMigrated),
      time(t.startedAt),
      time(t.completedAt),
      took(t.seconds),
      t.rowsPerSecond === null ? '-' : count(t.rowsPerSecond),
    ]),
  });
  const series = report.throughput.series;
  if (series.length > 0) {
    const first = series[0]?.points[0]?.at ?? report.until;
    const last = series[0]?.points.at(-1)?.at ?? report.until;
    blocks.push(
      {
        kind: 'p',
        text: `Throughput: rows copied per second, in buckets of ${took(report.throughput.bucketSeconds)}, by the time the ledger last changed each chunk (its copy, then its comparison).`,
      },
      chart(
        'throughput',
        'Throughput (rows/s per table)',
        {
          type: 'line',
          data: {
            datasets: series.map((s, i) => ({
              label: s.table,
              data: s.points.map((p) => ({ x: ms(p.at), y: p.rowsPerSecond })),
              borderColor: color(i),
              backgroundColor: color(i),
              pointRadius: s.points.length > 60 ? 0 : 2,
              borderWidth: 1.5,
            })),
          },
          options: options({
            scales: {
              x: { type: 'linear', min: ms(first), max: ms(last) },
              y: { beginAtZero: true, title: { display: true, text: 'rows/s' } },
            },
          }),
        },
        { time: true },
      ),
      {
        kind: 'table',
        head: ['table', 'rows', 'peak rows/s', 'busiest bucket'],
        numeric: [1, 2],
        rows: series.map((s) => {
          const peak = s.points.reduce<(typeof s.points)[number] | null>(
            (a, b) => (a === null || b.rowsPerSecond > a.rowsPerSecond ? b : a),
            null,
          );
          return [
            s.table,
            count(s.points.reduce((n, p) => n + p.rows, 0)),
            peak === null ? '-' : count(peak.rowsPerSecond),
            peak === null ? '-' : time(peak.at),
          ];
        }),
      },
    );
  }
  return { id: 'tables', title: 'Tables: rows and throughput', blocks };
}

function chunksSection(report: FinalReport): Section {
  const c = report.chunks;
  const blocks: Block[] = [];
  if (c.length === 0)
    blocks.push({ kind: 'p', text: 'No chunk yet: the data phase has not copied anything.' });
  else
    blocks.push(
      chart(
        'chunks',
        'Chunks: checksums and tenant isolation',
        {
          type: 'bar',
          data: {
            labels: c.map((t) => t.table),
            datasets: [
              ['checksum equal', 'checksum', '#2e7d32', c.map((t) => t.checksum.equal)],
              ['checksum differs', 'checksum', '#c62828', c.map((t) => t.checksum.differs)],
              ['not compared', 'checksum', '#bdbdbd', c.map((t) => t.checksum.notCompared)],
              ['isolation checked', 'isolation', '#1565c0', c.map((t) => t.isolated)],
              ['isolation not checked', 'isolation', '#e0e0e0', c.map((t) => t.chunks - t.isolated)],
            ].map(([label, stack, fill, data]) => ({ label, stack, backgroundColor: fill, data })),
          },
          options: options({ indexAxis: 'y', scales: { x: { stacked: true }, y: { stacked: true } } }),
        },
        { rows: c.length * 1.6 },
      ),
      {
        kind: 'table',
        head: [
          'table',
          'data run',
          'chunks',
          'rows',
          'checksum equal',
          'differs',
          'not compared',
          'isolated',
          'by status',
        ],
        numeric: [2, 3, 4, 5, 6, 7],
        rows: c.map((t) => [
          t.table,
          t.runId,
          count(t.chunks),
          count(t.rows),
          count(t.checksum.equal),
          count(t.checksum.differs),
          count(t.checksum.notCompared),
          count(t.isolated),
          Object.entries(t.byStatus)
            .map(([status, n]) => `${status} ${count(n)}`)
            .join(', '),
        ]),
      },
    );
  return { id: 'chunks', title: 'Chunks: checksums and isolation', blocks };
}

function syncSection(report: FinalReport): Section {
  const { passes, tables } = report.sync;
  const blocks: Block[] = [];
  if (passes.length === 0) blocks.push({ kind: 'p', text: 'No sync pass has finished yet.' });
  else {
    blocks.push(
      {
        kind: 'p',
        text: `${count(passes.length)} passes drawn${passes.length < report.syncPasses.count ? ` (the last ones of ${count(report.syncPasses.count)})` : ''}: each pass's largest lag over its tables, forward (legacy to the multi-tenant side) and reverse (switched tenants' writes back to legacy). Largest forward lag ${Math.max(0, ...passes.map((p) => p.lagSeconds ?? 0))} s; at the last pass ${passes.at(-1)?.lagSeconds ?? 'unknown'} s.`,
      },
      chart(
        'lag',
        'Sync lag (s)',
        {
          type: 'line',
          data: {
            datasets: [
              ['lag', '#1565c0', passes.map((p) => ({ x: ms(p.finishedAt), y: p.lagSeconds }))],
              [
                'reverse lag',
                '#ef6c00',
                passes.map((p) => ({ x: ms(p.finishedAt), y: p.reverseLagSeconds })),
              ],
            ].map(([label, stroke, data]) => ({
              label,
              data,
              borderColor: stroke,
              backgroundColor: stroke,
              pointRadius: passes.length > 60 ? 0 : 2,
              borderWidth: 1.5,
              spanGaps: true,
            })),
          },
          options: options({
            scales: {
              x: {
                type: 'linear',
                min: ms(passes[0]?.finishedAt ?? report.until),
                max: ms(passes.at(-1)?.finishedAt ?? report.until) + 1000,
              },
              y: { beginAtZero: true, title: { display: true, text: 'seconds' } },
            },
          }),
        },
        { time: true },
      ),
    );
  }
  if (tables.length > 0)
    blocks.push({
      kind: 'table',
      head: ['table', 'last pass', 'finished', 'lag (s)', 'reverse lag (s)'],
      numeric: [3, 4],
      rows: tables.map((t) => [
        t.table,
        t.runId,
        time(t.finishedAt),
        t.lagSeconds === null ? '-' : String(t.lagSeconds),
        t.reverseLagSeconds === null ? '-' : String(t.reverseLagSeconds),
      ]),
    });
  return { id: 'sync', title: 'Sync lag', blocks };
}

function switchesSection(report: FinalReport): Section {
  const { changes, tenants } = report.switches;
  const blocks: Block[] = [];
  if (changes.length === 0) blocks.push({ kind: 'p', text: 'No tenant has been routed yet.' });
  else {
    const names = [...new Set(changes.map((c) => c.tenant || '(all)'))];
    const until = ms(report.until);
    const spans = changes.map((c, i) => {
      const next = changes.slice(i + 1).find((n) => n.tenant === c.tenant && n.scope === c.scope);
      return {
        route: c.route,
        span: {
          y: c.tenant || '(all)',
          x: [ms(c.at), next === undefined ? until : ms(next.at)] as [number, number],
          note: `${c.runId}: ${c.reason}`,
        },
      };
    });
    const routes = [...new Set(changes.map((c) => c.route))];
    blocks.push(
      chart(
        'switches',
        'Switch waves: each tenant’s route over time',
        timeline(
          names,
          routes.map((route, i) => ({
            label: route,
            color: ROUTE_COLORS[route] ?? color(i),
            spans: spans.filter((s) => s.route === route).map((s) => s.span),
          })),
          Math.min(...changes.map((c) => ms(c.at))),
          until,
        ),
        { time: true, rows: names.length },
      ),
      {
        kind: 'table',
        head: ['when', 'tenant', 'route', 'run', 'why'],
        rows: changes.map((c) => [time(c.at), c.tenant || '(all)', c.route, c.runId, c.reason]),
      },
    );
  }
  if (tenants.length > 0)
    blocks.push({
      kind: 'table',
      head: ['tenant', 'status', 'route now', 'switched', 'by run', 'baked', 'note'],
      rows: tenants.map((t) => [
        t.tenant,
        t.status,
        t.route ?? 'legacy (no route)',
        time(t.switchedAt),
        t.runId ?? '-',
        t.baked ? 'yes' : 'no',
        t.note,
      ]),
    });
  return { id: 'switches', title: 'Switch waves', blocks };
}

function setAsideSection(report: FinalReport): Section {
  const q = report.quarantine;
  const c = report.conflicts;
  const blocks: Block[] = [
    {
      kind: 'p',
      text: `${count(q.total)} rows quarantined (no rule gives them a tenant; kept in migration_quarantine); ${count(c.open)} tenant conflicts open, ${count(c.resolved)} resolved.`,
    },
  ];
  const tables = [...new Set([...q.byReason.map((r) => r.table), ...c.byTable.map((t) => t.table)])].sort();
  if (tables.length > 0)
    blocks.push(
      chart(
        'set-aside',
        'Quarantined rows and open conflicts per table',
        {
          type: 'bar',
          data: {
            labels: tables,
            datasets: [
              {
                label: 'quarantined rows',
                backgroundColor: '#ef6c00',
                data: tables.map((t) =>
                  q.byReason.filter((r) => r.table === t).reduce((n, r) => n + r.rows, 0),
                ),
              },
              {
                label: 'open conflicts',
                backgroundColor: '#c62828',
                data: tables.map((t) => c.byTable.find((b) => b.table === t)?.open ?? 0),
              },
            ],
          },
          options: options({ indexAxis: 'y' }),
        },
        { rows: tables.length * 1.6 },
      ),
    );
  if (q.byReason.length > 0)
    blocks.push({
      kind: 'table',
      head: ['table', 'reason', 'rows'],
      numeric: [2],
      rows: q.byReason.map((r) => [r.table, r.reason, count(r.rows)]),
    });
  if (q.rows.length > 0)
    blocks.push({
      kind: 'table',
      head: ['quarantined row', 'table', 'reason', 'run', 'when'],
      rows: q.rows.map((r) => [r.rowKey, r.table, r.reason, r.runId, time(r.at)]),
    });
  if (c.rows.length > 0)
    blocks.push({
      kind: 'table',
      head: [
        'conflicting row',
        'table',
        'tenant on the target',
        'tenant the rules give now',
        'first seen',
        'last seen',
      ],
      rows: c.rows.map((r) => [
        r.rowKey,
        r.table,
        r.targetTenant,
        r.sourceTenant ?? 'none',
        time(r.firstSeenAt),
        time(r.lastSeenAt),
      ]),
    });
  if (q.total > q.rows.length || c.open > c.rows.length)
    blocks.push({
      kind: 'p',
      text: 'Only the first rows are listed: npx shifu-migrate status lists the rest.',
    });
  return { id: 'set-aside', title: 'Quarantine and conflicts', blocks };
}

function archiveSection(report: FinalReport): Section {
  const a = report.archive;
  if (a === null)
    return {
      id: 'archive',
      title: 'Archive of the legacy tables',
      blocks: [{ kind: 'p', text: 'Not yet: the golive phase archives the legacy tables.' }],
    };
  const blocks: Block[] = [];
  if (a.tables.length === 0) blocks.push({ kind: 'p', text: `No table archived by ${report.runId} yet.` });
  else {
    const largest = Math.max(...a.tables.map((t) => t.bytes));
    const [unit, size] =
      largest >= 1024 ** 3 ? ['GiB', 1024 ** 3] : largest >= 1024 ** 2 ? ['MiB', 1024 ** 2] : ['KiB', 1024];
    blocks.push(
      chart(
        'archive',
        `Archive size per table (${unit}, compressed)`,
        {
          type: 'bar',
          data: {
            labels: a.tables.map((t) => t.table),
            datasets: [
              {
                label: unit,
                backgroundColor: color(3),
                data: a.tables.map((t) => Math.round((t.bytes / size) * 100) / 100),
              },
            ],
          },
          options: options({ indexAxis: 'y', plugins: { legend: { display: false } } }),
        },
        { rows: a.tables.length },
      ),
      {
        kind: 'table',
        head: ['table', 'rows', 'objects', 'size', 'checksum', 'archived', 'manifest'],
        numeric: [1, 2, 3],
        rows: a.tables.map((t) => [
          t.table,
          count(t.rows),
          count(t.objects),
          bytes(t.bytes),
          t.checksum,
          time(t.archivedAt),
          t.manifestKey,
        ]),
      },
    );
  }
  if (a.objects.length > 0)
    blocks.push(
      {
        kind: 'p',
        text: `Objects: ${count(a.objects.length)}${a.objects.length > OBJECTS_LISTED ? ` (the first ${count(OBJECTS_LISTED)} listed; report.json has them all)` : ''}, each with its SHA-256 and the rows' checksum.`,
      },
      {
        kind: 'table',
        head: ['table', 'part', 'status', 'object', 'rows', 'size', 'sha256', 'checksum', 'took'],
        numeric: [1, 4, 5, 8],
        rows: a.objects
          .slice(0, OBJECTS_LISTED)
          .map((o) => [
            o.table,
            String(o.chunkNo),
            o.status,
            o.objectKey ?? '-',
            count(o.rows),
            bytes(o.bytes),
            o.sha256 ?? '-',
            o.checksum ?? '-',
            took(o.seconds),
          ]),
      },
    );
  blocks.push(
    a.restores.length === 0
      ? { kind: 'p', text: 'No restore of the archive checked yet.' }
      : {
          kind: 'table',
          head: ['restored table', 'into', 'verified', 'checked', 'detail'],
          rows: a.restores.map((r) => [
            r.table,
            r.restoredInto,
            r.verified ? 'yes' : 'NO',
            time(r.checkedAt),
            r.detail,
          ]),
        },
  );
  return { id: 'archive', title: 'Archive of the legacy tables', blocks };
}

function healthSection(report: FinalReport): Section {
  const h = report.health;
  const title = 'Health checks';
  if (h === null)
    return { id: 'health', title, blocks: [{ kind: 'p', text: 'Not yet: the golive phase runs them.' }] };
  if (h.length === 0)
    return { id: 'health', title, blocks: [{ kind: 'p', text: `No check recorded by ${report.runId}.` }] };
  const failed = h.filter((c) => !c.passed).length;
  const name = (c: (typeof h)[number]) => (c.tenant === null ? c.name : `${c.name} (${c.tenant})`);
  return {
    id: 'health',
    title,
    blocks: [
      { kind: 'p', text: `${count(h.length - failed)} passed, ${count(failed)} failed.` },
      chart(
        'health',
        'Health checks: duration (ms), red when failed',
        {
          type: 'bar',
          data: {
            labels: h.map(name),
            datasets: [
              {
                label: 'ms',
                data: h.map((c) => c.durationMs),
                backgroundColor: h.map((c) => (c.passed ? '#2e7d32' : '#c62828')),
                minBarLength: 3,
              },
            ],
          },
          options: options({ indexAxis: 'y', plugins: { legend: { display: false } } }),
        },
        { rows: h.length },
      ),
      {
        kind: 'table',
        head: ['check', 'kind', 'tenant', 'passed', 'took', 'checked', 'detail'],
        numeric: [4],
        rows: h.map((c) => [
          c.name,
          c.kind,
          c.tenant ?? '-',
          c.passed ? 'yes' : 'NO',
          `${count(c.durationMs)} ms`,
          time(c.checkedAt),
          c.detail,
        ]),
      },
    ],
  };
}

function sections(report: FinalReport): Section[] {
  return [
    summary(report),
    runsSection(report),
    tablesSection(report),
    chunksSection(report),
    syncSection(report),
    switchesSection(report),
    setAsideSection(report),
    archiveSection(report),
    healthSection(report),
  ];
}

function heading(report: FinalReport): string {
  return `Migration report: ${report.database}${report.subject !== null ? ` (${report.subject.phase} run ${report.subject.runId})` : report.runId === null ? ' (so far)' : ''}`;
}

/** The charts the HTML draws, in page order. */
export function chartSpecs(report: FinalReport): ChartSpec[] {
  return chartsOf(sections(report));
}

const chartsOf = (all: readonly Section[]) =>
  all.flatMap((s) => s.blocks.flatMap((b) => (b.kind === 'chart' ? [b.spec] : [])));

const mdCell = (text: string) => text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

/** The report as Markdown: the same sections and tables as the HTML, without the charts. */
export function renderMarkdown(report: FinalReport): string {
  const lines = [
    `# ${heading(report)}`,
    '',
    'Charts: report.html next to this file (one file, opens offline).',
    '',
  ];
  for (const section of sections(report)) {
    lines.push(`## ${section.title}`, '');
    for (const block of section.blocks) {
      if (block.kind === 'p') lines.push(block.text, '');
      else if (block.kind === 'table') {
        if (block.rows.length === 0) continue;
        lines.push(
          `| ${block.head.map(mdCell).join(' | ')} |`,
          `|${block.head.map((_, i) => (block.numeric?.includes(i) ? '---:' : '---')).join('|')}|`,
          ...block.rows.map((row) => `| ${row.map((c) => mdCell(c) || ' ').join(' | ')} |`),
          '',
        );
      }
    }
  }
  return `${lines.join('\n').trimEnd()}\n`;
}

const html = (text: string) =>
  text.replace(/[&<>"']/g, (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": '#39' }[c]};`);

/** Text inside a `<script>` element: nothing in it may close the element. */
const scriptText = (text: string) => text.replace(/<\/(script)/gi, '<\\/$1');

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#212121;margin:0;background:#fafafa}
header,main,footer{max-width:1200px;margin:0 auto;padding:0 24px}
header{padding-top:24px}h1{font-size:24px;margin:0 0 8px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #e0e0e0;padding-bottom:4px}
nav a{margin-right:12px;color:#1565c0}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #e0e0e0;padding:4px 8px;text-align:left;vertical-align:top;background:#fff}th{background:#f5f5f5}
td.n{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even) td{background:#fcfcfc}
figure{margin:8px 0 16px;background:#fff;border:1px solid #e0e0e0;padding:8px}figcaption{font-weight:600;margin-bottom:4px}
.chart-box{position:relative;width:100%}
footer{color:#757575;font-size:12px;padding:24px}
@media print{nav,.chart-box{break-inside:avoid}}
`;

/** Records errors where a reader (and a test) sees them: on the page and in an attribute of the document. */
const ERRORS_SCRIPT = `(function(){var errors=[];function note(m){errors.push(String(m));document.documentElement.setAttribute('data-errors',JSON.stringify(errors));var p=document.getElementById('chart-errors');if(p){p.hidden=false;p.textContent='Charts failed: '+errors.join('; ');}}
window.addEventListener('error',function(e){note(e.message||'error')});window.addEventListener('unhandledrejection',function(e){note(e.reason)});
var original=console.error;console.error=function(){note(Array.prototype.join.call(arguments,' '));return original.apply(console,arguments)};})();`;

/** Draws every chart from the embedded JSON; marks each figure with the pixels drawn. */
const DRAW_SCRIPT = `(function(){
var specs=JSON.parse(document.getElementById('report-charts').textContent);
function pad(n){return String(n).padStart(2,'0')}
// Tick steps of round times: 1 s to 1 week.
var STEPS=[1,2,5,10,15,30,60,120,300,600,900,1800,3600,7200,10800,21600,43200,86400,172800,604800].map(function(s){return s*1000});
function when(v,span){var d=new Date(v);var hm=pad(d.getUTCHours())+':'+pad(d.getUTCMinutes());
if(span<600000)return hm+':'+pad(d.getUTCSeconds());if(span<86400000)return hm;return d.getUTCFullYear()+'-'+pad(d.getUTCMonth()+1)+'-'+pad(d.getUTCDate())+' '+hm}
function ink(canvas){var data=canvas.getContext('2d').getImageData(0,0,canvas.width,canvas.height).data;var n=0;for(var i=3;i<data.length;i+=4)if(data[i]!==0)n++;return n}
var drawn=0;
specs.forEach(function(spec){
var figure=document.querySelector('[data-chart="'+spec.id+'"]');var box=figure.querySelector('.chart-box');
box.style.height=spec.height+'px';var canvas=document.createElement('canvas');canvas.setAttribute('role','img');canvas.setAttribute('aria-label',spec.title);box.appendChild(canvas);
var config=spec.config;var plugins=config.options.plugins=config.options.plugins||{};
if(spec.time){var axis=config.options.scales[spec.time];var span=axis.max-axis.min;var step=STEPS.find(function(t){return span/t<=10})||span/10;axis.ticks={callback:function(v){return when(v,span)},stepSize:step,maxRotation:0,autoSkip:true};axis.title={display:true,text:'UTC'};
plugins.tooltip={callbacks:{title:function(items){var x=items[0]&&items[0].raw&&items[0].raw.x;return Array.isArray(x)?items[0].raw.y:when(x,0)},
label:function(item){var r=item.raw;return Array.isArray(r.x)?item.dataset.label+': '+when(r.x[0],0)+' to '+when(r.x[1],0)+' ('+r.note+')':item.dataset.label+': '+item.formattedValue}}}}
new Chart(canvas,config);var n=ink(canvas);figure.setAttribute('data-drawn',String(n));if(n>0)drawn++;});
document.documentElement.setAttribute('data-charts-drawn',String(drawn));})();`;

/**
 * The report as one HTML file that opens offline: no external `src` or `href`; Chart.js inlined; the charts' data
 * embedded as JSON; every figure also in a table, readable without JavaScript.
 */
export function renderHtml(report: FinalReport): string {
  const all = sections(report);
  const body: string[] = [];
  for (const section of all) {
    body.push(`<section id="${html(section.id)}"><h2>${html(section.title)}</h2>`);
    for (const block of section.blocks) {
      if (block.kind === 'p') body.push(`<p>${html(block.text)}</p>`);
      else if (block.kind === 'chart')
        body.push(
          `<figure data-chart="${html(block.spec.id)}"><figcaption>${html(block.spec.title)}</figcaption><div class="chart-box"></div></figure>`,
        );
      else if (block.rows.length > 0)
        body.push(
          `<table><thead><tr>${block.head.map((h) => `<th>${html(h)}</th>`).join('')}</tr></thead><tbody>`,
          ...block.rows.map(
            (row) =>
              `<tr>${row.map((c, i) => `<td${block.numeric?.includes(i) ? ' class="n"' : ''}>${html(c)}</td>`).join('')}</tr>`,
          ),
          '</tbody></table>',
        );
    }
    body.push('</section>');
  }
  const title = heading(report);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="shifu-migrate ${html(report.version)}">
<title>${html(title)}</title>
<style>${STYLE}</style>
<script>${ERRORS_SCRIPT}</script>
</head>
<body>
<header>
<h1>${html(title)}</h1>
<nav>${all.map((s) => `<a href="#${html(s.id)}">${html(s.title)}</a>`).join('')}</nav>
<noscript><p>The charts need JavaScript; every figure is also in the tables.</p></noscript>
<p id="chart-errors" hidden></p>
</header>
<main>
${body.join('\n')}
</main>
<footer>shifu-migrate ${html(report.version)}; charts by Chart.js ${CHART_JS_VERSION} (MIT licence), inlined. The same report: <a href="report.json">report.json</a>, <a href="report.md">report.md</a>.</footer>
<script type="application/json" id="report-charts">${JSON.stringify(chartsOf(all)).replace(/</g, '\\u003c')}</script>
<script>${scriptText(CHART_JS_SOURCE)}</script>
<script>${DRAW_SCRIPT}</script>
</body>
</html>
`;
}

/** Where {@link writeFinalReport} put the three files. */
export interface FinalReportKeys {
  readonly json: string;
  readonly md: string;
  readonly html: string;
}

/**
 * Writes report.json, report.md and report.html to `reports/final/<golive run, or so-far>/` and the same three to
 * `reports/final/latest/`, which every phase's own report links to.
 */
export async function writeFinalReport(
  archive: ArchiveStore,
  report: FinalReport,
  /** Whether this is the latest migration's report (`reports/final/latest/` too); an older run's is not. */
  options: { latest: boolean } = { latest: true },
): Promise<{ keys: FinalReportKeys; latest: FinalReportKeys | null }> {
  const files = [
    ['json', `${JSON.stringify(report, null, 2)}\n`, 'application/json'],
    ['md', renderMarkdown(report), 'text/markdown; charset=utf-8'],
    ['html', renderHtml(report), 'text/html; charset=utf-8'],
  ] as const;
  const at = (folder: string): FinalReportKeys => ({
    json: `${FINAL_REPORT_PREFIX}/${folder}/report.json`,
    md: `${FINAL_REPORT_PREFIX}/${folder}/report.md`,
    html: `${FINAL_REPORT_PREFIX}/${folder}/report.html`,
  });
  const keys =
    report.subject !== null
      ? {
          json: `${RUN_REPORT_PREFIX}/${report.subject.runId}/report.json`,
          md: `${RUN_REPORT_PREFIX}/${report.subject.runId}/report.md`,
          html: `${RUN_REPORT_PREFIX}/${report.subject.runId}/report.html`,
        }
      : at(report.runId ?? 'so-far');
  const latest = options.latest ? at('latest') : null;
  for (const where of latest === null ? [keys] : [keys, latest])
    for (const [kind, body, contentType] of files) await archive.put(where[kind], body, { contentType });
  return { keys, latest };
}
