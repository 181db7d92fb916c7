import { lambdaHandler } from '../core/lambda.ts';
import { FUNCTIONS } from '../registry.ts';
import { task } from './task.ts';

// The Lambda entry points of the foundation functions, one export per function (its registry entry's `handler`).
export const start = lambdaHandler(task, FUNCTIONS.FoundationStartFunctionArn);
export const create = lambdaHandler(task, FUNCTIONS.FoundationCreateFunctionArn);
export const verify = lambdaHandler(task, FUNCTIONS.FoundationVerifyFunctionArn);
export const rollback = lambdaHandler(task, FUNCTIONS.FoundationRollbackFunctionArn);
