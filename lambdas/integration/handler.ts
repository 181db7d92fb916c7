import { lambdaHandler } from '../core/lambda.ts';
import { FUNCTIONS } from '../registry.ts';
import { task } from './task.ts';

// The Lambda entry points of the integration functions, one export per function (its registry entry's `handler`).
export const start = lambdaHandler(task, FUNCTIONS.IntegrationStartFunctionArn);
export const apply = lambdaHandler(task, FUNCTIONS.IntegrationApplyFunctionArn);
export const rollback = lambdaHandler(task, FUNCTIONS.IntegrationRollbackFunctionArn);
