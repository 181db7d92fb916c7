import { lambdaDeps } from '../core/deps.ts';
import { type TaskDeps, taskHandler } from '../core/task.ts';
import { runFoundation } from './foundation.ts';
import { FoundationInput } from './schema.ts';

const task = { name: 'foundation', input: FoundationInput, run: runFoundation };

/** The Lambda entry point: dependencies for the config version the event names, once per container and version. */
export const handler = taskHandler(task, lambdaDeps);

/** The same handler with dependencies given, for the local runtime. */
export const createHandler = (deps: () => Promise<TaskDeps>) => taskHandler(task, () => deps());
