import { assertRunning } from '../core/ledger/runs.ts';
import type { TaskDeps } from '../core/task.ts';
import { lookupColumns } from './context.ts';
import { copyChunk } from './copy.ts';
import { finishData, rollbackData } from './finish.ts';
import { rebuildIndexes } from './indexes.ts';
import { verifyIsolation } from './isolation.ts';
import { planChunks, startData } from './plan.ts';
import type { DataInput } from './schema.ts';
import { validateTable } from './validate.ts';

export async function runData(input: DataInput, deps: TaskDeps): Promise<unknown> {
  switch (input.step) {
    case 'start':
      return startData(deps, input.execution ?? null);
    case 'plan-chunks':
      await assertRunning(deps.target, input.runId);
      return { chunks: await planChunks(deps, input.runId, input.table) };
    case 'copy-chunk':
      return copyChunk(deps, input.runId, input.table, input.mode, input.chunk);
    case 'build-indexes':
      await assertRunning(deps.target, input.runId);
      return {
        table: input.table,
        built: await rebuildIndexes(
          deps,
          input.runId,
          input.table,
          input.for === 'lookups' ? lookupColumns(deps.config, input.table) : undefined,
        ),
      };
    case 'validate-table':
      await assertRunning(deps.target, input.runId);
      return validateTable(deps, input.runId, input.table, input.mode);
    case 'verify-isolation':
      await assertRunning(deps.target, input.runId);
      return verifyIsolation(deps, input.runId, input.table);
    case 'finish':
      await assertRunning(deps.target, input.runId);
      return finishData(deps, input.runId);
    case 'rollback':
      if (input.runId === undefined || input.runId === null) return { rollbackRunId: null, undone: 0 };
      return rollbackData(deps, { runId: input.runId, error: input.error });
    case 'rollback-phase':
      return rollbackData(deps, { phase: 'data' });
  }
}
