import type { Context } from 'aws-lambda';
import type { z } from 'zod';
import type { ArchiveStore } from '../../lambdas/core/archive/port.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import {
  forFunction,
  LOCAL_CONFIG,
  type TaskDefinition,
  type TaskDeps,
  taskHandler,
} from '../../lambdas/core/task.ts';
import {
  FUNCTIONS,
  type FunctionKey,
  type FunctionSpec,
  type Reach,
  STATE_MACHINES,
  type TaskModule,
} from '../../lambdas/registry.ts';
import type { Invoke } from './run.ts';

/** The task module that serves each function locally: the same task the stack bundles, without Powertools. */
const LOADERS = {
  assess: () => import('../../lambdas/assess/task.ts'),
  foundation: () => import('../../lambdas/foundation/task.ts'),
  data: () => import('../../lambdas/data/task.ts'),
  sync: () => import('../../lambdas/sync/task.ts'),
  application: () => import('../../lambdas/application/task.ts'),
  integration: () => import('../../lambdas/integration/task.ts'),
  golive: () => import('../../lambdas/golive/task.ts'),
  control: () => import('../../lambdas/control/task.ts'),
} as const satisfies Record<TaskModule, unknown>;

/** What `definitionSubstitutions` gives locally: a Lambda ARN per function (nothing is called on AWS). */
export function localSubstitutions(): Record<string, string> {
  return {
    ...Object.fromEntries(
      Object.entries(FUNCTIONS).map(([key, f]) => [
        key,
        `arn:aws:lambda:us-east-1:000000000000:function:shifu-migrate-${f.name}`,
      ]),
    ),
    // A phase that runs another (application's sync passes) names it by its ARN.
    ...Object.fromEntries(
      STATE_MACHINES.map((m) => [
        `${m[0]?.toUpperCase()}${m.slice(1)}StateMachineArn`,
        `arn:aws:states:us-east-1:000000000000:stateMachine:shifu-migrate-${m}`,
      ]),
    ),
    // Locally the config is the one loaded for the run, not a deployed version.
    ConfigKey: LOCAL_CONFIG,
  };
}

function lambdaContext(functionName: string, timeoutMs: number): Context {
  const deadline = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${functionName}`,
    memoryLimitInMB: '1024',
    awsRequestId: crypto.randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

/**
 * A function reached something its registry entry does not grant: on AWS its IAM policy would refuse it. Locally
 * the same refusal, so every local run and test holds the registry to what each function does.
 */
export class NotGranted extends Error {
  override name = 'NotGranted';
}

function refuse(spec: FunctionSpec, reach: Reach, what: string): never {
  throw new NotGranted(
    `${spec.name} ${what}, but its registry entry (lambdas/registry.ts) does not grant ${JSON.stringify(reach)}: add it to its reaches, and the stack grants it`,
  );
}

function guardedSql(client: SqlClient, spec: FunctionSpec, reach: 'source' | 'target'): SqlClient {
  if (spec.reaches.includes(reach)) return client;
  const no = (): never => refuse(spec, reach, `ran a statement on the ${reach} database`);
  return {
    ...client,
    query: async () => no(),
    execute: async () => no(),
    batch: async () => no(),
    transaction: async () => no(),
    close: () => client.close(),
  };
}

function guardedArchive(archive: ArchiveStore, spec: FunctionSpec): ArchiveStore {
  const may = (reach: Reach, what: string) => {
    if (!spec.reaches.includes(reach)) refuse(spec, reach, what);
  };
  return {
    location: archive.location,
    address: (key) => archive.address(key),
    keyAt: (address) => archive.keyAt(address),
    put: async (key, body, options) => {
      may('archive:put', `put ${key} in the archive`);
      return archive.put(key, body, options);
    },
    get: async (key) => {
      may('archive:get', `read ${key} from the archive`);
      return archive.get(key);
    },
    list: async (prefix) => {
      may('archive:list', `listed ${prefix} in the archive`);
      return archive.list(prefix);
    },
  };
}

/** A function's dependencies, reaching only what its registry entry grants. */
export function grantedDeps(deps: TaskDeps, spec: FunctionSpec): TaskDeps {
  const { syncSchedule, sourceWriter, alarms, loadBalancer, secrets, ...rest } = deps;
  return {
    ...rest,
    ...(syncSchedule !== undefined && spec.reaches.includes('schedule') ? { syncSchedule } : {}),
    ...(sourceWriter !== undefined && spec.reaches.includes('source:write') ? { sourceWriter } : {}),
    ...(alarms !== undefined && spec.reaches.includes('alarms') ? { alarms } : {}),
    ...(loadBalancer !== undefined && spec.reaches.includes('load-balancer') ? { loadBalancer } : {}),
    ...(secrets !== undefined && spec.reaches.includes('secrets') ? { secrets } : {}),
    source: guardedSql(deps.source, spec, 'source'),
    target: guardedSql(deps.target, spec, 'target'),
    targetServer: guardedSql(deps.targetServer, spec, 'target'),
    archive: guardedArchive(deps.archive, spec),
  };
}

/**
 * Serves Task states from the task modules the Lambdas deploy: each function runs its module's task, limited to
 * its steps (as on Lambda), with these dependencies reaching only what the function is granted, and the
 * invocation's abort signal.
 */
export function localInvoker(base: Omit<TaskDeps, 'signal'>): Invoke {
  // One set of dependencies per function, as one warm container each on Lambda: what a function keeps in memory
  // (a run's structure, remembered parents) is its own, and it reads the archive where it would there.
  const containers = new Map<FunctionKey, TaskDeps>();
  return async (functionKey, event, signal) => {
    const spec: FunctionSpec | undefined = FUNCTIONS[functionKey as FunctionKey];
    if (spec === undefined) throw new TypeError(`no local handler for ${functionKey}`);
    const { task } = await LOADERS[spec.module]();
    let container = containers.get(functionKey as FunctionKey);
    if (container === undefined) {
      container = grantedDeps({ ...base, signal: new AbortController().signal }, spec);
      containers.set(functionKey as FunctionKey, container);
    }
    const deps = { ...container, signal };
    // Each module's task takes its own input union; the function's steps say which part of it.
    const handler = taskHandler(
      forFunction(task as TaskDefinition<z.ZodType, unknown>, spec),
      async () => deps,
    );
    return handler(event, lambdaContext(`shifu-migrate-${spec.name}`, spec.timeoutMinutes * 60 * 1000));
  };
}
