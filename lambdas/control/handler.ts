import { SFNClient } from '@aws-sdk/client-sfn';
import { lambdaHandler } from '../core/lambda.ts';
import { traced } from '../core/observability.ts';
import { FUNCTIONS } from '../registry.ts';
import { type PhaseExecutions, sfnExecutions, stateMachineArns } from './executions.ts';
import { controlTask } from './task.ts';

let executions: PhaseExecutions | undefined;

/** On Lambda the rollback also stops the phases' executions (Step Functions), not only their runs in the ledger. */
const task = controlTask(() => {
  executions ??= sfnExecutions(
    traced(new SFNClient({})),
    stateMachineArns(process.env.SHIFU_MIGRATE_STATE_MACHINES),
  );
  return executions;
});

// The Lambda entry points of the control functions, one export per function (its registry entry's `handler`).
export const stop = lambdaHandler(task, FUNCTIONS.RollbackStopFunctionArn);
export const inFlight = lambdaHandler(task, FUNCTIONS.RollbackInFlightFunctionArn);
export const lock = lambdaHandler(task, FUNCTIONS.RollbackLockFunctionArn);
