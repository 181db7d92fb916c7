import { lambdaHandler } from '../core/lambda.ts';
import { FUNCTIONS } from '../registry.ts';
import { task } from './task.ts';

// The Lambda entry points of the application functions, one export per function (its registry entry's `handler`).
export const start = lambdaHandler(task, FUNCTIONS.ApplicationStartFunctionArn);
export const gate = lambdaHandler(task, FUNCTIONS.ApplicationGateFunctionArn);
export const switchTraffic = lambdaHandler(task, FUNCTIONS.ApplicationSwitchFunctionArn);
