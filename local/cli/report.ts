import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { openArchive } from '../../lambdas/core/archive/open.ts';
import type { ArchiveStore } from '../../lambdas/core/archive/port.ts';
import type { LoadedConfig } from '../../lambdas/core/config/load.ts';
import { openSql } from '../../lambdas/core/sql/open.ts';
import { gatherFinalReport } from '../../lambdas/golive/report.ts';
import { writeFinalReport } from '../../lambdas/golive/report-render.ts';
import { count, type Output } from './output.ts';
import type { PhaseOutcome } from './phases.ts';

export interface ReportCommandOptions {
  /** The golive run to report on. @default the latest golive run, or the migration so far */
  readonly runId?: string;
  /** Open the HTML file in a browser (a folder archive, on a machine with a display). */
  readonly open: boolean;
  /** The environment that says whether there is a display. @default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Opens a file in the desktop's browser. @default xdg-open (open on macOS) */
  readonly opener?: (path: string) => Promise<void>;
}

/** Where an archive key is, for a person: a file path (folder archive) or an `s3://` URL. */
export function archivePath(archive: ArchiveStore, key: string): string {
  return archive.location.startsWith('s3://')
    ? `${archive.location}/${key}`
    : join(archive.location, ...key.split('/'));
}

/** Opens a file with the desktop's own opener, detached: the browser outlives the command. */
function desktopOpen(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.platform === 'darwin' ? 'open' : 'xdg-open', [path], {
      detached: true,
      stdio: 'ignore',
    });
    child.once('error', reject);
    child.once('spawn', () => {
      child.unref();
      resolve();
    });
  });
}

/**
 * `report`: gathers the final report from the ledger (the latest golive run, the one `--run` names, or the
 * migration so far) and writes report.json, report.md and report.html into the archive under
 * `reports/final/<run>/` and `reports/final/latest/`. With `--open`, opens the HTML file when it can.
 * An unknown run id is an InputError (exit 2). `html` is where the HTML file is, for the result line.
 */
export async function runReportCommand(
  loaded: LoadedConfig,
  options: ReportCommandOptions,
  out: Output,
  cwd: string,
): Promise<PhaseOutcome & { readonly html: string | null }> {
  const target = openSql(loaded.targetUrl, { label: 'target' });
  try {
    const report = await gatherFinalReport(
      target,
      options.runId === undefined ? {} : { runId: options.runId },
    );
    if (report.runs.length === 0 && report.syncPasses.count === 0) {
      out.info(
        `Nothing to report: no run in ${loaded.targetUrl.database} yet (run foundation first; assess writes its own report).`,
      );
      return { code: 1, json: { status: 'NO_DATA', runId: null }, html: null };
    }
    const archive = openArchive(loaded.config.archive.url, cwd);
    // An older go-live's report leaves reports/final/latest/ to the latest one's.
    const [newest] = await target.query(
      "SELECT run_id FROM migration_runs WHERE phase = 'golive' ORDER BY started_at DESC LIMIT 1",
    );
    const isLatest =
      report.subject === null &&
      (report.runId === null || newest === undefined || newest.run_id === report.runId);
    const { keys, latest } = await writeFinalReport(archive, report, { latest: isLatest });
    const files = {
      html: archivePath(archive, keys.html),
      md: archivePath(archive, keys.md),
      json: archivePath(archive, keys.json),
    };
    const failed = report.runs.filter((r) => r.status !== 'succeeded' && r.status !== 'running').length;
    out.info(
      `${report.subject !== null ? `Report of ${report.subject.phase} run ${report.subject.runId} (${report.subject.status}), the migration as of its end` : `Final report of ${report.runId === null ? 'the migration so far (no golive run yet)' : `golive run ${report.runId} (${report.golive?.status ?? '?'})`}`}: ${count(report.runs.length)} runs (${count(failed)} did not succeed), ${count(report.syncPasses.count)} sync passes, ${count(report.quarantine.total)} rows quarantined, ${count(report.conflicts.open)} open conflicts.`,
    );
    out.info(`  HTML:     ${files.html}`);
    out.info(`  Markdown: ${files.md}`);
    out.info(`  JSON:     ${files.json}`);
    out.info(
      latest === null
        ? `  Not copied to reports/final/latest/: ${report.subject !== null ? 'the report of one run' : `${report.runId} is not the latest go-live run`}.`
        : `  The same three under ${archivePath(archive, latest.html).replace(/report\.html$/, '')}`,
    );
    const opened = options.open ? await openReport(archive, files.html, options, out) : false;
    return {
      code: 0,
      html: files.html,
      json: {
        status: 'WRITTEN',
        runId: report.subject?.runId ?? report.runId,
        golive: report.golive?.status ?? null,
        files,
        keys,
        latest,
        opened,
      },
    };
  } finally {
    await target.close();
  }
}

async function openReport(
  archive: ArchiveStore,
  path: string,
  options: ReportCommandOptions,
  out: Output,
): Promise<boolean> {
  if (archive.location.startsWith('s3://')) {
    out.info(
      `Cannot open an S3 object here: aws s3 cp ${path} report.html, then open report.html in a browser.`,
    );
    return false;
  }
  const env = options.env ?? process.env;
  const display = process.platform === 'darwin' || Boolean(env.DISPLAY) || Boolean(env.WAYLAND_DISPLAY);
  if (!display) {
    out.info(`Cannot open it: no display here (DISPLAY is not set). Open ${path} in a browser.`);
    return false;
  }
  try {
    await (options.opener ?? desktopOpen)(path);
    out.info(`Opened ${path}.`);
    return true;
  } catch (error) {
    out.info(`Cannot open it (${(error as Error).message}). Open ${path} in a browser.`);
    return false;
  }
}

/**
 * After a local phase run: that run's report (the migration as of its end) next to the others, so every run
 * leaves one a person can open. Returns the line to print; a report that cannot be written does not change the
 * run's outcome, and says so.
 */
export async function leaveRunReport(loaded: LoadedConfig, runId: string, cwd: string): Promise<string> {
  const target = openSql(loaded.targetUrl, { label: 'target' });
  try {
    const report = await gatherFinalReport(target, { runId });
    const archive = openArchive(loaded.config.archive.url, cwd);
    const [newest] =
      report.golive === null
        ? []
        : await target.query(
            "SELECT run_id FROM migration_runs WHERE phase = 'golive' ORDER BY started_at DESC, run_id DESC LIMIT 1",
          );
    const { keys } = await writeFinalReport(archive, report, { latest: newest?.run_id === runId });
    return `Report of ${runId}: ${archivePath(archive, keys.html)} (and report.md, report.json beside it)`;
  } catch (error) {
    return `The report of ${runId} could not be written (${(error as Error).message}); npx shifu-migrate report ${runId} writes it.`;
  } finally {
    await target.close();
  }
}
