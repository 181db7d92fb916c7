import { describe, expect, it } from 'vitest';
import type { ArchiveStore } from '../../lambdas/core/archive/port.ts';
import { type FinalReport, isoUtc } from '../../lambdas/golive/report.ts';
import {
  chartSpecs,
  renderHtml,
  renderMarkdown,
  writeFinalReport,
} from '../../lambdas/golive/report-render.ts';
import { CHART_JS_SOURCE, CHART_JS_VERSION } from '../../lambdas/golive/vendor/chart-js.generated.ts';
import { parseCommandLine } from '../../local/cli/commands.ts';
import packageJson from '../../package.json' with { type: 'json' };

const HOSTILE = 'a </script><script>alert(1)</script> | <b>bold</b>';

/** The migration before go-live: one data run, a sync pass, a quarantined row whose reason holds markup. */
function soFar(): FinalReport {
  return {
    version: '9.9.9',
    generatedAt: '2025-03-01T10:00:00.000Z',
    database: 'shifu_saas',
    runId: null,
    golive: null,
    subject: null,
    until: '2025-03-01T10:00:00.000Z',
    runs: [
      {
        runId: 'data-1',
        phase: 'data',
        status: 'succeeded',
        startedAt: '2025-03-01T08:00:00.000Z',
        finishedAt: '2025-03-01T08:10:00.000Z',
        seconds: 600,
        error: null,
        parentRunId: null,
      },
    ],
    syncPasses: {
      count: 1,
      failed: 0,
      firstStartedAt: '2025-03-01T08:20:00.000Z',
      lastFinishedAt: '2025-03-01T08:20:30.000Z',
    },
    tables: [
      {
        phase: 'data',
        table: 'user_users',
        status: 'completed',
        recordsTotal: 1000,
        recordsMigrated: 1000,
        startedAt: '2025-03-01T08:00:00.000Z',
        completedAt: '2025-03-01T08:10:00.000Z',
        seconds: 600,
        rowsPerSecond: 2,
      },
    ],
    throughput: {
      bucketSeconds: 60,
      series: [
        {
          table: 'user_users',
          points: [
            { at: '2025-03-01T08:00:00.000Z', rows: 600, rowsPerSecond: 10 },
            { at: '2025-03-01T08:01:00.000Z', rows: 400, rowsPerSecond: 6.7 },
          ],
        },
      ],
    },
    chunks: [
      {
        table: 'user_users',
        runId: 'data-1',
        chunks: 2,
        rows: 1000,
        byStatus: { validated: 2 },
        checksum: { equal: 2, differs: 0, notCompared: 0 },
        isolated: 2,
      },
    ],
    sync: {
      passes: [
        {
          runId: 'sync-1',
          finishedAt: '2025-03-01T08:20:30.000Z',
          lagSeconds: 4,
          reverseLagSeconds: null,
          rowsApplied: 3,
          reverseApplied: 0,
          conflicts: 0,
        },
      ],
      tables: [],
    },
    switches: { changes: [], tenants: [] },
    quarantine: {
      total: 1,
      byReason: [{ table: 'user_users', reason: HOSTILE, rows: 1 }],
      rows: [
        {
          table: 'user_users',
          rowKey: '["u-1"]',
          reason: HOSTILE,
          runId: 'data-1',
          at: '2025-03-01T08:05:00.000Z',
        },
      ],
    },
    conflicts: { open: 0, resolved: 0, byTable: [], rows: [] },
    archive: null,
    health: null,
  };
}

describe('the final report as Markdown and HTML', () => {
  it('says "not yet" for the go-live sections before go-live, and escapes table cells', () => {
    const markdown = renderMarkdown(soFar());
    expect(markdown.startsWith('# Migration report: shifu_saas (so far)\n')).toBe(true);
    expect(markdown).toContain('The golive phase has not run yet');
    expect(markdown).toMatch(/## Archive of the legacy tables\n\nNot yet: the golive phase archives/);
    expect(markdown).toMatch(/## Health checks\n\nNot yet: the golive phase runs them/);
    expect(markdown).toContain('| user_users | a </script><script>alert(1)</script> \\| <b>bold</b> | 1 |');
    expect(markdown).toContain(
      '| data | data-1 | succeeded | 2025-03-01 08:00:00 | 2025-03-01 08:10:00 | 10 min 0 s |',
    );
  });

  it('draws only the charts it has figures for', () => {
    expect(chartSpecs(soFar()).map((c) => c.id)).toEqual([
      'timeline',
      'rows',
      'throughput',
      'chunks',
      'lag',
      'set-aside',
    ]);
    expect(chartSpecs(soFar()).every((c) => c.config.options.animation === false)).toBe(true);
  });

  it('makes one self-contained file: the library inlined, no external reference, data that cannot close its script', () => {
    const html = renderHtml(soFar());
    expect(html).not.toMatch(/\s(?:src|href)\s*=\s*["']?(?:https?:)?\/\//i);
    expect(html).toContain(CHART_JS_SOURCE.slice(0, 2000));
    // Four scripts (errors, chart data, Chart.js, drawing): nothing inside them closes one early.
    expect(html.match(/<script\b/g)).toHaveLength(4);
    expect(html.match(/<\/script/gi)).toHaveLength(4);
    expect(html).toContain(
      'a &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; | &lt;b&gt;bold&lt;/b&gt;',
    );
    const json =
      /<script type="application\/json" id="report-charts">([\s\S]*?)<\/script>/.exec(html)?.[1] ?? '';
    expect(JSON.parse(json)).toEqual(JSON.parse(JSON.stringify(chartSpecs(soFar()))));
    // Each chart has its figure, drawn into by the page's script.
    for (const spec of chartSpecs(soFar())) expect(html).toContain(`<figure data-chart="${spec.id}">`);
  });

  it('writes the three files for the run and again as the latest', async () => {
    const puts: { key: string; contentType: string | undefined; bytes: number }[] = [];
    const archive: ArchiveStore = {
      location: '/archive',
      put: async (key, body, options) => {
        puts.push({ key, contentType: options?.contentType, bytes: String(body).length });
      },
      get: async () => undefined,
      list: async () => [],
      address: (key) => ({ bucket: 'LocalArchive', key }),
      keyAt: (address) => address.key,
    };
    const written = await writeFinalReport(archive, { ...soFar(), runId: 'golive-20250301T090000Z-abc123' });
    expect(written.keys.html).toBe('reports/final/golive-20250301T090000Z-abc123/report.html');
    expect(puts.map((p) => [p.key, p.contentType])).toEqual([
      ['reports/final/golive-20250301T090000Z-abc123/report.json', 'application/json'],
      ['reports/final/golive-20250301T090000Z-abc123/report.md', 'text/markdown; charset=utf-8'],
      ['reports/final/golive-20250301T090000Z-abc123/report.html', 'text/html; charset=utf-8'],
      ['reports/final/latest/report.json', 'application/json'],
      ['reports/final/latest/report.md', 'text/markdown; charset=utf-8'],
      ['reports/final/latest/report.html', 'text/html; charset=utf-8'],
    ]);
  });
});

describe('the report’s pieces', () => {
  it('reads ledger times as ISO-8601 UTC', () => {
    expect(isoUtc('2025-03-01 08:00:00.123')).toBe('2025-03-01T08:00:00.123Z');
    expect(isoUtc('2025-03-01 08:00:00')).toBe('2025-03-01T08:00:00.000Z');
    expect(isoUtc('2025-03-01 08:00:00.123456')).toBe('2025-03-01T08:00:00.123Z');
    expect(isoUtc('not a time')).toBe('not a time');
  });

  it('inlines the Chart.js the package pins, without its source map comment', () => {
    expect(packageJson.dependencies['chart.js']).toBe(CHART_JS_VERSION);
    expect(CHART_JS_SOURCE.startsWith(`/*!\n * Chart.js v${CHART_JS_VERSION}\n`)).toBe(true);
    expect(CHART_JS_SOURCE).not.toContain('sourceMappingURL');
  });

  it('parses report --run and --open, and refuses them on other commands', () => {
    const io = { stdout: () => {}, stderr: () => {} };
    expect(parseCommandLine(['report', '--run', 'golive-1', '--open', '--json'], io)).toMatchObject({
      positionals: ['report'],
      values: { run: 'golive-1', open: true, json: true },
    });
    expect(parseCommandLine(['report'], io)).toMatchObject({
      positionals: ['report'],
      values: { open: false },
    });
    expect(() => parseCommandLine(['status', '--open'], io)).toThrow(/unknown option '--open'/);
  });
});
