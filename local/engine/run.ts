import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { ExecutionAbortedError, ExecutionTimeoutError, StateMachine } from 'aws-local-stepfunctions';
import type { ArchiveStore } from '../../lambdas/core/archive/port.ts';
import { type LoadedDefinition, matches } from './definition.ts';
import { runMapRun } from './map-run.ts';

type JSONValue = Parameters<StateMachine['run']>[0];
type EventLog = Awaited<ReturnType<ReturnType<StateMachine['run']>['eventLogs']['next']>>['value'];

/** Invokes a Lambda function's handler locally; `signal` is the one of the work the invocation belongs to. */
export type Invoke = (functionKey: string, event: unknown, signal: AbortSignal) => Promise<unknown>;

/** A Distributed Map's progress: its map run started (with how many children), or one child ended. */
export type MapRunEvent =
  | {
      readonly type: 'MapRunStarted';
      readonly state: string;
      /** The map run's own id (several runs of one state may be under way: one per table). */
      readonly mapRun: string;
      /** What the run works on, for people (BatchInput's table). */
      readonly about: string;
      readonly children: number;
      readonly items: number;
    }
  | {
      readonly type: 'MapRunChildEnded';
      readonly state: string;
      readonly mapRun: string;
      readonly status: 'SUCCEEDED' | 'FAILED' | 'ABORTED';
      readonly items: number;
    }
  | {
      /** On AWS: a map run's counts as DescribeMapRun gives them. */
      readonly type: 'MapRunProgress';
      readonly state: string;
      readonly mapRun: string;
      readonly itemsDone: number;
      readonly itemsTotal: number;
      readonly itemsFailed: number;
    };

/**
 * Something that happened in the execution, as the CLI's progress display and the event log see it. Events of a
 * Distributed Map's child executions carry `parentMap`: the map state of the execution that started them.
 */
export type ExecutionEvent = (EventLog | MapRunEvent) & {
  readonly executionId: string;
  readonly parentMap?: string;
};

export interface ExecutionResult {
  readonly executionId: string;
  readonly stateMachine: string;
  readonly status: 'SUCCEEDED' | 'FAILED' | 'ABORTED' | 'TIMED_OUT';
  readonly output?: unknown;
  readonly error?: string;
  readonly cause?: string;
  readonly startedAt: string;
  readonly stoppedAt: string;
}

export interface RunOptions {
  readonly definition: LoadedDefinition;
  readonly input: unknown;
  readonly invoke: Invoke;
  /**
   * Multiplies Wait durations: local runs need not sleep as long as AWS would.
   * @default 0.01
   */
  readonly timeScale?: number;
  /**
   * Multiplies Retry pauses, which back off as on AWS (IntervalSeconds × BackoffRate^n, capped by
   * MaxDelaySeconds); never below a second per retry unless 0, so a restarting server is waited for.
   * @default 0.2, or 0 when timeScale is 0
   */
  readonly retryScale?: number;
  readonly onEvent?: (event: ExecutionEvent) => void;
  /** Where a Distributed Map reads its items and writes its results (the S3 bucket's local stand-in). */
  readonly archive?: ArchiveStore;
  /**
   * Runs another of our state machines to its end, for a `states:startExecution.sync:2` Task (a nested
   * execution): given its file name and input, with the signal of the work it belongs to.
   */
  readonly startExecution?: (
    machine: string,
    input: unknown,
    signal: AbortSignal,
  ) => Promise<ExecutionResult>;
}

/**
 * A nested execution ended otherwise than SUCCEEDED: as Step Functions fails a `startExecution.sync:2` Task, with
 * `States.TaskFailed` and the child's description (status, error, cause) as the JSON cause.
 */
export class NestedExecutionFailed extends Error {
  override name = 'States.TaskFailed';
}

/** A sibling Map iteration failed, so this one starts no new work (the Map has failed already). */
export class MapIterationCancelled extends Error {
  override name = 'MapIterationCancelled';
}

/**
 * Runs a state machine with aws-local-stepfunctions, closing its gaps (docs/architecture.md, "The local runtime"): Task states run our
 * handlers in process; Wait and Retry pauses are scaled down; and once a Map iteration fails, no sibling
 * iteration starts new work, in-flight siblings see their Map's signal aborted, and states outside the Map
 * (the rollback) start only after those siblings have stopped.
 */
export function runLocal(options: RunOptions): {
  executionId: string;
  abort(): void;
  result: Promise<ExecutionResult>;
} {
  const { definition } = options;
  const executionId = randomUUID();
  const scale = options.timeScale ?? 0.01;
  const retryScale = options.retryScale ?? (scale === 0 ? 0 : 0.2);
  const execution = new AbortController();
  const mapSignals = new Map<string, AbortController>();
  const failedMaps = new Set<string>();
  const inFlight = new Map<string, number>();
  const failures = new Map<string, number>();
  let drained: (() => void)[] = [];

  const mapSignal = (map: string): AbortController => {
    let controller = mapSignals.get(map);
    if (controller === undefined) {
      controller = new AbortController();
      mapSignals.set(map, controller);
    }
    return controller;
  };
  const busy = (maps: Iterable<string>): boolean => [...maps].some((m) => (inFlight.get(m) ?? 0) > 0);
  const failMap = (map: string, error: Error): void => {
    failedMaps.add(map);
    mapSignal(map).abort(error);
    // The Map's own Catch decides whether the failure goes on to the Map around it.
    const info = definition.maps.get(map);
    const outer = info?.maps[0];
    if (outer !== undefined && !info?.catch.some((c) => matches(c.ErrorEquals, error.name, false)))
      failMap(outer, error);
  };

  /** The message of the last error each task raised, by error name. */
  const lastMessages = new Map<string, string>();
  const retryIntervalOverrides: Record<string, number[]> = {};
  /**
   * Decides, before the engine sees the error, whether this attempt is the iteration's last, and sets the pause
   * before the next one: the engine's interval overrides do not back off by themselves, so the backoff is
   * computed here, per state and payload.
   */
  const isFinal = (state: string, attemptKey: string, error: Error): boolean => {
    const task = definition.tasks.get(state);
    if (task === undefined) return true;
    const index = task.retry.findIndex((r) => matches(r.ErrorEquals, error.name, true));
    if (index !== -1) {
      const key = `${attemptKey}\u0000${index}`;
      const attempts = (failures.get(key) ?? 0) + 1;
      failures.set(key, attempts);
      const retrier = task.retry[index];
      if (retrier !== undefined && attempts <= (retrier.MaxAttempts ?? 3)) {
        const seconds = Math.min(
          (retrier.IntervalSeconds ?? 1) * (retrier.BackoffRate ?? 2) ** (attempts - 1),
          retrier.MaxDelaySeconds ?? Number.POSITIVE_INFINITY,
        );
        const pauses = retryIntervalOverrides[state] ?? [];
        pauses[index] = retryScale === 0 ? 0 : Math.max(1000, Math.round(seconds * 1000 * retryScale));
        retryIntervalOverrides[state] = pauses;
        return false;
      }
    }
    return !task.catch.some((c) => matches(c.ErrorEquals, error.name, true));
  };

  const handlers: Record<string, (input: JSONValue) => Promise<JSONValue>> = {};
  for (const task of definition.tasks.values()) {
    handlers[task.name] = async (input) => {
      const params = input as { FunctionName?: string; Payload?: unknown };
      // Stopped (Ctrl-C): the engine still enters queued states; none of them starts work.
      if (execution.signal.aborted)
        throw new MapIterationCancelled(`${task.name} not started: the execution was stopped`);
      if (task.maps.some((m) => failedMaps.has(m))) {
        throw new MapIterationCancelled(
          `${task.name} not started: a sibling iteration of ${task.maps[0]} failed`,
        );
      }
      // Outside a failed Map (its Catch, the rollback): wait until its in-flight iterations are done.
      const others = [...failedMaps].filter((m) => !task.maps.includes(m));
      while (busy(others)) await new Promise<void>((resolve) => drained.push(resolve));
      for (const m of task.maps) inFlight.set(m, (inFlight.get(m) ?? 0) + 1);
      const signal =
        task.maps[0] === undefined
          ? execution.signal
          : AbortSignal.any([execution.signal, mapSignal(task.maps[0]).signal]);
      try {
        // A Distributed Map: a map run of child executions, each a local execution of its own.
        if (task.distributed !== undefined)
          return (await runMapRun(task.name, task.distributed, input, signal, options)) as JSONValue;
        if (task.nested !== undefined) {
          if (options.startExecution === undefined)
            throw new TypeError(
              `${task.name} starts ${task.nested}, and this runtime runs no nested executions`,
            );
          const nested = input as { StateMachineArn?: string; Input?: unknown };
          const child = await options.startExecution(task.nested, nested.Input ?? {}, signal);
          const described = {
            ExecutionArn: child.executionId,
            StateMachineArn: nested.StateMachineArn,
            Status: child.status,
            StartDate: child.startedAt,
            StopDate: child.stoppedAt,
            ...(child.status === 'SUCCEEDED'
              ? { Output: child.output ?? null }
              : { Error: child.error ?? child.status, Cause: child.cause ?? '' }),
          };
          if (child.status !== 'SUCCEEDED') throw new NestedExecutionFailed(JSON.stringify(described));
          return described as JSONValue;
        }
        const payload = await options.invoke(task.functionKey, params.Payload, signal);
        return { StatusCode: 200, ExecutedVersion: '$LATEST', Payload: payload as JSONValue };
      } catch (error) {
        const e = error instanceof Error ? error : new Error(String(error));
        lastMessages.set(e.name, e.message);
        const innermost = task.maps[0];
        const final = isFinal(task.name, `${task.name}\u0000${JSON.stringify(params.Payload)}`, e);
        if (innermost !== undefined && final) failMap(innermost, e);
        throw e;
      } finally {
        for (const m of task.maps) inFlight.set(m, (inFlight.get(m) ?? 1) - 1);
        const waiting = drained;
        drained = [];
        for (const resolve of waiting) resolve();
      }
    };
  }

  const waitTimeOverrides: Record<string, number> = {};
  for (const wait of definition.waits) {
    const seconds = Number((findState(definition.definition, wait) as { Seconds?: number }).Seconds ?? 1);
    waitTimeOverrides[wait] = Math.round(seconds * 1000 * scale);
  }
  for (const [state, retriers] of definition.retryable) {
    retryIntervalOverrides[state] = retriers.map((r) =>
      retryScale === 0 ? 0 : Math.max(1000, Math.round((r.IntervalSeconds ?? 1) * 1000 * retryScale)),
    );
  }

  // The ASL files ship with the package and test/infra/statemachines.test.ts validates each one with
  // asl-validator (paths and ARNs checked); compiling its JSON schema again on every run cost 160 ms.
  const machine = new StateMachine(definition.definition as never, {
    validationOptions: { noValidate: true },
  });
  const started = new Date().toISOString();
  const run = machine.run(options.input as JSONValue, {
    overrides: { taskResourceLocalHandlers: handlers, waitTimeOverrides, retryIntervalOverrides },
    // `$$.Execution.Id`: the ledger records it, and a rollback tells from it whether this process still runs.
    context: { Execution: { Id: localExecutionId(executionId), Name: executionId } },
  });
  let failure: { error: string; cause: string } | undefined;
  const events = (async () => {
    for await (const event of run.eventLogs) {
      // The engine gives an error's own `cause` (an Error) when it has one; Step Functions gives the task's message.
      if (event.type === 'ExecutionFailed')
        failure = {
          error: event.Error,
          cause:
            typeof event.Cause === 'string' || event.Cause === undefined
              ? (event.Cause ?? '')
              : (lastMessages.get(event.Error) ?? String(event.Cause)),
        };
      options.onEvent?.({ ...event, executionId });
    }
  })();

  const result = (async (): Promise<ExecutionResult> => {
    const base = { executionId, stateMachine: definition.name, startedAt: started };
    try {
      const output = await run.result;
      await events;
      return { ...base, status: 'SUCCEEDED', output, stoppedAt: new Date().toISOString() };
    } catch (error) {
      await events.catch(() => undefined);
      // Work still in flight (a Map's siblings) must stop before the caller looks at the databases.
      while (busy(inFlight.keys())) await new Promise<void>((resolve) => drained.push(resolve));
      const stoppedAt = new Date().toISOString();
      if (error instanceof ExecutionAbortedError)
        return { ...base, status: 'ABORTED', error: 'ExecutionAborted', stoppedAt };
      if (error instanceof ExecutionTimeoutError)
        return { ...base, status: 'TIMED_OUT', error: 'States.Timeout', stoppedAt };
      const cause = error instanceof Error ? (error.cause instanceof Error ? error.cause : error) : undefined;
      return {
        ...base,
        status: 'FAILED',
        error: failure?.error ?? cause?.name ?? 'Error',
        cause: failure?.cause ?? cause?.message ?? String(error),
        stoppedAt,
      };
    }
  })();

  return {
    executionId,
    abort() {
      execution.abort(new Error('execution aborted'));
      run.abort();
    },
    result,
  };
}

/** A local execution's id as `$$.Execution.Id` gives it: the host and process that run it, and its own id. */
export function localExecutionId(executionId: string): string {
  return `local:${hostname()}:${process.pid}:${executionId}`;
}

function findState(machine: unknown, name: string): unknown {
  const states = (machine as { States?: Record<string, unknown> }).States ?? {};
  if (name in states) return states[name];
  for (const state of Object.values(states)) {
    const s = state as { ItemProcessor?: unknown; Iterator?: unknown; Branches?: unknown[] };
    for (const inner of [s.ItemProcessor, s.Iterator, ...(s.Branches ?? [])]) {
      if (inner === undefined) continue;
      const found = findState(inner, name);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}
