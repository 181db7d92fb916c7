import { lambdaHandler } from '../core/lambda.ts';
import { FUNCTIONS } from '../registry.ts';
import { task } from './task.ts';

// The Lambda entry points of the assess functions, one export per function (its registry entry's `handler`).
export const plan = lambdaHandler(task, FUNCTIONS.AssessPlanFunctionArn);
export const table = lambdaHandler(task, FUNCTIONS.AssessTableFunctionArn);
export const report = lambdaHandler(task, FUNCTIONS.AssessReportFunctionArn);
