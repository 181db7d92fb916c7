import type { TaskDeps } from '../core/task.ts';
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
      return startData(deps);
    case 'plan-chunks':
      return { chunks: await planChunks(deps, input.runId, input.table) };
    case 'copy-chunk':
      return copyChunk(deps, input.runId, input.table, input.mode, input.chunk);
    case 'build-indexes':
      return { table: input.table, built: await rebuildIndexes(deps, input.runId, input.table) };
    case 'validate-table':
      return validateTable(deps, input.runId, input.table, input.mode);
    case 'verify-isolation':
      return verifyIsolation(deps, input.runId);
    case 'finish':
      return finishData(deps, input.runId);
    case 'rollback':
      if (input.runId === undefined || input.runId === null) return { rollbackRunId: null, undone: 0 };
      return rollbackData(deps, { runId: input.runId, error: input.error });
    case 'rollback-phase':
      return rollbackData(deps, { phase: 'data' });
  }
}
