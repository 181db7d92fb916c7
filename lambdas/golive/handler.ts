import { lambdaHandler } from '../core/lambda.ts';
import { FUNCTIONS } from '../registry.ts';
import { task } from './task.ts';

// The Lambda entry points of the golive functions, one export per function (its registry entry's `handler`).
export const start = lambdaHandler(task, FUNCTIONS.GoLiveStartFunctionArn);
export const check = lambdaHandler(task, FUNCTIONS.GoLiveCheckFunctionArn);
export const archive = lambdaHandler(task, FUNCTIONS.GoLiveArchiveFunctionArn);
export const report = lambdaHandler(task, FUNCTIONS.GoLiveReportFunctionArn);
