import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  type HistoryEvent,
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

/**
 * New history events since `afterId`, oldest first: read newest first (`reverseOrder`) and only as far back as
 * the last event already seen, so a long execution is not read from its start at every poll.
 */
async function newEvents(client: SFNClient, executionArn: string, afterId: number): Promise<HistoryEvent[]> {
  const fresh: HistoryEvent[] = [];
  let nextToken: string | undefined;
  do {
    const page = await client.send(
      new GetExecutionHistoryCommand({ executionArn, reverseOrder: true, maxResults: 200, nextToken }),
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

/**
 * Runs one state machine on AWS: StartExecution on the deployed machine named in the config, then its history
 * followed to the end with the same progress display as a local run, and the result as a local run gives it.
 */
export async function runOnAws(
  options: RunPhaseOptions & { readonly pollSeconds?: number; readonly client?: SFNClient },
): Promise<PhaseRun> {
  const arns = options.loaded.config.aws?.stateMachines;
  const name = options.stateMachine as keyof NonNullable<typeof arns>;
  const stateMachineArn = arns?.[name];
  if (stateMachineArn === undefined)
    throw new InputError(
      `aws.stateMachines.${name} is not set in the config: copy it from the stack's outputs`,
    );
  const region = options.loaded.config.aws?.region;
  const client = options.client ?? new SFNClient(region === undefined ? {} : { region });
  const executionName = `${name}-${new Date().toISOString().replace(/[-:.]/g, '')}-${randomBytes(3).toString('hex')}`;
  const started = await client.send(
    new StartExecutionCommand({ stateMachineArn, name: executionName, input: JSON.stringify(options.input) }),
  );
  const executionArn = started.executionArn;
  if (executionArn === undefined) throw new Error('StartExecution returned no executionArn');
  const logDir = join(options.cwd, '.shifu-migrate', 'executions');
  mkdirSync(logDir, { recursive: true });
  const eventLog = join(logDir, `${executionName}.aws.jsonl`);
  const definition = loadDefinition(name, localSubstitutions());
  const onEvent = options.watch?.(definition);
  const translate = historyTranslator(definition, executionArn);
  let lastId = 0;
  let ended = false;
  const pollMs = (options.pollSeconds ?? DEFAULT_POLL_SECONDS) * 1000;
  while (!ended) {
    const events = await newEvents(client, executionArn, lastId);
    for (const event of events) {
      lastId = Math.max(lastId, event.id ?? 0);
      appendFileSync(eventLog, `${JSON.stringify(event)}\n`);
      if (ENDED.has(event.type ?? '')) ended = true;
      const translated = translate(event);
      if (translated !== undefined) onEvent?.(translated);
    }
    if (!ended) await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  const described = await client.send(new DescribeExecutionCommand({ executionArn }));
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
