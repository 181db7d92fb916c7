import { assertRunOwner, giveLockBack } from '../core/ledger/phase-run.ts';
import type { TaskDeps } from '../core/task.ts';
import { explainCopyFailure } from '../data/explain.ts';
import { catchUp } from './catchup.ts';
import { endSync, finishSync } from './finish.ts';
import { planReconcile, reconcileChunk } from './reconcile.ts';
import type { SyncInput } from './schema.ts';
import { startSync } from './start.ts';

export async function runSync(input: SyncInput, deps: TaskDeps): Promise<unknown> {
  switch (input.step) {
    case 'start':
      return startSync(deps, input.execution, input.options);
    case 'catch-up':
      return catchUp(deps, input.runId, input.execution, input.table, input.mode);
    case 'plan-chunks':
      return planReconcile(deps, input.runId, input.execution, input.table);
    case 'reconcile-chunk':
      return reconcileChunk(deps, input.runId, input.execution, input.table, input.mode, input.chunk);
    case 'finish': {
      await assertRunOwner(deps.target, input.runId, input.execution);
      const summary = await finishSync(deps, input.runId);
      await giveLockBack(deps.target, input.runId, input.execution);
      return summary;
    }
    case 'explain-copy-failure':
      return explainCopyFailure(deps, input, 'sync');
    case 'interrupt':
      return endSync(deps, input.runId, input.execution, input.error, 'interrupted');
    case 'fail':
      return endSync(deps, input.runId, input.execution, input.error, 'failed');
  }
}
