import { type TaskDeps, taskHandler } from '../core/task.ts';
import { runAssess } from './assess.ts';
import { AssessInput } from './schema.ts';

/** The assess task: its input schema and its logic, the same on Lambda and locally. */
export const task = { name: 'assess', input: AssessInput, run: runAssess };

/** The handler with dependencies given, for the local runtime (the Lambda entry point is in handler.ts). */
export const createHandler = (deps: () => Promise<TaskDeps>) => taskHandler(task, () => deps());
