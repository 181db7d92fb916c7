import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  DescribeExecutionCommand,
  DescribeMapRunCommand,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  RedriveExecutionCommand,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { InputError } from '../lambdas/core/errors.ts';
import { type JsonObject, type LoadedDefinition, loadDefinition } from './engine/definition.ts';
import { localSubstitutions } from './engine/functions.ts';
import type { ExecutionEvent, ExecutionResult } from './engine/run.ts';
import type { PhaseRun, RunPhaseOptions } from './run-phase.ts';

/** How often the CLI asks Step Functions for new history events. */
export const DEFAULT_POLL_SECONDS = 2;

/** Names of the states inside a Map (their events are progress lines, not headlines). */
function nestedStates(definition: JsonObject, inside = false, found = new Set<string>()): Set<string> {
  const states = (definition.States ?? {}) as Record<string, JsonObject>;
  for (const [name, state] of Object.entries(states)) {
    if (inside) found.add(name);
    for (const inner of [state.ItemProcessor, state.Iterator]) {
      if (inner !== undefined && inner !== null) nestedStates(inner as JsonObject, true, found);
    }
  }
  return found;
}

function parse(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * Turns Step Functions history events into the events the local engine emits, so the same progress display
 * serves both. Events without a local counterpart (TaskScheduled, LambdaFunctionStarted…) give nothing.
 */
export function historyTranslator(
  definition: LoadedDefinition,
  executionId: string,
): (event: HistoryEvent) => ExecutionEvent | undefined {
  const nested = nestedStates(definition.definition);
  const mapInputs = new Map<string, unknown>();
  return (event) => {
    const type = event.type ?? '';
    const base = { executionId, timestamp: event.timestamp?.getTime() ?? Date.now() };
    if (type.endsWith('StateEntered') && event.stateEnteredEventDetails !== undefined) {
      const { name = '', input } = event.stateEnteredEventDetails;
      const parsed = parse(input);
      if (type === 'MapStateEntered') mapInputs.set(name, parsed);
      return {
        ...base,
        type: 'StateEntered',
        state: { name, type: type.replace('StateEntered', ''), input: parsed },
        ...(nested.has(name) ? { index: 0 } : {}),
      } as unknown as ExecutionEvent;
    }
    if (type.endsWith('StateExited') && event.stateExitedEventDetails !== undefined) {
      const { name = '', output } = event.stateExitedEventDetails;
      return {
        ...base,
        type: 'StateExited',
        state: { name, type: type.replace('StateExited', ''), output: parse(output) },
      } as unknown as ExecutionEvent;
    }
    if (type.startsWith('MapIteration')) {
      const details =
        event.mapIterationStartedEventDetails ??
        event.mapIterationSucceededEventDetails ??
        event.mapIterationFailedEventDetails ??
        event.mapIterationAbortedEventDetails;
      const name = details?.name ?? '';
      return {
        ...base,
        type: type === 'MapIterationAborted' ? 'MapIterationFailed' : type,
        index: details?.index ?? 0,
        parentState: { name, type: 'Map', input: mapInputs.get(name) },
      } as unknown as ExecutionEvent;
    }
    if (type === 'ExecutionSucceeded') return { ...base, type } as unknown as ExecutionEvent;
    if (type === 'ExecutionFailed' || type === 'ExecutionAborted' || type === 'ExecutionTimedOut') {
      const details =
        event.executionFailedEventDetails ??
        event.executionAbortedEventDetails ??
        event.executionTimedOutEventDetails;
      return {
        ...base,
        type: 'ExecutionFailed',
        Error: details?.error ?? type.replace('Execution', ''),
        Cause: details?.cause ?? '',
      } as unknown as ExecutionEvent;
    }
    return undefined;
  };
}

/** Errors of a Step Functions call that mean "ask again later". */
const THROTTLED = /Throttl|TooManyRequests|RequestLimitExceeded|ServiceUnavailable|InternalServerError/;

/**
 * Sends a command, backing off on throttling and service errors (up to 8 attempts, 0.5 s doubling to 16 s, with
 * jitter): a CLI following a long execution must not give up on a busy account. `sleep` is replaced in tests.
 */
export async function sendWithBackoff<T>(
  send: () => Promise<T>,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await send();
    } catch (error) {
      const name = (error as { name?: string }).name ?? '';
      if (!THROTTLED.test(name) || attempt >= 8) throw error;
      await sleep(Math.random() * Math.min(16_000, 500 * 2 ** (attempt - 1)));
    }
  }
}

/**
 * New history events since `afterId`, oldest first: read newest first (`reverseOrder`) and only as far back as
 * the last event already seen, so a long execution is not read from its start at every poll. Without execution
 * data (`includeExecutionData: false`): states' names and errors are all the display needs, and a state's input
 * or output (a plan, a level's tables) is not read at every poll; the execution's output comes at the end.
 */
async function newEvents(
  client: SFNClient,
  executionArn: string,
  afterId: number,
  sleep?: (ms: number) => Promise<void>,
): Promise<HistoryEvent[]> {
  const fresh: HistoryEvent[] = [];
  let nextToken: string | undefined;
  do {
    const page = await sendWithBackoff(
      () =>
        client.send(
          new GetExecutionHistoryCommand({
            executionArn,
            reverseOrder: true,
            maxResults: 200,
            includeExecutionData: false,
            nextToken,
          }),
        ),
      sleep,
    );
    for (const event of page.events ?? []) {
      if ((event.id ?? 0) <= afterId) return fresh.reverse();
      fresh.push(event);
    }
    nextToken = page.nextToken;
  } while (nextToken !== undefined);
  return fresh.reverse();
}

const ENDED = new Set(['ExecutionSucceeded', 'ExecutionFailed', 'ExecutionAborted', 'ExecutionTimedOut']);

/** Which of the config's state machines an ARN is (a state machine's, or one of its executions'). */
export function machineOf(
  loaded: RunPhaseOptions['loaded'],
  executionArn: string,
): { name: string; stateMachineArn: string } {
  const arns = loaded.config.aws?.stateMachines;
  // arn:aws:states:<region>:<account>:execution:<machine name>:<execution name>
  const match = /^arn:aws[a-z-]*:states:([a-z0-9-]+):(\d{12}):execution:([A-Za-z0-9_-]{1,80}):[^:]+$/.exec(
    executionArn,
  );
  if (match === null)
    throw new InputError(
      `${JSON.stringify(executionArn)} is not an execution ARN: arn:aws:states:<region>:<account>:execution:<state machine>:<name> (the CLI prints it as it starts one; the console shows it)`,
    );
  for (const [name, arn] of Object.entries(arns ?? {}))
    if (
      arn !== undefined &&
      arn === `arn:${arn.split(':')[1]}:states:${match[1]}:${match[2]}:stateMachine:${match[3]}`
    )
      return { name, stateMachineArn: arn };
  throw new InputError(
    `${executionArn} is an execution of ${match[3]}, which is none of aws.stateMachines in the config (${Object.keys(arns ?? {}).join(', ') || 'none set'})`,
  );
}

function sfnClient(options: {
  loaded: RunPhaseOptions['loaded'];
  client?: SFNClient | undefined;
}): SFNClient {
  const region = options.loaded.config.aws?.region;
  return options.client ?? new SFNClient(region === undefined ? {} : { region });
}

/** How a run on AWS is told: start a new execution, or follow (or redrive, then follow) one that exists. */
export type AwsRunOptions = RunPhaseOptions & {
  readonly pollSeconds?: number;
  readonly client?: SFNClient;
  /** Follow this execution instead of starting one; with `redrive`, redrive it first. */
  readonly attach?: { readonly executionArn: string; readonly redrive?: boolean };
  /** Replaced in tests. */
  readonly sleep?: (ms: number) => Promise<void>;
};

/**
 * Runs one state machine on AWS: StartExecution on the deployed machine named in the config (or, with `attach`,
 * an existing execution, redriven first if asked), then its history followed to the end with the same progress
 * display as a local run (a Distributed Map's progress from DescribeMapRun), and the result as a local run gives it.
 */
export async function runOnAws(options: AwsRunOptions): Promise<PhaseRun> {
  const arns = options.loaded.config.aws?.stateMachines;
  const name = options.stateMachine as keyof NonNullable<typeof arns>;
  const stateMachineArn = arns?.[name];
  if (stateMachineArn === undefined)
    throw new InputError(
      `aws.stateMachines.${name} is not set in the config: copy it from the stack's outputs`,
    );
  const client = sfnClient(options);
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  let executionArn: string;
  let executionName: string;
  if (options.attach === undefined) {
    executionName = `${name}-${new Date().toISOString().replace(/[-:.]/g, '')}-${randomBytes(3).toString('hex')}`;
    const started = await sendWithBackoff(
      () =>
        client.send(
          new StartExecutionCommand({
            stateMachineArn,
            name: executionName,
            input: JSON.stringify(options.input),
          }),
        ),
      sleep,
    );
    if (started.executionArn === undefined) throw new Error('StartExecution returned no executionArn');
    executionArn = started.executionArn;
  } else {
    executionArn = options.attach.executionArn;
    executionName = executionArn.split(':').at(-1) ?? 'execution';
    if (options.attach.redrive === true) {
      try {
        await sendWithBackoff(() => client.send(new RedriveExecutionCommand({ executionArn })), sleep);
      } catch (error) {
        const e = error as Error;
        if (/ExecutionNotRedrivable|ExecutionDoesNotExist|ExecutionLimitExceeded/.test(e.name))
          throw new InputError(`${executionArn} cannot be redriven (${e.name}): ${e.message}`);
        throw error;
      }
    }
  }
  const logDir = join(options.cwd, '.shifu-migrate', 'executions');
  mkdirSync(logDir, { recursive: true });
  const eventLog = join(logDir, `${executionName}.aws.jsonl`);
  const definition = loadDefinition(name, localSubstitutions());
  const onEvent = options.watch?.(definition);
  const translate = historyTranslator(definition, executionArn);
  // Map runs under way: their progress is read from DescribeMapRun at every poll.
  const mapRuns = new Map<string, string>();
  let lastMap = '';
  let lastId = 0;
  let ended = false;
  const pollMs = (options.pollSeconds ?? DEFAULT_POLL_SECONDS) * 1000;
  const progress = async (mapRunArn: string, state: string) => {
    const run = await sendWithBackoff(() => client.send(new DescribeMapRunCommand({ mapRunArn })), sleep);
    onEvent?.({
      type: 'MapRunProgress',
      state,
      mapRun: mapRunArn,
      itemsDone: run.itemCounts?.succeeded ?? 0,
      itemsTotal: run.itemCounts?.total ?? 0,
      itemsFailed: (run.itemCounts?.failed ?? 0) + (run.itemCounts?.timedOut ?? 0),
      executionId: executionArn,
    });
    return run.status;
  };
  while (!ended) {
    const events = await newEvents(client, executionArn, lastId, sleep);
    for (const event of events) {
      lastId = Math.max(lastId, event.id ?? 0);
      appendFileSync(eventLog, `${JSON.stringify(event)}\n`);
      if (ENDED.has(event.type ?? '')) ended = true;
      if (event.type === 'MapStateEntered') lastMap = event.stateEnteredEventDetails?.name ?? lastMap;
      const mapRunArn = event.mapRunStartedEventDetails?.mapRunArn;
      if (event.type === 'MapRunStarted' && mapRunArn !== undefined) mapRuns.set(mapRunArn, lastMap);
      const translated = translate(event);
      if (translated !== undefined) onEvent?.(translated);
    }
    for (const [mapRunArn, state] of [...mapRuns]) {
      // A map run that ended has just shown its last counts.
      if ((await progress(mapRunArn, state)) !== 'RUNNING') mapRuns.delete(mapRunArn);
    }
    if (!ended) await sleep(pollMs);
  }
  const described = await sendWithBackoff(
    () => client.send(new DescribeExecutionCommand({ executionArn })),
    sleep,
  );
  const status = (described.status ?? 'FAILED') as ExecutionResult['status'];
  return {
    executionId: executionArn,
    stateMachine: name,
    status: status === 'SUCCEEDED' || status === 'ABORTED' || status === 'TIMED_OUT' ? status : 'FAILED',
    ...(described.output === undefined ? {} : { output: parse(described.output) }),
    ...(described.error === undefined ? {} : { error: described.error }),
    ...(described.cause === undefined ? {} : { cause: described.cause }),
    startedAt: (described.startDate ?? new Date()).toISOString(),
    stoppedAt: (described.stopDate ?? new Date()).toISOString(),
    ledgerExecutionId: executionArn,
    eventLog,
  };
}
