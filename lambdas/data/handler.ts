import { lambdaHandler } from '../core/lambda.ts';
import { FUNCTIONS } from '../registry.ts';
import { task } from './task.ts';

// The Lambda entry points of the data functions, one export per function (its registry entry's `handler`).
export const start = lambdaHandler(task, FUNCTIONS.DataStartFunctionArn);
export const planChunks = lambdaHandler(task, FUNCTIONS.DataPlanChunksFunctionArn);
export const copyChunk = lambdaHandler(task, FUNCTIONS.DataCopyChunkFunctionArn);
export const validate = lambdaHandler(task, FUNCTIONS.DataValidateFunctionArn);
export const explainCopyFailure = lambdaHandler(task, FUNCTIONS.DataExplainCopyFailureFunctionArn);
export const buildIndexes = lambdaHandler(task, FUNCTIONS.DataBuildIndexesFunctionArn);
export const verifyIsolation = lambdaHandler(task, FUNCTIONS.DataVerifyIsolationFunctionArn);
export const finish = lambdaHandler(task, FUNCTIONS.DataFinishFunctionArn);
export const rollback = lambdaHandler(task, FUNCTIONS.DataRollbackFunctionArn);
