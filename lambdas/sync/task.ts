import { SyncInput } from './schema.ts';
import { runSync } from './sync.ts';

/** The sync phase's tasks: one input schema (a union on `step`) and one dispatch; one function per step group. */
export const task = { name: 'sync', input: SyncInput, run: runSync };
