import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, type MetricUnit } from '@aws-lambda-powertools/metrics';

type Unit = (typeof MetricUnit)[keyof typeof MetricUnit];

import { Tracer } from '@aws-lambda-powertools/tracer';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import type middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { METRICS, METRICS_NAMESPACE, type MetricName, type MetricsSink, SERVICE_NAME } from './metrics.ts';

/**
 * Logs, metrics and traces on Lambda, through Powertools for AWS Lambda. Only the Lambda entry points import this
 * module (its tracer loads the X-Ray SDK): the local runtime serves the same tasks without it.
 */
export const logger = new Logger({ serviceName: SERVICE_NAME });
export const metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE_NAME });
export const tracer = new Tracer({ serviceName: SERVICE_NAME });

/**
 * A task's metrics as CloudWatch Embedded Metric Format, one record per call (a chunk's rows, duration and
 * outcome together), under the `service` and `Phase` dimensions the stack's alarms and dashboard read.
 */
export function powertoolsMetrics(target: Metrics = metrics): MetricsSink {
  return {
    put(phase, values, tenant) {
      const entries = Object.entries(values).filter(([, v]) => v !== undefined) as [MetricName, number][];
      if (entries.length === 0) return;
      target.addDimension('Phase', phase);
      if (tenant !== undefined) target.addDimension('Tenant', tenant);
      for (const [name, value] of entries) target.addMetric(name, METRICS[name] as Unit, value);
      target.publishStoredMetrics();
    },
  };
}

/** Instruments an AWS SDK v3 client for X-Ray (a no-op where tracing is off: outside Lambda). */
export function traced<T extends object>(client: T): T {
  return tracer.captureAWSv3Client(client);
}

/**
 * The keys every log line of an invocation carries, from its event: the step, the run, the execution, the table
 * and the chunk it works on (those the event has).
 */
export function logKeys(event: unknown): Record<string, string | number> {
  if (typeof event !== 'object' || event === null) return {};
  const e = event as Record<string, unknown>;
  const keys: Record<string, string | number> = {};
  for (const name of ['step', 'runId', 'execution', 'table'] as const) {
    const value = e[name];
    if (typeof value === 'string') keys[name] = value;
  }
  const chunk = e.chunk as { n?: unknown } | undefined;
  if (typeof chunk?.n === 'number') keys.chunk = chunk.n;
  return keys;
}

/** One line when a task starts, one when it ends (with its duration) or fails (with the error). */
function invocationLog<O>(task: string): middy.MiddlewareObj<unknown, O, Error, Context> {
  const started = new WeakMap<object, number>();
  return {
    before: (request) => {
      logger.appendKeys({ task, ...logKeys(request.event) });
      started.set(request, performance.now());
      logger.info('task started');
    },
    after: (request) => {
      logger.info('task ended', { durationMs: Math.round(performance.now() - (started.get(request) ?? 0)) });
    },
    onError: (request) => {
      const durationMs = Math.round(performance.now() - (started.get(request) ?? 0));
      logger.error('task failed', { durationMs, error: request.error ?? undefined });
    },
  };
}

/** The `ColdStart` metric, once per container (under `service` and `function_name`). */
function coldStartMetric<O>(): middy.MiddlewareObj<unknown, O, Error, Context> {
  return {
    before: (request) => {
      metrics.captureColdStartMetric(request.context.functionName);
    },
  };
}

/**
 * A task's handler as Lambda runs it: an X-Ray segment per invocation (its response is not recorded: plans and
 * reports are large), the Lambda context and the event's keys on every log line, a start and an end line, and the
 * cold start counted.
 */
export function observed<O>(
  task: string,
  handler: middy.MiddyfiedHandler<unknown, O, Error, Context>,
): middy.MiddyfiedHandler<unknown, O, Error, Context> {
  return handler
    .use(captureLambdaHandler(tracer, { captureResponse: false }))
    .use(injectLambdaContext(logger, { clearState: true }))
    .use(coldStartMetric())
    .use(invocationLog(task));
}
