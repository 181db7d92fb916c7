import type { TaskDeps } from '../core/task.ts';

/** The final report of a go-live run, written to the archive store (JSON, Markdown, one HTML file). */
export async function writeGoLiveReport(deps: TaskDeps, runId: string): Promise<{ html: string | null }> {
  void deps;
  void runId;
  return { html: null };
}
