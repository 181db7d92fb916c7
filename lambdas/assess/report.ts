import type { AssessReport, Problem } from './schema.ts';

const n = (x: number) => x.toLocaleString('en-US');

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function problemLine(p: Problem): string {
  return `- **${p.severity}** \`${p.code}\`${p.table ? ` (${p.table})` : ''}: ${cell(p.message)}`;
}

/** The assessment as a Markdown document for people: verdict first, then problems, then tables. */
export function renderMarkdown(report: AssessReport): string {
  const lines: string[] = [];
  lines.push(`# Migration assessment ${report.runId}`, '');
  lines.push(
    report.ready
      ? `**Ready**: nothing blocks the migration. ${report.totals.warnings} warnings.`
      : `**Blocked**: ${report.totals.blocking} problems must be fixed first (listed below). ${report.totals.warnings} warnings.`,
    '',
  );
  lines.push(`Generated ${report.generatedAt}.`, '');
  lines.push(
    "The migration's report: [../../final/latest/report.html](../../final/latest/report.html); `shifu-migrate report` writes it.",
    '',
  );
  lines.push('| | database | server |', '|---|---|---|');
  lines.push(`| source | ${report.source.database} | ${report.source.flavor} ${report.source.server} |`);
  lines.push(
    `| target | ${report.target.database}${report.target.exists ? '' : ' (not created yet)'} | ${report.target.flavor ?? '?'} ${report.target.server ?? 'unreachable'} |`,
    '',
  );
  lines.push(
    `${report.totals.tables} tables, ${n(report.totals.rows)} rows, ${mb(report.totals.bytes)} of data and indexes.`,
    '',
  );
  if (report.problems.length > 0) {
    lines.push('## Problems', '', ...report.problems.map(problemLine), '');
  }
  lines.push('## Tables', '');
  lines.push(
    '| table | mode | rows | tenants | unmapped | orphans (empty / dangling) | chunk key | complexity |',
  );
  lines.push('|---|---|---:|---|---:|---|---|---|');
  for (const t of report.tables) {
    const tenants = Object.entries(t.tenants)
      .sort((a, b) => b[1] - a[1])
      .map(([bid, c]) => `${bid} ${n(c)}`)
      .join(', ');
    lines.push(
      `| ${t.table} | ${t.mode} | ${n(t.rows)} | ${cell(tenants) || '-'} | ${n(t.unmapped)} | ${n(t.orphans.emptyReference)} / ${n(t.orphans.missingReference)} | ${t.chunkKey?.join(', ') ?? '**none**'} | ${t.complexity.level} (${t.complexity.score}) |`,
    );
  }
  lines.push('', '## Complexity factors', '');
  for (const t of report.tables) {
    if (t.complexity.factors.length === 0) continue;
    lines.push(
      `- **${t.table}**: ${t.complexity.factors.map((f) => `${cell(f.factor)} (+${f.points})`).join('; ')}`,
    );
  }
  lines.push('');
  return lines.join('\n');
}
