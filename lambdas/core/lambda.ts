import type { z } from 'zod';
import type { FunctionSpec } from '../registry.ts';
import { lambdaDeps } from './deps.ts';
import { observed } from './observability.ts';
import { forFunction, type TaskDefinition, taskHandler } from './task.ts';

/**
 * One function of the registry as a Lambda entry point: its module's task, limited to the function's steps, with
 * dependencies for the config version the event names (once per container and version) and Powertools' logs,
 * metrics and traces around it.
 */
export function lambdaHandler<S extends z.ZodType, O>(task: TaskDefinition<S, O>, spec: FunctionSpec) {
  return observed(spec.name, taskHandler(forFunction(task, spec), lambdaDeps));
}
