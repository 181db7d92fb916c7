import { randomUUID } from 'node:crypto';
import type { ArchiveStore } from '../../lambdas/core/archive/port.ts';
import type { DistributedMap, DistributedMapParameters } from './definition.ts';
import { type ExecutionResult, type RunOptions, runLocal } from './run.ts';

/** An error Step Functions itself raises (`States.…`), with the name a Catch matches. */
export class StatesError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** Where the local map runs say they ran: an ARN of the shape Step Functions gives, in a fake account. */
const LOCAL_ARN = 'arn:aws:states:local:000000000000';

/** One child execution's line in the results, as ResultWriter writes it (`SUCCEEDED_0.json`, `FAILED_0.json`). */
interface ChildResult {
  readonly ExecutionArn: string;
  readonly Name: string;
  readonly Input: string;
  readonly InputDetails: { readonly Included: true };
  readonly Status: ExecutionResult['status'];
  readonly StartDate: string;
  readonly StopDate: string;
  readonly Output?: string;
  readonly OutputDetails?: { readonly Included: true };
  readonly Error?: string;
  readonly Cause?: string;
}

/**
 * Splits the items as ItemBatcher does: up to `maxItems` per batch and, with `maxBytes`, no batch whose JSON
 * (`{ BatchInput, Items }`) is larger; an item too large on its own for `maxBytes` fails the map run, as on AWS.
 */
export function batchItems(
  items: readonly unknown[],
  batch: DistributedMapParameters['batch'] | undefined,
): unknown[][] {
  if (batch === undefined) return items.map((item) => [item]);
  const maxItems = batch.maxItems ?? Number.POSITIVE_INFINITY;
  const maxBytes = batch.maxBytes ?? Number.POSITIVE_INFINITY;
  if (!(maxItems >= 1))
    throw new StatesError('States.Runtime', `MaxItemsPerBatch must be 1 or more, not ${maxItems}`);
  const overhead = Buffer.byteLength(JSON.stringify({ BatchInput: batch.input ?? {}, Items: [] }));
  const batches: unknown[][] = [];
  let current: unknown[] = [];
  let bytes = overhead;
  for (const item of items) {
    const size = Buffer.byteLength(JSON.stringify(item)) + 1;
    if (overhead + size > maxBytes)
      throw new StatesError(
        'States.ItemReaderFailed',
        `an item of ${size} bytes does not fit in a batch of at most ${maxBytes} bytes (MaxInputBytesPerBatch)`,
      );
    if (current.length > 0 && (current.length >= maxItems || bytes + size > maxBytes)) {
      batches.push(current);
      current = [];
      bytes = overhead;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

async function readItems(archive: ArchiveStore, parameters: DistributedMapParameters): Promise<unknown[]> {
  const { Bucket, Key } = parameters.reader;
  const key = archive.keyAt({ bucket: Bucket, key: Key });
  if (key === undefined)
    throw new StatesError(
      'States.ItemReaderFailed',
      `s3://${Bucket}/${Key} is outside the archive store (${archive.location}) that stands in for S3 here`,
    );
  let body: Buffer | undefined;
  try {
    body = await archive.get(key);
  } catch (error) {
    throw new StatesError('States.ItemReaderFailed', `reading ${key}: ${(error as Error).message}`);
  }
  if (body === undefined)
    throw new StatesError('States.ItemReaderFailed', `no object ${key} in ${archive.location}`);
  let items: unknown;
  try {
    items = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new StatesError('States.ItemReaderFailed', `${key} is not JSON: ${(error as Error).message}`);
  }
  if (!Array.isArray(items))
    throw new StatesError('States.ItemReaderFailed', `${key} does not hold a JSON array`);
  return parameters.maxItems === undefined ? items : items.slice(0, parameters.maxItems);
}

/**
 * Writes the results as ResultWriter does: `<Prefix>/<map run id>/SUCCEEDED_0.json` (and `FAILED_0.json`,
 * `ABORTED_0.json` when there are any) and `manifest.json` listing them; returns the manifest's address.
 */
async function writeResults(
  archive: ArchiveStore,
  writer: NonNullable<DistributedMapParameters['writer']>,
  mapRunArn: string,
  mapRunId: string,
  results: readonly ChildResult[],
): Promise<{ Bucket: string; Key: string }> {
  const prefix = archive.keyAt({ bucket: writer.Bucket, key: writer.Prefix ?? '' });
  if (prefix === undefined)
    throw new StatesError(
      'States.ResultWriterFailed',
      `s3://${writer.Bucket}/${writer.Prefix ?? ''} is outside the archive store (${archive.location}) that stands in for S3 here`,
    );
  const folder = `${prefix === '' ? '' : `${prefix}/`}${mapRunId}`;
  const files: Record<'SUCCEEDED' | 'FAILED' | 'PENDING', { Key: string; Size: number }[]> = {
    SUCCEEDED: [],
    FAILED: [],
    PENDING: [],
  };
  for (const status of ['SUCCEEDED', 'FAILED', 'ABORTED'] as const) {
    const lines = results.filter((r) => r.Status === status);
    if (lines.length === 0) continue;
    const key = `${folder}/${status}_0.json`;
    const body = JSON.stringify(lines);
    await archive.put(key, body, { contentType: 'application/json' });
    // Aborted children are listed with the failed ones, as the manifest has no list of its own for them.
    files[status === 'SUCCEEDED' ? 'SUCCEEDED' : 'FAILED'].push({
      Key: archive.address(key).key,
      Size: Buffer.byteLength(body),
    });
  }
  const manifest = archive.address(`${folder}/manifest.json`);
  await archive.put(
    `${folder}/manifest.json`,
    JSON.stringify({ DestinationBucket: manifest.bucket, MapRunArn: mapRunArn, ResultFiles: files }),
    { contentType: 'application/json' },
  );
  return { Bucket: manifest.bucket, Key: manifest.key };
}

/**
 * Runs a Distributed Map as Step Functions does: reads the items (ItemReader, through the archive store), batches
 * them (ItemBatcher), runs one child execution per batch, `maxConcurrency` at a time, each a local execution of its
 * own (its own `$$.Execution.Id`, its own Map failures), and writes the results (ResultWriter). No failure is
 * tolerated: the first child that fails stops the others and fails the state with
 * `States.ExceedToleratedFailureThreshold`, after the results (the failed child's error included) are written.
 */
export async function runMapRun(
  state: string,
  map: DistributedMap,
  input: unknown,
  signal: AbortSignal,
  options: RunOptions,
): Promise<unknown> {
  const { archive } = options;
  if (archive === undefined)
    throw new StatesError(
      'States.ItemReaderFailed',
      `${state} is a Distributed Map: the runtime needs an archive store`,
    );
  const parameters = input as DistributedMapParameters;
  const batches = batchItems(
    await readItems(archive, parameters),
    map.batched ? parameters.batch : undefined,
  );
  const mapRunId = randomUUID();
  const mapRunArn = `${LOCAL_ARN}:mapRun:${map.child.name.split('/')[0]}/${map.label}:${mapRunId}`;
  const limit =
    parameters.maxConcurrency === undefined || parameters.maxConcurrency === 0
      ? batches.length
      : parameters.maxConcurrency;
  const about = (parameters.batch?.input as { table?: unknown } | undefined)?.table;
  options.onEvent?.({
    type: 'MapRunStarted',
    state,
    mapRun: mapRunId,
    about: typeof about === 'string' ? about : '',
    children: batches.length,
    items: batches.reduce((n, b) => n + b.length, 0),
    executionId: mapRunArn,
  });

  const results: ChildResult[] = [];
  const running = new Set<{ abort(): void }>();
  let failed: ChildResult | undefined;
  let next = 0;
  const stopAll = () => {
    for (const child of running) child.abort();
  };
  signal.addEventListener('abort', stopAll);
  const worker = async (): Promise<void> => {
    while (next < batches.length && failed === undefined && !signal.aborted) {
      const batch = batches[next] as unknown[];
      next += 1;
      const childInput = map.batched ? { BatchInput: parameters.batch?.input ?? {}, Items: batch } : batch[0];
      const execution = runLocal({
        definition: map.child,
        input: childInput,
        invoke: options.invoke,
        ...(options.timeScale === undefined ? {} : { timeScale: options.timeScale }),
        ...(options.retryScale === undefined ? {} : { retryScale: options.retryScale }),
        archive,
        onEvent: (event) => options.onEvent?.({ ...event, parentMap: state }),
      });
      running.add(execution);
      // A child started after the map run was told to stop stops at once.
      if (signal.aborted || failed !== undefined) execution.abort();
      const outcome = await execution.result;
      running.delete(execution);
      const result: ChildResult = {
        ExecutionArn: `${LOCAL_ARN}:execution:${map.child.name.split('/')[0]}/${map.label}:${outcome.executionId}`,
        Name: outcome.executionId,
        Input: JSON.stringify(childInput),
        InputDetails: { Included: true },
        Status: outcome.status,
        StartDate: outcome.startedAt,
        StopDate: outcome.stoppedAt,
        ...(outcome.status === 'SUCCEEDED'
          ? { Output: JSON.stringify(outcome.output ?? null), OutputDetails: { Included: true } }
          : {}),
        ...(outcome.error === undefined ? {} : { Error: outcome.error }),
        ...(outcome.cause === undefined ? {} : { Cause: outcome.cause }),
      };
      results.push(result);
      options.onEvent?.({
        type: 'MapRunChildEnded',
        state,
        mapRun: mapRunId,
        status:
          outcome.status === 'SUCCEEDED' ? 'SUCCEEDED' : outcome.status === 'ABORTED' ? 'ABORTED' : 'FAILED',
        items: batch.length,
        executionId: mapRunArn,
      });
      if (outcome.status !== 'SUCCEEDED' && outcome.status !== 'ABORTED' && failed === undefined) {
        failed = result;
        stopAll();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, batches.length)) }, worker));
  } finally {
    signal.removeEventListener('abort', stopAll);
  }
  let details: { Bucket: string; Key: string } | undefined;
  if (parameters.writer !== undefined && map.writesResults) {
    try {
      details = await writeResults(archive, parameters.writer, mapRunArn, mapRunId, results);
    } catch (error) {
      if (error instanceof StatesError) throw error;
      throw new StatesError('States.ResultWriterFailed', `writing the results: ${(error as Error).message}`);
    }
  }
  if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
  if (failed !== undefined)
    throw new StatesError(
      'States.ExceedToleratedFailureThreshold',
      `The specified tolerated failure threshold was exceeded: child execution ${failed.Name} failed with ${failed.Error ?? 'an error'}${details === undefined ? '' : ` (results: s3://${details.Bucket}/${details.Key})`}`,
    );
  if (details !== undefined) return { MapRunArn: mapRunArn, ResultWriterDetails: details };
  return results.map((r) => (r.Output === undefined ? null : JSON.parse(r.Output)));
}
