import type { Context } from 'aws-lambda';
import { LOCAL_CONFIG, type TaskDeps } from '../../lambdas/core/task.ts';
import { FUNCTIONS, type FunctionKey } from '../../lambdas/registry.ts';
import type { Invoke } from './run.ts';

/** The task module that serves each function locally: the same task the stack bundles, without Powertools. */
const LOADERS = {
  AssessFunctionArn: () => import('../../lambdas/assess/task.ts'),
  FoundationFunctionArn: () => import('../../lambdas/foundation/task.ts'),
  DataFunctionArn: () => import('../../lambdas/data/task.ts'),
  ControlFunctionArn: () => import('../../lambdas/control/task.ts'),
} as const satisfies Record<FunctionKey, unknown>;

/** What `definitionSubstitutions` gives locally: a Lambda ARN per function (nothing is called on AWS). */
export function localSubstitutions(): Record<string, string> {
  return {
    ...Object.fromEntries(
      Object.entries(FUNCTIONS).map(([key, f]) => [
        key,
        `arn:aws:lambda:us-east-1:000000000000:function:shifu-migrate-${f.name}`,
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
 * Serves Task states from the very handler modules the Lambdas deploy: each module's `createHandler`
 * wraps the same middy chain and logic, with these dependencies and the invocation's abort signal.
 */
export function localInvoker(base: Omit<TaskDeps, 'signal'>): Invoke {
  return async (functionKey, event, signal) => {
    const fn = FUNCTIONS[functionKey as FunctionKey];
    if (fn === undefined) throw new TypeError(`no local handler for ${functionKey}`);
    const { createHandler } = await LOADERS[functionKey as FunctionKey]();
    const handler = createHandler(async () => ({ ...base, signal }));
    return handler(event, lambdaContext(`shifu-migrate-${fn.name}`, 15 * 60 * 1000));
  };
}
