import { SFNClient } from '@aws-sdk/client-sfn';
import { lambdaHandler } from '../core/lambda.ts';
import { traced } from '../core/observability.ts';
import { type PhaseExecutions, sfnExecutions, stateMachineArns } from './executions.ts';
import { controlTask } from './task.ts';

let executions: PhaseExecutions | undefined;

/** The Lambda entry point: the ledger through the Data API, and Step Functions for the phase executions. */
export const handler = lambdaHandler(
  controlTask(() => {
    executions ??= sfnExecutions(
      traced(new SFNClient({})),
      stateMachineArns(process.env.SHIFU_MIGRATE_STATE_MACHINES),
    );
    return executions;
  }),
);
