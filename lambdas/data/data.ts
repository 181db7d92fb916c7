import { assertRunOwner } from '../core/ledger/phase-run.ts';
import type { TaskDeps } from '../core/task.ts';
import { lookupColumns } from './context.ts';
import { copyChunk, validateChunk } from './copy.ts';
import { explainCopyFailure } from './explain.ts';
import { finishData, interruptData } from './finish.ts';
import { rebuildIndexes } from './indexes.ts';
import { verifyIsolation } from './isolation.ts';
import { planChunks, publishPlan, startData } from './plan.ts';
import { rollbackData } from './rollback.ts';
import type { DataInput } from './schema.ts';
import { validateTable } from './validate.ts';

export async function runData(input: DataInput, deps: TaskDeps): Promise<unknown> {
  switch (input.step) {
    case 'start':
      return startData(deps, input.execution);
    case 'plan-chunks':
      await assertRunOwner(deps.target, input.runId, input.execution);
      return publishPlan(deps, input.runId, input.table, await planChunks(deps, input.runId, input.table));
    case 'copy-chunk':
      return copyChunk(deps, input.runId, input.execution, input.table, input.mode, input.chunk);
    case 'validate-chunk':
      return validateChunk(deps, input.runId, input.execution, input.table, input.mode, input.chunk);
    case 'build-indexes':
      await assertRunOwner(deps.target, input.runId, input.execution);
      return {
        table: input.table,
        built: await rebuildIndexes(
          deps,
          input.runId,
          input.table,
          input.for === 'lookups' ? lookupColumns(deps.config, input.table) : undefined,
        ),
      };
    case 'explain-copy-failure':
      return explainCopyFailure(deps, input);
    case 'validate-table':
      await assertRunOwner(deps.target, input.runId, input.execution);
      return validateTable(deps, input.runId, input.execution, input.table, input.mode);
    case 'verify-isolation':
      await assertRunOwner(deps.target, input.runId, input.execution);
      return verifyIsolation(deps, input.runId, input.table);
    case 'finish':
      await assertRunOwner(deps.target, input.runId, input.execution);
      return finishData(deps, input.runId, input.execution);
    case 'interrupt':
      return interruptData(deps, input.runId, input.execution, input.error);
    case 'rollback':
      return rollbackData(deps, {
        kind: 'own',
        runId: input.runId,
        execution: input.execution,
        error: input.error,
        undoneBefore: input.undoneBefore,
        truncatedBefore: input.truncatedBefore,
      });
    case 'rollback-phase':
      return rollbackData(deps, {
        kind: 'phase',
        rollbackRunId: input.rollbackRunId,
        execution: input.execution,
        undoneBefore: input.undoneBefore,
        truncatedBefore: input.truncatedBefore,
      });
  }
}
