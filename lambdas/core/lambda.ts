import type { z } from 'zod';
import { lambdaDeps } from './deps.ts';
import { observed } from './observability.ts';
import { type TaskDefinition, taskHandler } from './task.ts';

/**
 * A task as a Lambda entry point: its dependencies for the config version the event names (once per container
 * and version), with Powertools' logs, metrics and traces around it.
 */
export function lambdaHandler<S extends z.ZodType, O>(task: TaskDefinition<S, O>) {
  return observed(task.name, taskHandler(task, lambdaDeps));
}
