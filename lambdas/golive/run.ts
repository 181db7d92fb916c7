import type { TaskDeps } from '../core/task.ts';
import { explainCopyFailure } from '../data/explain.ts';
import {
  archiveParts,
  checkDrained,
  checkHealth,
  endSync,
  finishGoLive,
  finishGoLiveArchive,
  interruptGoLive,
  planGoLiveArchive,
  planGoLiveTable,
  remainingTenants,
  resumeSync,
  startGoLive,
  verifyGoLive,
} from './golive.ts';
import { writeGoLiveReport } from './report-step.ts';
import type { GoLiveInput } from './schema.ts';

export async function runGoLive(input: GoLiveInput, deps: TaskDeps): Promise<unknown> {
  switch (input.step) {
    case 'remaining':
      return remainingTenants(deps);
    case 'start':
      return startGoLive(deps, input.execution);
    case 'check-drained':
      return checkDrained(deps, input.runId, input.execution);
    case 'verify':
      return verifyGoLive(deps, input.runId, input.execution, input.round);
    case 'health':
      return checkHealth(deps, input.runId, input.execution);
    case 'plan-archive':
      return planGoLiveArchive(deps, input.runId, input.execution);
    case 'plan-table':
      return planGoLiveTable(deps, input.runId, input.execution, input.table);
    case 'explain-copy-failure':
      return explainCopyFailure(deps, input, 'golive');
    case 'interrupt':
      return interruptGoLive(deps, input.runId, input.execution, input.error);
    case 'archive-parts':
      return archiveParts(deps, input.BatchInput.runId, input.BatchInput.execution, input.Items);
    case 'finish-archive':
      return finishGoLiveArchive(deps, input.runId, input.execution);
    case 'end-sync':
      return endSync(deps, input.runId, input.execution);
    case 'report':
      return writeGoLiveReport(deps, input.runId);
    case 'finish':
      return { ...(await finishGoLive(deps, input.runId, input.execution)), schedule: input.schedule };
    case 'resume-sync':
      return resumeSync(deps);
  }
}
