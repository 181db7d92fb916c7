import { type TaskDeps, taskHandler } from '../core/task.ts';
import { runFoundation } from './foundation.ts';
import { FoundationInput } from './schema.ts';

/** The foundation task: its input schema and its logic, the same on Lambda and locally. */
export const task = { name: 'foundation', input: FoundationInput, run: runFoundation };

/** The handler with dependencies given, for the local runtime (the Lambda entry point is in handler.ts). */
export const createHandler = (deps: () => Promise<TaskDeps>) => taskHandler(task, () => deps());
