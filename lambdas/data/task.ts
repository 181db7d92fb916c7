import { type TaskDeps, taskHandler } from '../core/task.ts';
import { runData } from './data.ts';
import { DataInput } from './schema.ts';

/** The data task: its input schema and its logic, the same on Lambda and locally. */
export const task = { name: 'data', input: DataInput, run: runData };

/** The handler with dependencies given, for the local runtime (the Lambda entry point is in handler.ts). */
export const createHandler = (deps: () => Promise<TaskDeps>) => taskHandler(task, () => deps());
