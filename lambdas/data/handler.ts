import { lambdaDeps } from '../core/deps.ts';
import { type TaskDeps, taskHandler } from '../core/task.ts';
import { runData } from './data.ts';
import { DataInput } from './schema.ts';

const task = { name: 'data', input: DataInput, run: runData };

/** The Lambda entry point: dependencies for the config version the event names, once per container and version. */
export const handler = taskHandler(task, lambdaDeps);

/** The same handler with dependencies given, for the local runtime. */
export const createHandler = (deps: () => Promise<TaskDeps>) => taskHandler(task, () => deps());
