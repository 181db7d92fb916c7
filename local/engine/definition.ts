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
  /** The substitution key of the function it invokes, e.g. `FoundationFunctionArn` ('' for a Distributed Map). */
  readonly functionKey: string;
  /** Map states around it, innermost first. */
  readonly maps: readonly string[];
  readonly retry: readonly Retrier[];
  readonly catch: readonly Catcher[];
  /** Set when the state is a Distributed Map, which the runtime runs as a map run of child executions. */
  readonly distributed?: DistributedMap;
  /**
   * Set when the state starts one of our state machines and waits for it (`states:startExecution.sync:2`): the
   * machine's file name (`sync`), run locally as an execution of its own.
   */
  readonly nested?: string;
}

/** The one nested-execution integration the local runtime runs: start, wait, output as JSON. */
export const START_EXECUTION_SYNC = 'arn:aws:states:::states:startExecution.sync:2';
/** The substitution of a state machine's ARN: `${SyncStateMachineArn}` is statemachines/sync.asl.json. */
const MACHINE_KEY = /^([A-Z][a-z]+)StateMachineArn$/;

/**
 * A Distributed Map as the local runtime runs it: the state becomes a Task whose Parameters carry its ItemReader,
 * ItemBatcher, ResultWriter and MaxConcurrency (their paths resolved against the state's input, as on AWS), and
 * the runtime starts one child execution of `child` per batch.
 */
export interface DistributedMap {
  /** The map run's label (`Label`, else the state's name). */
  readonly label: string;
  /** The ItemProcessor, as a state machine of its own. */
  readonly child: LoadedDefinition;
  /** Whether the state has an ItemBatcher (children get `{ BatchInput, Items }`) or not (one item each). */
  readonly batched: boolean;
  /** Whether the state has a ResultWriter (its output is then where the results were written). */
  readonly writesResults: boolean;
}

/** The Parameters a Distributed Map state gets locally, resolved by the engine. */
export interface DistributedMapParameters {
  readonly reader: { readonly Bucket: string; readonly Key: string };
  readonly maxItems?: number;
  readonly batch?: {
    readonly maxItems?: number;
    readonly maxBytes?: number;
    readonly input?: unknown;
  };
  readonly writer?: { readonly Bucket: string; readonly Prefix?: string };
  readonly maxConcurrency?: number;
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
/** Fields a Distributed Map shares with the Task that stands for it locally: copied to it as they are. */
const PASSED_TO_TASK = [
  'Comment',
  'InputPath',
  'OutputPath',
  'ResultPath',
  'ResultSelector',
  'Retry',
  'Catch',
  'Next',
  'End',
];
/** What the local runtime runs of a Distributed Map (anything else there is refused). */
const DISTRIBUTED_SUPPORTED = new Set([
  ...PASSED_TO_TASK,
  'Type',
  'ItemReader',
  'ItemBatcher',
  'ItemProcessor',
  'ResultWriter',
  'Label',
  'MaxConcurrency',
  'MaxConcurrencyPath',
]);
/** Longer than any execution (about 23 days; a timer holds at most 2^31 ms): a map run ends when its children do. */
const MAP_RUN_TIMEOUT_SECONDS = 2_000_000;

/** A value that is given either as `Field` or as `FieldPath`; as Parameters entries the engine resolves. */
function valueOrPath(state: JsonObject, field: string, as: string): JsonObject {
  if (typeof state[`${field}Path`] === 'string') return { [`${as}.$`]: state[`${field}Path`] as string };
  if (field in state) return { [as]: state[field] as Json };
  return {};
}

/**
 * Checks a Distributed Map and turns it into the Task the local runtime runs, or adds to `problems` what it cannot
 * run as AWS would (with the reason).
 */
function distributedTask(
  stateName: string,
  state: JsonObject,
  problems: string[],
): { task: JsonObject; batched: boolean; writesResults: boolean; label: string } | undefined {
  const where = `state "${stateName}"`;
  const before = problems.length;
  for (const field of Object.keys(state))
    if (!DISTRIBUTED_SUPPORTED.has(field))
      problems.push(`${where} uses ${field} on a Distributed Map, which the local engine does not run`);
  const reader = asObject(state.ItemReader);
  const config = asObject(reader.ReaderConfig);
  if (reader.Resource !== 'arn:aws:states:::s3:getObject' || config.InputType !== 'JSON')
    problems.push(
      `${where}: its ItemReader must read a JSON array (arn:aws:states:::s3:getObject, ReaderConfig.InputType JSON)`,
    );
  for (const field of Object.keys(config))
    if (!['InputType', 'MaxItems', 'MaxItemsPath'].includes(field))
      problems.push(`${where}: ItemReader.ReaderConfig.${field} is not run locally`);
  const readerParameters = asObject(reader.Parameters);
  for (const field of ['Bucket', 'Key'])
    if (!(field in readerParameters || `${field}.$` in readerParameters))
      problems.push(`${where}: ItemReader.Parameters needs ${field}`);
  const batcher = 'ItemBatcher' in state ? asObject(state.ItemBatcher) : undefined;
  for (const field of Object.keys(batcher ?? {}))
    if (
      ![
        'MaxItemsPerBatch',
        'MaxItemsPerBatchPath',
        'MaxInputBytesPerBatch',
        'MaxInputBytesPerBatchPath',
        'BatchInput',
      ].includes(field)
    )
      problems.push(`${where}: ItemBatcher.${field} is not run locally`);
  const writer = 'ResultWriter' in state ? asObject(state.ResultWriter) : undefined;
  if (writer !== undefined) {
    if (writer.Resource !== 'arn:aws:states:::s3:putObject' || 'WriterConfig' in writer)
      problems.push(
        `${where}: its ResultWriter must be arn:aws:states:::s3:putObject with Parameters Bucket and Prefix (no WriterConfig)`,
      );
  }
  const processor = asObject(state.ItemProcessor);
  if (asObject(processor.ProcessorConfig).ExecutionType !== 'STANDARD')
    problems.push(`${where}: its children must be STANDARD executions (ExecutionType)`);
  if (problems.length > before) return undefined;
  const task: JsonObject = {
    Type: 'Task',
    Resource: 'arn:aws:states:::local:distributed-map',
    Parameters: {
      reader: readerParameters,
      ...valueOrPath(config, 'MaxItems', 'maxItems'),
      ...(batcher === undefined
        ? {}
        : {
            batch: {
              ...valueOrPath(batcher, 'MaxItemsPerBatch', 'maxItems'),
              ...valueOrPath(batcher, 'MaxInputBytesPerBatch', 'maxBytes'),
              ...('BatchInput' in batcher ? { input: batcher.BatchInput as Json } : {}),
            },
          }),
      ...(writer === undefined ? {} : { writer: asObject(writer.Parameters) }),
      ...valueOrPath(state, 'MaxConcurrency', 'maxConcurrency'),
    },
    TimeoutSeconds: MAP_RUN_TIMEOUT_SECONDS,
  };
  for (const field of PASSED_TO_TASK) if (field in state) task[field] = state[field] as Json;
  return {
    task,
    batched: batcher !== undefined,
    writesResults: writer !== undefined,
    label: typeof state.Label === 'string' ? state.Label : stateName,
  };
}

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
  if (definition.QueryLanguage === 'JSONata')
    problems.push('the machine uses JSONata, which the local engine ignores');
  const loaded = analyze(name, definition, functionKeys, new Set(), problems);
  if (problems.length > 0)
    throw new InvalidStateMachine(`statemachines/${name}.asl.json cannot run locally:`, problems);
  return loaded;
}

/**
 * Walks one state machine (or a Distributed Map's ItemProcessor, which runs as child executions of its own),
 * collecting what the runtime needs and what it cannot run. Distributed Maps are rewritten in place as the Task
 * the runtime runs them as.
 */
function analyze(
  name: string,
  definition: JsonObject,
  functionKeys: ReadonlyMap<string, string>,
  seen: Set<string>,
  problems: string[],
): LoadedDefinition {
  const tasks = new Map<string, TaskInfo>();
  const maps = new Map<string, { catch: Catcher[]; maps: string[]; itemsPath: string }>();
  const waits: string[] = [];
  const retryable = new Map<string, Retrier[]>();

  const walk = (machine: JsonObject, enclosing: string[]): void => {
    const states = asObject(machine.States);
    for (const [stateName, raw] of Object.entries(states)) {
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
        const machineKey = functionKeys.get(String(asObject(state.Parameters).StateMachineArn ?? ''));
        const machine = machineKey === undefined ? undefined : MACHINE_KEY.exec(machineKey)?.[1];
        if (resource === START_EXECUTION_SYNC) {
          if (machine === undefined)
            problems.push(
              `${where} must start one of our state machines: StateMachineArn \${…StateMachineArn}`,
            );
          else
            tasks.set(stateName, {
              name: stateName,
              functionKey: '',
              maps: [...enclosing],
              retry,
              catch: catchers,
              nested: machine.toLowerCase(),
            });
        } else if (resource !== 'arn:aws:states:::lambda:invoke' || key === undefined) {
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
        if (asObject(processor.ProcessorConfig).Mode === 'DISTRIBUTED') {
          const rewritten = distributedTask(stateName, state, problems);
          // The children are executions of their own: their states are walked as a machine of their own.
          const child = analyze(
            `${name}/${stateName}`,
            { StartAt: processor.StartAt as Json, States: processor.States as Json },
            functionKeys,
            seen,
            problems,
          );
          if (rewritten !== undefined) {
            states[stateName] = rewritten.task;
            tasks.set(stateName, {
              name: stateName,
              functionKey: '',
              maps: [...enclosing],
              retry,
              catch: catchers,
              distributed: {
                label: rewritten.label,
                child,
                batched: rewritten.batched,
                writesResults: rewritten.writesResults,
              },
            });
          }
          continue;
        }
        for (const field of DISTRIBUTED_FIELDS)
          if (field in state) problems.push(`${where} uses ${field}, which only a Distributed Map has`);
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
