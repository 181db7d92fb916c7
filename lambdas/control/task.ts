import type { TaskDeps } from '../core/task.ts';
import { runControl } from './control.ts';
import type { PhaseExecutions } from './executions.ts';
import { ControlInput } from './schema.ts';

/** The rollback's first steps, given how to reach the phases' executions (none locally: the ledger alone stops a run). */
export function controlTask(executions: () => PhaseExecutions | undefined) {
  return {
    name: 'control',
    input: ControlInput,
    run: (input: ControlInput, deps: TaskDeps) => runControl(input, deps, executions()),
  };
}

/** The local runtime's: no Step Functions executions to stop. */
export const task = controlTask(() => undefined);
