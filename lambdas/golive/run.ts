import type { TaskDeps } from '../core/task.ts';
import {
  archiveParts,
  checkDrained,
  checkHealth,
  endSync,
  finishGoLive,
  finishGoLiveArchive,
  planGoLiveArchive,
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
