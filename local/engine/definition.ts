import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../../lambdas/core/errors.ts';

/** The state machine files: `statemachines/<name>.asl.json`, found from this module, not the working directory. */
export const STATEMACHINES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'statemachines');

/** A definition the local engine would run differently from Step Functions. */
export class InvalidStateMachine extends InputError {
  override name = 'InvalidStateMachine';
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface Retrier {
  readonly ErrorEquals: readonly string[];
  readonly MaxAttempts?: number;
  readonly IntervalSeconds?: number;
  readonly BackoffRate?: number;
  readonly MaxDelaySeconds?: number;
}
export interface Catcher {
  readonly ErrorEquals: readonly string[];
  readonly Next: string;
}

/** What the runtime needs to know about each Task state. */
export interface TaskInfo {
  readonly name: string;
  /** The substitution key of the function it invokes, e.g. `FoundationFunctionArn`. */
  readonly functionKey: string;
  /** Map states around it, innermost first. */
  readonly maps: readonly string[];
  readonly retry: readonly Retrier[];
  readonly catch: readonly Catcher[];
}

export interface LoadedDefinition {
  readonly name: string;
  readonly definition: JsonObject;
  readonly tasks: ReadonlyMap<string, TaskInfo>;
  /** Map states by name, with their Catch (an iteration's failure is the Map's error). */
  readonly maps: ReadonlyMap<
    string,
    { readonly catch: readonly Catcher[]; readonly maps: readonly string[]; readonly itemsPath: string }
  >;
  readonly waits: readonly string[];
  readonly retryable: ReadonlyMap<string, readonly Retrier[]>;
}

const PLACEHOLDER = /\$\{([A-Za-z0-9]+)\}/g;
const JSONATA_FIELDS = ['Assign', 'Arguments', 'Output', 'Items'];
const DISTRIBUTED_FIELDS = [
  'ItemReader',
  'ItemBatcher',
  'ResultWriter',
  'ToleratedFailurePercentage',
  'ToleratedFailurePercentagePath',
  'ToleratedFailureCount',
  'ToleratedFailureCountPath',
  'Label',
];

function asObject(value: unknown): JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as JsonObject) : {};
}

/**
 * Reads `statemachines/<name>.asl.json`, replaces `${Key}` with `substitutions[Key]` (as
 * `definitionSubstitutions` does on AWS), and refuses anything the local engine would run differently.
 */
export function loadDefinition(
  name: string,
  substitutions: Readonly<Record<string, string>>,
  dir = STATEMACHINES_DIR,
): LoadedDefinition {
  const path = join(dir, `${name}.asl.json`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new InvalidStateMachine(`no state machine file ${path}`);
  }
  const functionKeys = new Map<string, string>();
  const unresolved = new Set<string>();
  const substituted = text.replace(PLACEHOLDER, (whole, key: string) => {
    const value = substitutions[key];
    if (value === undefined) {
      unresolved.add(key);
      return whole;
    }
    functionKeys.set(value, key);
    return value;
  });
  const problems: string[] = [...unresolved].map((k) => `\${${k}} has no substitution`);
  const definition = asObject(JSON.parse(substituted));
  const tasks = new Map<string, TaskInfo>();
  const maps = new Map<string, { catch: Catcher[]; maps: string[]; itemsPath: string }>();
  const waits: string[] = [];
  const retryable = new Map<string, Retrier[]>();
  const seen = new Set<string>();

  if (definition.QueryLanguage === 'JSONata')
    problems.push('the machine uses JSONata, which the local engine ignores');
  const walk = (machine: JsonObject, enclosing: string[]): void => {
    for (const [stateName, raw] of Object.entries(asObject(machine.States))) {
      const state = asObject(raw);
      const where = `state "${stateName}"`;
      if (seen.has(stateName))
        problems.push(`${where} appears twice: local Task overrides are keyed by state name`);
      seen.add(stateName);
      if (state.QueryLanguage === 'JSONata') problems.push(`${where} uses JSONata`);
      // Step Functions replaces the state with the result; aws-local-stepfunctions writes a key named "$".
      if (state.ResultPath === '$')
        problems.push(`${where} sets "ResultPath": "$": omit ResultPath instead (the same on AWS)`);
      for (const field of JSONATA_FIELDS)
        if (field in state)
          problems.push(`${where} uses ${field} (JSONata or variables), which the local engine ignores`);
      const retry = (Array.isArray(state.Retry) ? state.Retry : []) as unknown as Retrier[];
      const catchers = (Array.isArray(state.Catch) ? state.Catch : []) as unknown as Catcher[];
      if (retry.length > 0) retryable.set(stateName, retry);
      if (state.Type === 'Wait') waits.push(stateName);
      if (state.Type === 'Task') {
        if ('HeartbeatSeconds' in state || 'HeartbeatSecondsPath' in state)
          problems.push(`${where} uses heartbeats, which the local engine ignores`);
        const resource = String(state.Resource ?? '');
        if (resource.includes('.waitForTaskToken') || resource.endsWith('.sync'))
          problems.push(`${where} waits for a task token or a .sync job, which the local engine cannot`);
        if (typeof state.TimeoutSeconds !== 'number')
          problems.push(`${where} sets no TimeoutSeconds (the local engine would silently use 60 s)`);
        const fn = String(asObject(state.Parameters).FunctionName ?? '');
        const key = functionKeys.get(fn);
        if (resource !== 'arn:aws:states:::lambda:invoke' || key === undefined) {
          problems.push(
            `${where} must invoke one of our functions through arn:aws:states:::lambda:invoke with FunctionName \${…FunctionArn}`,
          );
        } else {
          tasks.set(stateName, {
            name: stateName,
            functionKey: key,
            maps: [...enclosing],
            retry,
            catch: catchers,
          });
        }
      }
      if (state.Type === 'Map') {
        const processor = asObject(state.ItemProcessor ?? state.Iterator);
        if (asObject(processor.ProcessorConfig).Mode === 'DISTRIBUTED')
          problems.push(`${where} is a Distributed Map, which the local engine runs inline`);
        for (const field of DISTRIBUTED_FIELDS)
          if (field in state)
            problems.push(`${where} uses ${field} (Distributed Map), which the local engine ignores`);
        maps.set(stateName, {
          catch: catchers,
          maps: [...enclosing],
          itemsPath: String(state.ItemsPath ?? '$'),
        });
        walk(processor, [stateName, ...enclosing]);
      }
      if (state.Type === 'Parallel') {
        for (const branch of Array.isArray(state.Branches) ? state.Branches : [])
          walk(asObject(branch), enclosing);
      }
    }
  };
  walk(definition, []);
  if (problems.length > 0)
    throw new InvalidStateMachine(`statemachines/${name}.asl.json cannot run locally:`, problems);
  return { name, definition, tasks, maps, waits, retryable };
}

/** Whether an error name matches a Retry or Catch entry, as Step Functions matches them. */
export function matches(errorEquals: readonly string[], errorName: string, isTask: boolean): boolean {
  return errorEquals.some(
    (e) =>
      e === errorName ||
      e === 'States.ALL' ||
      (isTask && e === 'States.TaskFailed' && errorName !== 'States.Timeout'),
  );
}

/** How many items a Map state will iterate over, for progress (`ItemsPath` of the simple `$.a.b` form). */
export function mapItemCount(definition: LoadedDefinition, map: string, input: unknown): number | undefined {
  const path = definition.maps.get(map)?.itemsPath;
  if (path === undefined || !/^\$(\.[A-Za-z0-9_]+)*$/.test(path)) return undefined;
  let value: unknown = input;
  for (const key of path.split('.').slice(1)) {
    value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  }
  return Array.isArray(value) ? value.length : undefined;
}
