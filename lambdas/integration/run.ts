import type { TaskDeps } from '../core/task.ts';
import {
  applyIntegration,
  finishIntegration,
  rollbackIntegration,
  rollbackIntegrationPhase,
  startIntegration,
  validateIntegration,
} from './integration.ts';
import type { IntegrationInput } from './schema.ts';

export async function runIntegration(input: IntegrationInput, deps: TaskDeps): Promise<unknown> {
  switch (input.step) {
    case 'start':
      return startIntegration(deps, input.execution);
    case 'apply':
      if (deps.secrets === undefined)
        throw new TypeError('integration apply has no secret check: its function must be granted "secrets"');
      return applyIntegration(deps, input.runId, input.execution, deps.secrets);
    case 'validate':
      return validateIntegration(deps, input.runId, input.execution);
    case 'finish':
      return finishIntegration(deps, input.runId, input.execution);
    case 'rollback':
      return rollbackIntegration(deps, input.runId, input.execution, input.error);
    case 'rollback-phase':
      return rollbackIntegrationPhase(deps, input.rollbackRunId, input.execution);
  }
}
