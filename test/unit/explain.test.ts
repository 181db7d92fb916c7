import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createFolderArchive } from '../../lambdas/core/archive/folder.ts';
import type { TaskDeps } from '../../lambdas/core/task.ts';
import { explainCopyFailure } from '../../lambdas/data/explain.ts';

const execution = 'arn:aws:states:eu-west-1:111122223333:execution:data:run-1';
const runId = 'data-20261201T000000Z-abcdef';

/** A ledger where the run is running and this execution holds its lock (`status` changes that). */
function deps(status = 'running', owner = execution) {
  const archive = createFolderArchive(mkdtempSync(join(tmpdir(), 'smt-explain-')));
  const target = {
    query: async () => [{ status, execution_id: execution, owner }],
  };
  return { archive, target } as unknown as TaskDeps & { archive: typeof archive };
}

/** Results as ResultWriter writes them on AWS: Input a JSON string, a Lambda error's Cause a JSON document. */
async function writeRun(
  d: ReturnType<typeof deps>,
  mapRun: string,
  failed: { error: string; message: string; stop: string; execution?: string }[],
) {
  const rows = failed.map((f, i) => ({
    ExecutionArn: `arn:aws:states:eu-west-1:111122223333:execution:data/CopyChunks:${mapRun}-${i}`,
    Input: JSON.stringify({ BatchInput: { runId, execution: f.execution ?? execution }, Items: [{ n: i }] }),
    InputDetails: { Included: true },
    Status: 'FAILED',
    Error: f.error,
    Cause: JSON.stringify({ errorType: f.error, errorMessage: f.message, trace: ['at x'] }),
    StopDate: f.stop,
  }));
  const prefix = `runs/${runId}/copy-results/orders/${mapRun}`;
  await d.archive.put(`${prefix}/FAILED_0.json`, JSON.stringify(rows));
  await d.archive.put(
    `${prefix}/manifest.json`,
    JSON.stringify({
      DestinationBucket: d.archive.address('x').bucket,
      ResultFiles: {
        FAILED: [{ Key: d.archive.address(`${prefix}/FAILED_0.json`).key, Size: 1 }],
        SUCCEEDED: [],
      },
    }),
  );
}

const request = (d: ReturnType<typeof deps>) => {
  const results = d.archive.address(`runs/${runId}/copy-results/orders`);
  return {
    runId,
    table: 'orders',
    execution,
    results: { bucket: results.bucket, prefix: results.key },
    error: { Error: 'States.ExceedToleratedFailureThreshold', Cause: 'threshold exceeded' },
  };
};

describe('explaining a failed copy map run', () => {
  it('raises the first child failure of this execution under its own name, skipping knock-on stops', async () => {
    const d = deps();
    await writeRun(d, 'a', [
      { error: 'ChunkCancelled', message: 'stopped: the run is stopping', stop: '2026-12-01T00:00:01Z' },
      { error: 'ChunkChecksumMismatch', message: 'orders chunk 7 differs', stop: '2026-12-01T00:00:02Z' },
      { error: 'TransientDatabaseError', message: 'deadlock', stop: '2026-12-01T00:00:03Z' },
    ]);
    // An earlier execution of the same run (resumed since) failed differently: not this execution's story.
    await writeRun(d, 'b', [
      {
        error: 'UnmappedRows',
        message: 'old',
        stop: '2026-11-30T00:00:00Z',
        execution: `${execution}-before`,
      },
    ]);
    const failure = await explainCopyFailure(d, request(d)).catch((e: unknown) => e as Error);
    expect(failure).toMatchObject({ name: 'ChunkChecksumMismatch', message: 'orders chunk 7 differs' });
  });

  it('says the run was stopped or taken over before anything the results say', async () => {
    const stopped = deps('stopping');
    await writeRun(stopped, 'a', [
      { error: 'ChunkChecksumMismatch', message: 'x', stop: '2026-12-01T00:00:02Z' },
    ]);
    await expect(explainCopyFailure(stopped, request(stopped))).rejects.toMatchObject({ name: 'RunStopped' });
    const taken = deps('running', 'someone-else');
    await expect(explainCopyFailure(taken, request(taken))).rejects.toMatchObject({ name: 'LockLost' });
  });

  it('skips results it cannot read (cut short, overwritten) instead of failing on them', async () => {
    const d = deps();
    await writeRun(d, 'a', [
      { error: 'TransientDatabaseError', message: 'deadlock', stop: '2026-12-01T00:00:03Z' },
    ]);
    const broken = `runs/${runId}/copy-results/orders`;
    await d.archive.put(`${broken}/b/manifest.json`, '{"DestinationBucket": "LocalArchive", "ResultFi');
    await d.archive.put(
      `${broken}/c/manifest.json`,
      JSON.stringify({
        DestinationBucket: 'LocalArchive',
        ResultFiles: { FAILED: [{ Key: `${broken}/c/FAILED_0.json` }] },
      }),
    );
    await d.archive.put(`${broken}/c/FAILED_0.json`, '[{"Error": "Chunk');
    await expect(explainCopyFailure(d, request(d))).rejects.toMatchObject({
      name: 'TransientDatabaseError',
      message: 'deadlock',
    });
    // Nothing readable at all: left resumable.
    const e = deps();
    await e.archive.put(`${broken}/x/manifest.json`, 'not json');
    await expect(explainCopyFailure(e, request(e))).rejects.toMatchObject({ name: 'MapRunFailed' });
  });

  it('leaves the run resumable (MapRunFailed) when no result says why', async () => {
    const d = deps();
    await writeRun(d, 'a', [{ error: 'ChunkCancelled', message: 'stopped', stop: '2026-12-01T00:00:01Z' }]);
    await expect(explainCopyFailure(d, request(d))).rejects.toMatchObject({
      name: 'MapRunFailed',
      message: expect.stringMatching(/threshold exceeded.*left resumable/),
    });
  });
});
