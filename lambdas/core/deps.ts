import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { SchedulerClient } from '@aws-sdk/client-scheduler';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { cloudWatchAlarms } from '../application/gates.ts';
import { secretCheck } from '../integration/secrets.ts';
import { openArchive } from './archive/open.ts';
import { ConfigSchema } from './config/schema.ts';
import { InputError } from './errors.ts';
import { powertoolsMetrics, traced } from './observability.ts';
import { eventBridgeSchedule, scheduleName } from './schedule.ts';
import { openSql } from './sql/open.ts';
import { parseDatabaseUrl, withDatabase } from './sql/url.ts';
import type { TaskDeps } from './task.ts';

/** Where the deployed config versions live in the archive: `config/<sha-256 of the JSON, 16 hex>.json`. */
export const CONFIG_KEY = /^config\/[0-9a-f]{16}\.json$/;

const cached = new Map<string, Promise<TaskDeps>>();

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new InputError(`environment variable ${name} is not set`);
  return value;
}

async function build(archiveUrl: string, key: string): Promise<TaskDeps> {
  const archive = openArchive(archiveUrl, process.cwd(), traced);
  const body = await archive.get(key);
  if (body === undefined)
    throw new InputError(
      `the config ${key} is not in ${archive.location}: deploy the stack again (it writes every config version there)`,
    );
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw new InputError(`the config ${archive.location}/${key} is not valid JSON`);
  }
  // The archive is where the functions find it (the stored config does not say: its bucket is made by the stack).
  const parsed = ConfigSchema.safeParse({ ...(json as object), archive: { url: archiveUrl } });
  if (!parsed.success) {
    throw new InputError(
      `the config ${archive.location}/${key} is not a valid config:`,
      parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
    );
  }
  const config = parsed.data;
  const sourceUrl = parseDatabaseUrl(config.source.url);
  const targetUrl = parseDatabaseUrl(config.target.url);
  // Only the functions granted the schedule have it in their environment (data's finish and rollback).
  const schedule = scheduleName(process.env.SHIFU_MIGRATE_SYNC_SCHEDULE);
  return {
    config,
    sourceUrl,
    targetUrl,
    source: openSql(sourceUrl, { label: 'source', readOnly: true, awsClient: traced }),
    // Only the functions granted source:write (reverse sync) have it, and the stack says so in their environment.
    ...(process.env.SHIFU_MIGRATE_SOURCE_WRITE === '1'
      ? {
          sourceWriter: openSql(
            config.source.writeUrl === undefined ? sourceUrl : parseDatabaseUrl(config.source.writeUrl),
            { label: 'source', awsClient: traced },
          ),
        }
      : {}),
    target: openSql(targetUrl, { label: 'target', awsClient: traced }),
    targetServer: openSql(withDatabase(targetUrl, 'information_schema'), {
      label: 'target',
      display: targetUrl.raw,
      awsClient: traced,
    }),
    archive,
    // The integration function checks that referenced secrets exist (DescribeSecret: never a value).
    ...(process.env.SHIFU_MIGRATE_SECRETS === '1'
      ? { secrets: secretCheck(process.env, traced(new SecretsManagerClient({}))) }
      : {}),
    // The gate functions watch the stack's alarms (by its name) and the operator's.
    ...(process.env.SHIFU_MIGRATE_ALARM_PREFIX === undefined
      ? {}
      : {
          alarms: cloudWatchAlarms(traced(new CloudWatchClient({})), {
            prefix: process.env.SHIFU_MIGRATE_ALARM_PREFIX,
            names: (config.aws?.rollbackOnAlarms ?? []).map((arn) => arn.split(':alarm:')[1] ?? arn),
          }),
        }),
    signal: new AbortController().signal,
    metrics: powertoolsMetrics(),
    heartbeat: true,
    ...(schedule === undefined
      ? {}
      : { syncSchedule: eventBridgeSchedule(traced(new SchedulerClient({})), schedule) }),
  };
}

/**
 * Dependencies on Lambda, built once per container and config version. The config is not in the environment (4 KB
 * would hold about 17 tables): the stack writes each validated config version to the archive bucket
 * (`SHIFU_MIGRATE_ARCHIVE`) under a key made from its content, and every task's payload names the version its
 * state machine was deployed with (`config`), so a deployment during a run changes nothing under it: the execution
 * keeps its definition, and with it its config. Without a version in the payload, the deployed one
 * (`SHIFU_MIGRATE_CONFIG_KEY`). Fails fast, naming what is missing.
 */
export function lambdaDeps(version?: string): Promise<TaskDeps> {
  const key = version ?? env('SHIFU_MIGRATE_CONFIG_KEY');
  if (!CONFIG_KEY.test(key))
    return Promise.reject(
      new InputError(`config version ${JSON.stringify(key)} is not a key of the form config/<16 hex>.json`),
    );
  let deps = cached.get(key);
  if (deps === undefined) {
    deps = build(env('SHIFU_MIGRATE_ARCHIVE'), key);
    // A failed read is not kept: the next invocation tries again.
    deps.catch(() => cached.delete(key));
    cached.set(key, deps);
  }
  return deps;
}
