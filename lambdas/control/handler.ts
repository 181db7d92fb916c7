import { SFNClient } from '@aws-sdk/client-sfn';
import { lambdaDeps } from '../core/deps.ts';
import { type TaskDeps, taskHandler } from '../core/task.ts';
import { runControl } from './control.ts';
import { type PhaseExecutions, sfnExecutions, stateMachineArns } from './executions.ts';
import { ControlInput } from './schema.ts';

let executions: PhaseExecutions | undefined;

/** The Lambda entry point: the ledger through the Data API, and Step Functions for the phase executions. */
export const handler = taskHandler(
  {
    name: 'control',
    input: ControlInput,
    run: (input, deps) => {
      executions ??= sfnExecutions(
        new SFNClient({}),
        stateMachineArns(process.env.SHIFU_MIGRATE_STATE_MACHINES),
      );
      return runControl(input, deps, executions);
    },
  },
  lambdaDeps,
);

/** Locally the ledger alone stops a run: there are no Step Functions executions to stop. */
export const createHandler = (deps: () => Promise<TaskDeps>) =>
  taskHandler(
    { name: 'control', input: ControlInput, run: (input, d) => runControl(input, d, undefined) },
    deps,
  );
