import type { TaskDeps } from '../core/task.ts';
import { gatherFinalReport } from './report.ts';
import { writeFinalReport } from './report-render.ts';

/**
 * The final report of a go-live run, written to the archive store (JSON, Markdown, one HTML file). It runs before
 * the run's own end, so the report shows the run still running: the ledger has the rest.
 */
export async function writeGoLiveReport(deps: TaskDeps, runId: string): Promise<{ html: string }> {
  const report = await gatherFinalReport(deps.target, { runId });
  const { keys } = await writeFinalReport(deps.archive, report);
  return { html: keys.html };
}
