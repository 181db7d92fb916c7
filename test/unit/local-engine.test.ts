import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TransientDatabaseError } from '../../lambdas/core/errors.ts';
import { InvalidStateMachine, loadDefinition } from '../../local/engine/definition.ts';
import { runLocal } from '../../local/engine/run.ts';

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
      'a Distributed Map',
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
      /Distributed Map/,
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
