import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createFolderArchive } from '../../lambdas/core/archive/folder.ts';
import type { ArchiveStore } from '../../lambdas/core/archive/port.ts';
import { TransientDatabaseError } from '../../lambdas/core/errors.ts';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import type { TaskDeps } from '../../lambdas/core/task.ts';
import { RunContextMissing, runContext } from '../../lambdas/data/context.ts';
import type { FunctionSpec, Reach } from '../../lambdas/registry.ts';
import { InvalidStateMachine, loadDefinition } from '../../local/engine/definition.ts';
import { grantedDeps, localInvoker, NotGranted } from '../../local/engine/functions.ts';
import { localExecutionId, runLocal } from '../../local/engine/run.ts';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'statemachines');
const fn = { TestFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:test' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class WorkFailed extends Error {
  override name = 'WorkFailed';
}

describe('local runtime: the Map abort rule', () => {
  it('once the third item fails, starts no other item and cleans up only after in-flight work stopped', async () => {
    const definition = loadDefinition('map-abort', fn, fixtures);
    const log: string[] = [];
    const aborted = new Set<number>();
    const { result } = runLocal({
      definition,
      input: { items: [1, 2, 3, 4, 5, 6, 7, 8] },
      timeScale: 0,
      invoke: async (key, event, signal) => {
        expect(key).toBe('TestFunctionArn');
        const payload = event as { item?: number; cleanup?: boolean };
        if (payload.cleanup) {
          log.push('cleanup');
          return {};
        }
        const item = payload.item ?? -1;
        log.push(`start ${item}`);
        if (item === 3) {
          await sleep(10);
          log.push('fail 3');
          throw new WorkFailed('item 3 is broken');
        }
        await sleep(item === 4 ? 150 : 60);
        if (signal.aborted) aborted.add(item);
        log.push(`end ${item}`);
        return { item };
      },
    });
    const outcome = await result;
    expect(outcome).toMatchObject({ status: 'FAILED', error: 'WorkFailed', cause: 'item 3 is broken' });
    const started = log.filter((l) => l.startsWith('start')).map((l) => Number(l.split(' ')[1]));
    expect(started).toEqual([1, 2, 3, 4]);
    // The sibling in flight when 3 failed saw its Map's signal aborted, and finished before the clean-up began.
    expect(aborted).toEqual(new Set([4]));
    expect(log.indexOf('cleanup')).toBeGreaterThan(log.indexOf('end 4'));
    expect(log.at(-1)).toBe('cleanup');
  });

  it('lets an item be retried without failing the Map, and succeeds', async () => {
    const definition = loadDefinition('map-abort', fn, fixtures);
    let attempts = 0;
    const { result } = runLocal({
      definition,
      input: { items: [1, 2, 3] },
      timeScale: 0,
      invoke: async (_key, event) => {
        const item = (event as { item: number }).item;
        if (item === 2 && attempts++ === 0) throw new TransientDatabaseError('deadlock, try again');
        return { item };
      },
    });
    expect(await result).toMatchObject({
      status: 'SUCCEEDED',
      output: { items: [1, 2, 3], done: [{ item: 1 }, { item: 2 }, { item: 3 }] },
    });
    expect(attempts).toBe(2);
  });
});

function writeMachine(states: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'smt-asl-'));
  writeFileSync(
    join(dir, 'probe.asl.json'),
    JSON.stringify({ StartAt: Object.keys(states)[0], States: states, ...extra }),
  );
  return dir;
}

// biome-ignore lint/suspicious/noTemplateCurlyInString: an ASL definitionSubstitutions placeholder, not a template.
const placeholder = '${TestFunctionArn}';

const invoke = (extra: Record<string, unknown> = {}) => ({
  Type: 'Task',
  Resource: 'arn:aws:states:::lambda:invoke',
  Parameters: { FunctionName: placeholder, Payload: {} },
  TimeoutSeconds: 10,
  End: true,
  ...extra,
});

describe('local runtime: preflight', () => {
  it.each([
    ['JSONata', { A: invoke() }, { QueryLanguage: 'JSONata' }, /uses JSONata/],
    ['variables', { A: invoke({ Assign: { x: 1 } }) }, {}, /uses Assign/],
    [
      'a Task without TimeoutSeconds',
      { A: invoke({ TimeoutSeconds: undefined }) },
      {},
      /sets no TimeoutSeconds/,
    ],
    ['heartbeats', { A: invoke({ HeartbeatSeconds: 5 }) }, {}, /uses heartbeats/],
    [
      'a task token',
      { A: invoke({ Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken' }) },
      {},
      /waits for a task token/,
    ],
    [
      'a Distributed Map whose items it cannot read',
      {
        M: {
          Type: 'Map',
          ItemReader: { Resource: 'arn:aws:states:::s3:getObject' },
          ItemProcessor: {
            ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' },
            StartAt: 'B',
            States: { B: invoke() },
          },
          End: true,
        },
      },
      {},
      /its ItemReader must read a JSON array/,
    ],
    ['ResultPath "$"', { A: invoke({ ResultPath: '$' }) }, {}, /omit ResultPath instead/],
    [
      'a function that is not ours',
      { A: invoke({ Parameters: { FunctionName: 'arn:aws:lambda:x', Payload: {} } }) },
      {},
      /must invoke one of our functions/,
    ],
    [
      'an unknown substitution',
      { A: invoke({ Parameters: { FunctionName: placeholder.replace('Test', 'Other') } }) },
      {},
      /\$\{OtherFunctionArn\} has no substitution/,
    ],
  ])('refuses %s, saying why', (_, states, extra, message) => {
    const dir = writeMachine(states as Record<string, unknown>, extra);
    expect(() => loadDefinition('probe', fn, dir)).toThrow(InvalidStateMachine);
    expect(() => loadDefinition('probe', fn, dir)).toThrow(message);
  });

  it('refuses a state name used twice (local overrides are keyed by name)', () => {
    const dir = writeMachine({
      A: { Type: 'Map', ItemProcessor: { StartAt: 'A', States: { A: invoke() } }, End: true },
    });
    expect(() => loadDefinition('probe', fn, dir)).toThrow(/state "A" appears twice/);
  });
});

describe('local runtime: a Distributed Map', () => {
  const setup = async (items: unknown[]) => {
    const archive = createFolderArchive(mkdtempSync(join(tmpdir(), 'smt-dmap-')));
    await archive.put('lists/items.json', JSON.stringify(items));
    const list = archive.address('lists/items.json');
    const results = archive.address('results');
    return {
      archive,
      input: {
        list: { bucket: list.bucket, key: list.key },
        results: { bucket: results.bucket, prefix: results.key },
        job: 'j-1',
        batchSize: 10,
        workers: 2,
      },
    };
  };
  const items = Array.from({ length: 25 }, (_, i) => i + 1);
  const readJson = async (archive: ReturnType<typeof createFolderArchive>, key: string) =>
    JSON.parse((await archive.get(key))?.toString('utf8') ?? 'null') as unknown;

  it('reads the list, batches it, runs each batch as a child execution of its own and writes the results', async () => {
    const { archive, input } = await setup(items);
    const seen: { item: number; job: string; parent: string; child: string }[] = [];
    let active = 0;
    let most = 0;
    const { result, executionId } = runLocal({
      definition: loadDefinition('distributed', fn, fixtures),
      input,
      timeScale: 0,
      archive,
      invoke: async (_key, event) => {
        const payload = event as { item: number; job: string; parent: string; child: string };
        active += 1;
        most = Math.max(most, active);
        await sleep(5);
        active -= 1;
        seen.push(payload);
        return { item: payload.item };
      },
    });
    const outcome = await result;
    expect(outcome.status, JSON.stringify(outcome)).toBe('SUCCEEDED');
    expect(seen.map((s) => s.item).sort((a, b) => a - b)).toEqual(items);
    // BatchInput's paths were resolved against the map's input, the context object included: the parent's id.
    expect(new Set(seen.map((s) => s.job))).toEqual(new Set(['j-1']));
    expect(new Set(seen.map((s) => s.parent))).toEqual(new Set([localExecutionId(executionId)]));
    // Three children (10, 10, 5 items), each with its own execution id, at most two at a time.
    const children = new Set(seen.map((s) => s.child));
    expect(children.size).toBe(3);
    expect(children.has(localExecutionId(executionId))).toBe(false);
    expect(most).toBeLessThanOrEqual(2);
    // The state's output is where ResultWriter put the results; the manifest lists them.
    const written = (
      outcome.output as {
        written: { MapRunArn: string; ResultWriterDetails: { Bucket: string; Key: string } };
      }
    ).written;
    expect(written.MapRunArn).toMatch(/:mapRun:distributed\/FanOut:/);
    expect(written.ResultWriterDetails.Key).toMatch(/^results\/[0-9a-f-]+\/manifest\.json$/);
    const manifest = (await readJson(archive, written.ResultWriterDetails.Key)) as {
      ResultFiles: { SUCCEEDED: { Key: string }[]; FAILED: unknown[] };
    };
    expect(manifest.ResultFiles.FAILED).toEqual([]);
    const succeeded = (await readJson(archive, manifest.ResultFiles.SUCCEEDED[0]?.Key ?? '')) as {
      Status: string;
      Input: string;
      Output: string;
    }[];
    expect(succeeded.map((r) => r.Status)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    const sizes = succeeded.map((r) => (JSON.parse(r.Input) as { Items: unknown[] }).Items.length).sort();
    expect(sizes).toEqual([10, 10, 5]);
    expect(JSON.parse(succeeded[0]?.Output ?? '[]')).toHaveLength(
      (JSON.parse(succeeded[0]?.Input ?? '{}') as { Items: unknown[] }).Items.length,
    );
  });

  it('closes a batch before it outgrows MaxInputBytesPerBatch', async () => {
    const big = Array.from({ length: 12 }, (_, i) => ({ n: i, pad: 'x'.repeat(1000) }));
    const { archive, input } = await setup(big);
    const batches: number[] = [];
    const { result } = runLocal({
      definition: loadDefinition('distributed', fn, fixtures),
      input,
      timeScale: 0,
      archive,
      onEvent: (event) => {
        if (event.type === 'MapRunStarted') batches.push(event.children);
      },
      invoke: async (_key, event) => ({ item: (event as { item: { n: number } }).item.n }),
    });
    expect((await result).status).toBe('SUCCEEDED');
    // About 1 KB each under 4 KiB: three to a batch, though ten would be allowed by count.
    expect(batches).toEqual([4]);
  });

  it("fails the map run on the first failed child, stops the rest, and writes the child's own error", async () => {
    const { archive, input } = await setup(items);
    const started: number[] = [];
    const { result } = runLocal({
      definition: loadDefinition('distributed', fn, fixtures),
      input: { ...input, workers: 1 },
      timeScale: 0,
      archive,
      invoke: async (_key, event) => {
        const { item } = event as { item: number };
        started.push(item);
        if (item === 13) throw new WorkFailed('item 13 is broken');
        return { item };
      },
    });
    const outcome = await result;
    expect(outcome).toMatchObject({ status: 'FAILED', error: 'ChildFailed' });
    // One child at a time: the third batch never started once the second failed.
    expect(Math.max(...started)).toBe(13);
    const [manifestKey] = (await archive.list('results/')).filter((k) => k.endsWith('manifest.json'));
    const manifest = (await readJson(archive, manifestKey ?? '')) as {
      ResultFiles: { FAILED: { Key: string }[] };
    };
    const failed = (await readJson(archive, manifest.ResultFiles.FAILED[0]?.Key ?? '')) as {
      Status: string;
      Error: string;
      Cause: string;
      Input: string;
    }[];
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ Status: 'FAILED', Error: 'WorkFailed', Cause: 'item 13 is broken' });
    expect(JSON.parse(failed[0]?.Input ?? '{}')).toMatchObject({ BatchInput: { job: 'j-1' } });
  });

  it('fails with States.ItemReaderFailed when the list is not there', async () => {
    const { archive, input } = await setup(items);
    const { result } = runLocal({
      definition: loadDefinition('distributed', fn, fixtures),
      input: { ...input, list: { ...input.list, key: 'lists/missing.json' } },
      timeScale: 0,
      archive,
      invoke: async () => ({}),
    });
    expect(await result).toMatchObject({ status: 'FAILED', error: 'States.ItemReaderFailed' });
  });
});

describe('functions reach only what the registry grants them', () => {
  const spec = (reaches: Reach[]): FunctionSpec => ({
    name: 'data-validate',
    module: 'data',
    handler: 'validate',
    steps: ['validate-chunk'],
    timeoutMinutes: 15,
    memoryMb: 2048,
    reaches,
  });
  const calls: string[] = [];
  const sql = (which: string) =>
    ({
      query: async () => {
        calls.push(`${which} query`);
        return [];
      },
      close: async () => {},
    }) as unknown as SqlClient;
  const archive = {
    location: 'folder',
    address: (key: string) => ({ bucket: 'b', key }),
    keyAt: () => undefined,
    put: async (key: string) => {
      calls.push(`put ${key}`);
    },
    get: async (key: string) => {
      calls.push(`get ${key}`);
      return undefined;
    },
    list: async () => [],
  } as ArchiveStore;
  const base = {
    source: sql('source'),
    target: sql('target'),
    targetServer: sql('targetServer'),
    archive,
  } as unknown as TaskDeps;

  it('refuses, naming the function and the grant, what its entry does not state', async () => {
    const deps = grantedDeps(base, spec(['target', 'archive:get']));
    await deps.target.query('SELECT 1');
    await deps.archive.get('runs/x/schema.json');
    expect(deps.archive.address('k')).toEqual({ bucket: 'b', key: 'k' });
    await expect(deps.archive.put('runs/x', 'y')).rejects.toThrow(
      /data-validate put runs\/x in the archive, but its registry entry \(lambdas\/registry\.ts\) does not grant "archive:put"/,
    );
    await expect(deps.source.query('SELECT 1')).rejects.toThrow(NotGranted);
    await expect(deps.archive.list('runs/')).rejects.toThrow(/does not grant "archive:list"/);
    expect(calls).toEqual(['target query', 'get runs/x/schema.json']);
  });

  it('refuses a step its function does not run: a state machine naming the wrong function', async () => {
    const invoke = localInvoker(base);
    await expect(
      invoke(
        'DataValidateFunctionArn',
        { step: 'finish', runId: 'data-20261201T000000Z-abc123', execution: 'x', config: 'local' },
        new AbortController().signal,
      ),
    ).rejects.toThrow(/data-validate runs validate-chunk, validate-table, not step "finish"/);
  });
});

describe("a run's source structure", () => {
  const spec = (reaches: Reach[]): FunctionSpec => ({
    name: 'data-finish',
    module: 'data',
    handler: 'finish',
    steps: ['finish'],
    timeoutMinutes: 5,
    memoryMb: 512,
    reaches,
  });
  it('is read from the archive once per function, and its absence after the start is named', async () => {
    const folder = createFolderArchive(mkdtempSync(join(tmpdir(), 'smt-ctx-')));
    const runId = 'data-20261201T000000Z-abc123';
    const deps = { archive: folder, sourceUrl: { database: 'shifu_legacy' } } as unknown as TaskDeps;
    await expect(runContext(deps, runId)).rejects.toThrow(RunContextMissing);
    await expect(runContext(deps, runId)).rejects.toThrow(
      /the source structure of data-20261201T000000Z-abc123 is not in .* \(runs\/data-20261201T000000Z-abc123\/schema\.json\): the run was started with another archive\.url, or its start did not finish/,
    );
    await folder.put(`runs/${runId}/schema.json`, JSON.stringify({ database: 'shifu_legacy', tables: [] }));
    const first = await runContext(deps, runId);
    expect(await runContext(deps, runId)).toBe(first);
    // Another function (another container on Lambda) reads it for itself.
    const other = { ...deps, archive: grantedDeps(deps, { ...spec(['archive:get']) }).archive };
    expect(await runContext(other as TaskDeps, runId)).not.toBe(first);
  });
});
