import { lambdaHandler } from '../core/lambda.ts';
import { FUNCTIONS } from '../registry.ts';
import { task } from './task.ts';

// The Lambda entry points of the sync functions, one export per function (its registry entry's `handler`).
export const start = lambdaHandler(task, FUNCTIONS.SyncStartFunctionArn);
export const catchUp = lambdaHandler(task, FUNCTIONS.SyncCatchUpFunctionArn);
export const planChunks = lambdaHandler(task, FUNCTIONS.SyncPlanChunksFunctionArn);
export const reconcileChunk = lambdaHandler(task, FUNCTIONS.SyncReconcileChunkFunctionArn);
export const finish = lambdaHandler(task, FUNCTIONS.SyncFinishFunctionArn);
