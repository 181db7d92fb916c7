import { giveLockBack } from '../core/ledger/phase-run.ts';
import { setRunStatus } from '../core/ledger/runs.ts';
import type { TaskDeps } from '../core/task.ts';
import {
  bakeRound,
  finishApplication,
  gateWave,
  pauseForRollback,
  pauseWave,
  routeBack,
  startApplication,
  switchWave,
} from './application.ts';
import type { ApplicationInput } from './schema.ts';

export async function runApplication(input: ApplicationInput, deps: TaskDeps): Promise<unknown> {
  switch (input.step) {
    case 'start':
      return startApplication(deps, input.execution);
    case 'gate':
      return gateWave(deps, input.runId, input.execution, input.wave);
    case 'pause':
      return pauseWave(deps, input.runId, input.execution, input.wave);
    case 'switch':
      return switchWave(deps, input.runId, input.execution, input.wave, input.pausedAt);
    case 'bake':
      return bakeRound(deps, input.runId, input.execution, input.wave, input.round, input.rounds);
    case 'finish':
      return finishApplication(deps, input.runId, input.execution);
    case 'rollback-pause':
      return pauseForRollback(deps, input.execution, {
        ...input.scope,
        ...('runs' in input.scope ? { runs: input.scope.runs, tenant: input.scope.tenant ?? undefined } : {}),
      } as Parameters<typeof pauseForRollback>[2]);
    case 'rollback-route-back':
      return routeBack(
        deps,
        input.execution,
        input.scope as Parameters<typeof routeBack>[2],
        input.runId,
        input.tenants,
        input.pausedAt,
      );
    case 'end': {
      if (input.runId === null) return { runId: null, status: 'failed' };
      const status = input.runId.startsWith('rollback-') ? 'failed' : 'rollback_failed';
      await setRunStatus(deps.target, input.runId, status, {
        from: ['running', 'rolling_back'],
        ...(input.error === undefined
          ? {}
          : { error: { name: input.error.Error, message: input.error.Cause ?? input.error.Error } }),
      });
      await giveLockBack(deps.target, input.runId, input.execution);
      return { runId: input.runId, status };
    }
  }
}
