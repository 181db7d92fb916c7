import type { ArchiveStore } from '../core/archive/port.ts';
import { assertRunOwner } from '../core/ledger/phase-run.ts';
import type { TaskDeps } from '../core/task.ts';

/**
 * A child execution's error, raised again in the parent under the child's own error name, so that the parent's
 * Catch routes it as it would the task's error itself.
 */
export class ChildExecutionFailed extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/**
 * The copy's map run failed and no result says which child failed or why (results not written, or only children
 * stopped because another failed): the run is left resumable rather than undone on a guess.
 */
export class MapRunFailed extends Error {
  override name = 'MapRunFailed';
}

/** Errors of children that were stopped because the run or a sibling stopped: never the cause. */
const KNOCK_ON = new Set(['ChunkCancelled', 'MapIterationCancelled', 'States.Aborted', 'ExecutionAborted']);

interface FailedChild {
  readonly Name?: string;
  readonly Input?: unknown;
  readonly Error?: string;
  readonly Cause?: string;
  readonly StopDate?: string;
}

/** The message inside a Lambda error's Cause (`{"errorMessage": …}` on AWS), or the Cause as it is. */
function messageOf(cause: string | undefined): string {
  if (cause === undefined) return '';
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: unknown };
    if (typeof parsed.errorMessage === 'string') return parsed.errorMessage;
  } catch {
    // Not JSON: the Cause is the message.
  }
  return cause;
}

function batchExecution(input: unknown): unknown {
  try {
    const parsed = typeof input === 'string' ? (JSON.parse(input) as unknown) : input;
    return (parsed as { BatchInput?: { execution?: unknown } } | null)?.BatchInput?.execution;
  } catch {
    return undefined;
  }
}

/** A JSON document of the results, or undefined when it cannot be read as one (cut short, overwritten). */
function parsed<T>(body: Buffer | undefined): T | undefined {
  if (body === undefined) return undefined;
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch {
    return undefined;
  }
}

/** The failed children of this execution's map runs under `prefix`, from the manifests ResultWriter wrote. */
async function failedChildren(
  archive: ArchiveStore,
  prefix: string,
  execution: string,
): Promise<FailedChild[]> {
  const found: FailedChild[] = [];
  for (const key of await archive.list(`${prefix}/`)) {
    if (!key.endsWith('/manifest.json')) continue;
    // A results file that cannot be read says nothing: it is skipped, never taken for a cause.
    const manifest = parsed<{ DestinationBucket?: string; ResultFiles?: { FAILED?: { Key?: string }[] } }>(
      await archive.get(key),
    );
    for (const file of manifest?.ResultFiles?.FAILED ?? []) {
      if (typeof file?.Key !== 'string') continue;
      const at = archive.keyAt({ bucket: manifest?.DestinationBucket ?? '', key: file.Key });
      const children = at === undefined ? undefined : parsed<FailedChild[]>(await archive.get(at));
      if (!Array.isArray(children)) continue;
      for (const child of children) {
        // Only this execution's children: a resumed run's earlier executions wrote under the same prefix.
        if (batchExecution(child?.Input) === execution) found.push(child);
      }
    }
  }
  return found;
}

/**
 * After the copy's map run failed: ends with what stopped it, as the Catch around the levels expects. The run
 * stopped or taken over first (RunStopped, LockLost); then the error of the first child that failed on its own
 * (from the results ResultWriter wrote), under its own name; else {@link MapRunFailed}, which leaves the run
 * resumable.
 */
export async function explainCopyFailure(
  deps: TaskDeps,
  request: {
    runId: string;
    table: string;
    execution: string;
    results: { bucket: string; prefix: string };
    error?: { Error: string; Cause?: string | undefined } | undefined;
  },
  /** Whose map run: data's copy, sync's reconciliation, go-live's archive. */
  phase: 'data' | 'sync' | 'golive' = 'data',
): Promise<never> {
  await assertRunOwner(deps.target, request.runId, request.execution);
  const prefix = deps.archive.keyAt({ bucket: request.results.bucket, key: request.results.prefix });
  const children = prefix === undefined ? [] : await failedChildren(deps.archive, prefix, request.execution);
  const first = children
    .filter((c) => c.Error !== undefined && !KNOCK_ON.has(c.Error))
    .sort((a, b) => String(a.StopDate ?? '').localeCompare(String(b.StopDate ?? '')))[0];
  if (first?.Error !== undefined) throw new ChildExecutionFailed(first.Error, messageOf(first.Cause));
  throw new MapRunFailed(
    `${request.table}: the ${{ data: 'copy', sync: 'reconciliation', golive: 'archive' }[phase]}'s map run failed (${request.error?.Cause ?? request.error?.Error ?? 'no cause given'}) and no child's result says why: the run is left resumable. Look at the map run in the Step Functions console, then ${{ data: 'run data again to resume, or roll back', sync: 'run sync again', golive: 'run golive again to resume' }[phase]}`,
  );
}
