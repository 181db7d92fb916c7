import { lambdaHandler } from '../core/lambda.ts';
import { task } from './task.ts';

/**
 * The Lambda entry point: dependencies for the config version the event names (once per container and version),
 * Powertools' logs, metrics and traces around the task.
 */
export const handler = lambdaHandler(task);
